"""The app's services container: process-wide objects, created on first use and reused.

Never at import, so the host's indexing and cold start stay cheap; the handlers in this package ask here.
"""

from __future__ import annotations

import json
import threading
from functools import cache, wraps
from pathlib import Path
from typing import TYPE_CHECKING

from shared.pipeline.blob_names import DATA_CONNECTION

if TYPE_CHECKING:  # the core is imported on first use, not when the host indexes the app
    from shared.core.cascade import Cascade
    from shared.pipeline.answering import AnswerService
    from shared.pipeline.dead_letters import DeadLetters
    from shared.pipeline.ingest import Ingestor
    from shared.pipeline.review import ReviewQueue
    from shared.monitoring.shadow import ShadowWorker
    from shared.pipeline.storage import BlobStore
    from shared.foundation.rate_limit import CallerRateLimit

WORK_QUEUE = "smallfirst-work"  # model work: whole inputs and parts of large ones
POISON_QUEUE = f"{WORK_QUEUE}-poison"
SHADOW_QUEUE = "smallfirst-shadow"  # accepted items to answer again with the frontier, off the request path
HOST_JSON = Path(__file__).resolve().parents[1] / "host.json"
_create_lock = threading.RLock()


def once(factory):
    """functools.cache, but safe when the first calls arrive on several worker threads at once."""
    cached = cache(factory)

    @wraps(factory)
    def get():
        with _create_lock:
            return cached()

    get.cache_clear = cached.cache_clear
    return get


@once
def cascade() -> "Cascade":
    import os

    from shared.core.cascade import Cascade
    from shared.core.telemetry import configure_telemetry

    configure_telemetry(os.environ)  # before the cascade's first span or metric, once per worker
    return Cascade.from_env()


@once
def answers() -> "AnswerService":
    from shared.pipeline.answering import AnswerService

    return AnswerService(cascade())


@once
def blob_store() -> "BlobStore":
    from shared.foundation.storage_connections import blob_service
    from shared.pipeline.storage import BlobStore

    return BlobStore(blob_service(DATA_CONNECTION))


@once
def work_queue():
    from shared.foundation.storage_connections import queue_service
    from shared.pipeline.storage import ensure_queue, queue_client

    return ensure_queue(queue_client(queue_service(DATA_CONNECTION), WORK_QUEUE))


@once
def shadow_queue():
    from shared.foundation.storage_connections import queue_service
    from shared.pipeline.storage import ensure_queue, queue_client

    return ensure_queue(queue_client(queue_service(DATA_CONNECTION), SHADOW_QUEUE))


def send_shadow(text: str) -> None:
    shadow_queue().send_message(text)


@once
def shadow_worker() -> "ShadowWorker":
    from shared.monitoring.shadow import ShadowWorker

    return ShadowWorker(cascade(), blob_store())


@once
def review_queue() -> "ReviewQueue":
    from shared.pipeline.review import ReviewQueue

    return ReviewQueue(blob_store(), cascade().tasks)


def max_dequeue_count() -> int:
    """Tries of a queue message before the runtime moves it to the poison queue (host.json; default 5)."""
    return int(json.loads(HOST_JSON.read_text()).get("extensions", {}).get("queues", {}).get("maxDequeueCount", 5))


@once
def ingestor() -> "Ingestor":
    from shared.pipeline.ingest import IngestLimits, Ingestor

    settings = cascade().settings
    limits = IngestLimits(max_blob_bytes=settings.max_blob_bytes, chunk_items=settings.chunk_items,
                          claim_ttl_s=settings.claim_ttl_s)

    def enqueue(text: str, delay_s: int) -> None:
        work_queue().send_message(text, visibility_timeout=delay_s or None)

    return Ingestor(cascade(), blob_store(), limits, enqueue=enqueue, shadow=send_shadow)


@once
def dead_letters() -> "DeadLetters":
    from shared.pipeline.dead_letters import DeadLetters
    from shared.pipeline.outputs import Outputs

    return DeadLetters(Outputs(blob_store()))


def _positive(name: str, default: str) -> float:
    import os

    from shared.errors import ConfigError

    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        value = 0.0
    if not value > 0:
        raise ConfigError(f"{name} must be a positive number, not {os.environ.get(name)!r}")
    return value


@once
def rate_limit() -> "CallerRateLimit":
    """Each caller's request budget on this instance (shared/foundation/rate_limit.py says why in the app)."""
    from shared.foundation.rate_limit import CallerRateLimit

    return CallerRateLimit(per_second=_positive("SMALLFIRST_CALLER_RATE_PER_S", "10"),
                           burst=int(_positive("SMALLFIRST_CALLER_BURST", "100")))


def caller_auth() -> str:
    """`key` (function keys, the default) or `entra` (also the Caller app role) for the inference routes."""
    import os

    from shared.errors import ConfigError

    mode = os.environ.get("SMALLFIRST_CALLER_AUTH", "key").strip().lower() or "key"
    if mode not in ("key", "entra"):
        raise ConfigError(f"SMALLFIRST_CALLER_AUTH must be key or entra, not {mode!r}")
    return mode


def reset() -> None:
    """Forget every service (tests that change the environment between modules)."""
    for service in (cascade, answers, blob_store, work_queue, ingestor, dead_letters, shadow_queue, shadow_worker,
                    review_queue, rate_limit):
        service.cache_clear()

"""The app's services container: process-wide objects, created on first use and reused.

Never at import, so the host's indexing and cold start stay cheap; the handlers in this package ask here.
"""

from __future__ import annotations

import threading
from functools import cache, wraps
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core is imported on first use, not when the host indexes the app
    from shared.core.cascade import Cascade
    from shared.pipeline.ingest import Ingestor
    from shared.pipeline.storage import BlobStore

DATA_CONNECTION = "DataStorage"  # app setting (connection string) or DataStorage__blobServiceUri etc.
CHUNK_QUEUE = "smallfirst-chunks"
POISON_QUEUE = f"{CHUNK_QUEUE}-poison"
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
    from shared.core.cascade import Cascade

    return Cascade.from_env()


@once
def blob_store() -> "BlobStore":
    from shared.pipeline.storage import BlobStore, blob_service

    return BlobStore(blob_service(DATA_CONNECTION))


@once
def chunk_queue():
    from shared.pipeline.storage import ensure_queue, queue_client, queue_service

    return ensure_queue(queue_client(queue_service(DATA_CONNECTION), CHUNK_QUEUE))


@once
def ingestor() -> "Ingestor":
    from shared.pipeline.ingest import IngestLimits, Ingestor

    settings = cascade().settings
    limits = IngestLimits(max_blob_bytes=settings.max_blob_bytes, chunk_items=settings.chunk_items)
    return Ingestor(cascade(), blob_store(), limits, enqueue=lambda text: chunk_queue().send_message(text))


def reset() -> None:
    """Forget every service (tests that change the environment between modules)."""
    for service in (cascade, blob_store, chunk_queue, ingestor):
        service.cache_clear()

"""Process-wide objects, created on first use (never at import, so cold start and indexing stay cheap)."""

from __future__ import annotations

import threading
from functools import cache, wraps
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core is imported on first use, not when the host indexes the app
    from shared.cascade import Engine
    from shared.ingest import Ingestor
    from shared.storage import BlobStore

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
def engine() -> "Engine":
    from shared.cascade import Engine

    return Engine.from_env()


@once
def blob_store() -> "BlobStore":
    from shared.storage import BlobStore, blob_service

    return BlobStore(blob_service(DATA_CONNECTION))


@once
def _chunk_queue():
    from shared.storage import ensure_queue, queue_client, queue_service

    return ensure_queue(queue_client(queue_service(DATA_CONNECTION), CHUNK_QUEUE))


@once
def ingestor() -> "Ingestor":
    from shared.ingest import Ingestor

    return Ingestor(engine(), blob_store(), enqueue=lambda text: _chunk_queue().send_message(text))

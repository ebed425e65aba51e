"""Process-wide objects, created on first use (never at import, so cold start and indexing stay cheap)."""

from __future__ import annotations

from functools import cache

from azure.core.exceptions import ResourceExistsError

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the core is imported on first use, not when the host indexes the app
    from shared.cascade import Engine
    from shared.ingest import Ingestor
    from shared.storage import BlobStore

DATA_CONNECTION = "DataStorage"  # app setting (connection string) or DataStorage__blobServiceUri etc.
CHUNK_QUEUE = "smallfirst-chunks"
POISON_QUEUE = f"{CHUNK_QUEUE}-poison"


@cache
def engine() -> "Engine":
    from shared.cascade import Engine

    return Engine.from_env()


@cache
def blob_store() -> "BlobStore":
    from shared.storage import BlobStore, blob_service

    return BlobStore(blob_service(DATA_CONNECTION))


@cache
def _chunk_queue():
    from shared.storage import queue_client, queue_service

    client = queue_client(queue_service(DATA_CONNECTION), CHUNK_QUEUE)
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


@cache
def ingestor() -> "Ingestor":
    from shared.ingest import Ingestor

    return Ingestor(engine(), blob_store(), enqueue=lambda text: _chunk_queue().send_message(text))

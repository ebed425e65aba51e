"""Blob-driven processing: Event Grid blob trigger on incoming/{task}/{name}, and the chunk queue."""

from __future__ import annotations

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from functions import runtime

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("process_incoming_blob")
@bp.blob_trigger(arg_name="client", path="incoming/{task}/{name}", connection=runtime.DATA_CONNECTION, source="EventGrid")
def process_incoming_blob(client: blob.BlobClient) -> None:
    outcome = runtime.ingestor().handle_blob(client)
    log.info("incoming/%s: %s %s", client.blob_name, outcome.outcome, outcome.detail)


@bp.function_name("process_chunk")
@bp.queue_trigger(arg_name="message", queue_name=runtime.CHUNK_QUEUE, connection=runtime.DATA_CONNECTION)
def process_chunk(message: func.QueueMessage) -> None:
    store = runtime.blob_store()

    def read_source(path: str) -> bytes:
        return store.service.get_blob_client("incoming", path).download_blob().readall()

    outcome = runtime.ingestor().handle_chunk(message.get_body().decode("utf-8"), read_source)
    log.info("chunk %s: %s", outcome.detail, outcome.outcome)


@bp.function_name("deadletter_poison_chunk")
@bp.queue_trigger(arg_name="message", queue_name=runtime.POISON_QUEUE, connection=runtime.DATA_CONNECTION)
def deadletter_poison_chunk(message: func.QueueMessage) -> None:
    outcome = runtime.ingestor().deadletter_poison(message.get_body().decode("utf-8", "replace"), message.dequeue_count)
    log.error("poison chunk dead-lettered: %s", outcome.detail)

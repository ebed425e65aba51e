"""Blob-driven processing: Event Grid blob trigger on incoming/{task}/{name}, and the chunk queue."""

from __future__ import annotations

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from functions import services

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("process_incoming_blob")
@bp.blob_trigger(arg_name="client", path="incoming/{task}/{name}", connection=services.DATA_CONNECTION, source="EventGrid")
def process_incoming_blob(client: blob.BlobClient) -> None:
    result = services.ingestor().handle_blob(client)
    log.info("incoming/%s: %s %s", client.blob_name, result.disposition, result.detail)


@bp.function_name("process_chunk")
@bp.queue_trigger(arg_name="message", queue_name=services.CHUNK_QUEUE, connection=services.DATA_CONNECTION)
def process_chunk(message: func.QueueMessage) -> None:
    result = services.ingestor().handle_chunk(message.get_body().decode("utf-8"))
    log.info("chunk %s: %s", result.detail, result.disposition)


@bp.function_name("deadletter_poison_chunk")
@bp.queue_trigger(arg_name="message", queue_name=services.POISON_QUEUE, connection=services.DATA_CONNECTION)
def deadletter_poison_chunk(message: func.QueueMessage) -> None:
    result = services.ingestor().deadletter_poison(message.get_body().decode("utf-8", "replace"), message.dequeue_count)
    log.error("poison chunk dead-lettered: %s", result.detail)

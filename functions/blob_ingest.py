"""Blob-driven processing: the Event Grid blob trigger on incoming/{task}/{name}, and the work queue."""

from __future__ import annotations

import logging

import azure.functions as func
import azurefunctions.extensions.bindings.blob as blob

from functions import services
from functions.tracing import traced

bp = func.Blueprint()
log = logging.getLogger(__name__)


@bp.function_name("process_incoming_blob")
@bp.blob_trigger(arg_name="client", path="incoming/{task}/{name}", connection=services.DATA_CONNECTION, source="EventGrid")
@traced
def process_incoming_blob(client: blob.BlobClient) -> None:
    result = services.ingestor().handle_blob(client)
    log.info("incoming/%s: %s %s", client.blob_name, result.disposition, result.detail)


@bp.function_name("process_work")
@bp.queue_trigger(arg_name="message", queue_name=services.WORK_QUEUE, connection=services.DATA_CONNECTION)
@traced
def process_work(message: func.QueueMessage) -> None:
    result = services.ingestor().handle_work(message.get_body().decode("utf-8"))
    log.info("work %s: %s", result.detail, result.disposition)


@bp.function_name("deadletter_poison_work")
@bp.queue_trigger(arg_name="message", queue_name=services.POISON_QUEUE, connection=services.DATA_CONNECTION)
@traced
def deadletter_poison_work(message: func.QueueMessage) -> None:
    result = services.dead_letters().poison_work(message.get_body().decode("utf-8", "replace"),
                                                 services.max_dequeue_count())
    log.error("poison work message: %s %s", result.disposition, result.detail)

"""Shadow sampling: answer accepted items again with the frontier, off the request path (shared/monitoring/shadow.py)."""

import azure.functions as func

from functions import services
from functions.tracing import traced

bp = func.Blueprint()


@bp.function_name("shadow_accepted_item")
@bp.queue_trigger(arg_name="message", queue_name=services.SHADOW_QUEUE, connection=services.DATA_CONNECTION)
@traced
def shadow_accepted_item(message: func.QueueMessage) -> None:
    # Bytes that are not UTF-8 become U+FFFD and the message is dead-lettered as invalid, not retried until poison.
    services.shadow_worker().handle(message.get_body().decode("utf-8", "replace"))


@bp.function_name("deadletter_poison_shadow")
@bp.queue_trigger(arg_name="message", queue_name=f"{services.SHADOW_QUEUE}-poison",
                  connection=services.DATA_CONNECTION)
@traced
def deadletter_poison_shadow(message: func.QueueMessage) -> None:
    services.shadow_worker().deadletter_poison(message.get_body().decode("utf-8", "replace"),
                                               services.max_dequeue_count())

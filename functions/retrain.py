"""Scheduled retraining of the trained tier's heads (champion/challenger; shared/pipeline/retraining.py).

The schedule is the app setting SMALLFIRST_RETRAIN_SCHEDULE (an NCRONTAB expression; infra/ and
local.settings.sample.json set it to daily at 03:00 UTC). Nothing is retrained unless SMALLFIRST_RETRAIN_TASKS
names tasks.
"""

from __future__ import annotations

import logging

import azure.functions as func

from functions import services
from functions.tracing import traced

bp = func.Blueprint()
log = logging.getLogger(__name__)
SCHEDULE_SETTING = "SMALLFIRST_RETRAIN_SCHEDULE"


@bp.function_name("retrain_heads")
@bp.timer_trigger(arg_name="timer", schedule=f"%{SCHEDULE_SETTING}%", run_on_startup=False, use_monitor=True)
@traced
def retrain_heads(timer: func.TimerRequest) -> None:
    from shared.learning.retrain import describe
    from shared.pipeline.retraining import retrain_scheduled

    cascade = services.cascade()
    if not cascade.settings.retrain_tasks:
        log.info("retrain: no tasks in SMALLFIRST_RETRAIN_TASKS, nothing to do")
        return
    for outcome in retrain_scheduled(cascade, services.blob_store().service):
        log.info("retrain %s: %s", outcome.task, describe(outcome))

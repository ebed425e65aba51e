"""Shadow sampling: live accuracy of the answers cheaper tiers had accepted.

A share of the items a cheaper tier answered and the cascade accepted (the task's `shadow_fraction`, or the
SMALLFIRST_SHADOW_FRACTION setting for every task) is answered again by the task's frontier, off the request
path: the answer service picks them when results are published and puts them on a queue
(shared/pipeline/shadow_pick.py), and `ShadowWorker.handle` runs the frontier through `run_tier`, compares the
answers and appends a ShadowRecord to `shadow/<task>/<yyyy-mm-dd>.jsonl`. The user's answer never waits for
it or changes because of it.

A claim written only-if-absent before the frontier call means a redelivered shadow message never pays twice.
After each pair the day's live accuracy (Wilson 95% interval) is recomputed from the day's blob and published
as gauges; a lower bound below the task's `target_accuracy` logs a WARNING (the alert), once a day has
MIN_PAIRS_FOR_ALERT pairs. Re-reading the day after every pair would be quadratic in the day's pairs, so past
RECHECK_EVERY_PAIR_UP_TO pairs a worker re-reads it at most every RECHECK_S seconds.

A message on the shadow queue is checked before any of it is used (`ShadowMessage`), as work messages are: one
that fails is dead-lettered under `deadletter/_/` with why, never retried, and nothing else is written.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any

from opentelemetry import metrics
from pydantic import Field, ValidationError, field_validator

from shared.core.cascade import Cascade
from shared.core.policy import frontier_of
from shared.foundation.records import ITEM_ID_MAX_CHARS, Item, ShadowRecord
from shared.core.run_tier import run_tier
from shared.foundation.tasks import TASK_NAME, AnyTask, ExtractionTask
from shared.foundation.text_files import jsonl_lines
from shared.errors import UnknownTaskError, WriteConflict
from shared.foundation.answers import fields_correct, same_answer
from shared.foundation.metrics import wilson_interval
from shared.monitoring.stats import latest_shadows
from shared.pipeline.blob_names import Containers, has_unsafe_segment, poison_deadletter, shadow_claim, shadow_day
from shared.pipeline.shadow_pick import MAX_MESSAGE_BYTES, ShadowRequest
from shared.pipeline.storage import BlobStore

log = logging.getLogger(__name__)
# Below this many pairs in a day the interval is too wide to say anything; no alert yet.
MIN_PAIRS_FOR_ALERT = 30
RECHECK_EVERY_PAIR_UP_TO = 200
RECHECK_S = 60.0
SOURCE_MAX_CHARS = 1100  # `incoming/<task>/<name>` of a name Azure allows, or `http/<hash>`
NAME_MAX_CHARS = 100  # a task or tier name


class ShadowMessage(ShadowRequest):
    """A shadow request as taken off the queue. Anyone with write access to the queue can forge one, and its task
    names blobs (the day's pairs, the claim) and its text is paid for at the frontier, so each field is bounded and
    checked before use: a task name as task files have them, a source path with no empty, `.` or `..` segment, an id
    as items have them, and no more text than a message the answer service sends."""

    task: str = Field(max_length=NAME_MAX_CHARS, pattern=TASK_NAME.pattern)
    source: str = Field(min_length=1, max_length=SOURCE_MAX_CHARS)
    id: str = Field(min_length=1, max_length=ITEM_ID_MAX_CHARS)
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_BYTES)
    accepted_tier: str = Field(min_length=1, max_length=NAME_MAX_CHARS)
    accepted_confidence: float | None = Field(default=None, ge=0.0, le=1.0)

    @field_validator("source")
    @classmethod
    def _source_path(cls, value: str) -> str:
        if has_unsafe_segment(value):
            raise ValueError("a path segment is empty, '.' or '..'")
        return value


class ShadowWorker:
    def __init__(self, cascade: Cascade, store: BlobStore, containers: Containers = Containers(),
                 meter_provider: metrics.MeterProvider | None = None) -> None:
        self.cascade = cascade
        self.store = store
        self.containers = containers
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("smallfirst")
        self._latest: dict[tuple[str, str], tuple[float, float]] = {}  # (task, day) -> (accuracy, lower bound)
        self._checked: dict[tuple[str, str], tuple[int, float]] = {}  # (task, day) -> (pairs read, when)
        self._lock = threading.Lock()
        meter.create_observable_gauge("smallfirst.shadow.accuracy", callbacks=[self._observe(0)],
                                      description="Live accuracy of accepted answers, today's shadow pairs")
        meter.create_observable_gauge("smallfirst.shadow.accuracy_lower_bound", callbacks=[self._observe(1)],
                                      description="Lower bound of its 95% Wilson interval")

    def _observe(self, which: int):
        def callback(_options):
            with self._lock:
                return [metrics.Observation(value[which], {"smallfirst.task": task, "smallfirst.day": day})
                        for (task, day), value in self._latest.items()]
        return callback

    def handle(self, message_text: str) -> ShadowRecord | None:
        """Answer one request with the frontier and record the pair; None if it was shadowed already, or the
        message was invalid (then dead-lettered)."""
        if len(message_text.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES:
            return self._invalid(message_text, f"message: over the {MAX_MESSAGE_BYTES} bytes a shadow request has")
        try:
            request = ShadowMessage.model_validate_json(message_text)
            task = self.cascade.tasks.get(request.task)
        except ValidationError as exc:
            return self._invalid(message_text, "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}"
                                                         for e in exc.errors()[:5]))
        except UnknownTaskError as exc:
            return self._invalid(message_text, f"task: {exc}")
        frontier = frontier_of(task, self.cascade.settings.tiers)
        if frontier is None:
            log.warning("shadow: task %s has no configured frontier tier; %s not shadowed", task.name, request.id)
            return None
        try:
            self.store.write(self.containers.claims, shadow_claim(task.name, request.source, request.id),
                             datetime.now(timezone.utc).isoformat(), content_type="text/plain", metadata={},
                             only_if_absent=True)
        except WriteConflict:
            return None  # a redelivered message: this item's frontier call is paid for already
        attempt = run_tier(self.cascade.tiers.get(frontier), task, Item(id=request.id, text=request.text))
        answered = attempt.answered
        pair = ShadowRecord(
            task=task.name, id=request.id, source=request.source, accepted_tier=request.accepted_tier,
            accepted_answer=request.accepted_answer, accepted_confidence=request.accepted_confidence,
            frontier_tier=frontier, frontier_answer=attempt.answer if answered else None,
            agree=same_answer(request.accepted_answer, attempt.answer) if answered else None,
            field_agreement=(fields_correct(request.accepted_answer, attempt.answer)
                             if answered and isinstance(task, ExtractionTask) else None),
            frontier_cost_usd=attempt.cost_usd, at=datetime.now(timezone.utc))
        day = shadow_day(task.name, pair.at.date())
        self.store.append_line(self.containers.shadow, day, pair.model_dump_json())
        self._check_day(task, pair.at.date().isoformat(), day)
        return pair

    def _invalid(self, message_text: str, why: str) -> None:
        """A dead letter under `deadletter/_/` saying which field was refused, with the message's first 2,000
        characters; no other blob is named from the message (a forged one never reaches the frontier either)."""
        record = {"reason": "invalid_shadow_message", "error": why, "message": message_text[:2000],
                  "at": datetime.now(timezone.utc).isoformat()}
        self.store.write(self.containers.deadletter, poison_deadletter("shadow-invalid", message_text),
                         json.dumps(record, indent=2), content_type="application/json",
                         metadata={"reason": "invalid_shadow_message"})
        log.error("dead-lettered an invalid shadow request: %s", why)
        return None

    def deadletter_poison(self, message_text: str, tries: int) -> str:
        """A shadow request that failed every try, as a dead letter (its item's answer was published before it
        was sent; only the sample is lost). Returns the dead letter's name."""
        record: dict[str, Any] = {"reason": "poison_shadow_message", "error": f"failed {tries} times",
                                  "message": message_text, "at": datetime.now(timezone.utc).isoformat()}
        try:
            request = ShadowRequest.model_validate_json(message_text)
            record.update(task=request.task, id=request.id, source=request.source)
        except ValueError:
            record["error"] = f"not a shadow request; failed {tries} times"
        name = poison_deadletter("shadow-poison", message_text)
        self.store.write(self.containers.deadletter, name, json.dumps(record, indent=2),
                         content_type="application/json", metadata={"reason": "poison_shadow_message"})
        log.error("dead-lettered a shadow request that failed %d times: %s", tries, name)
        return name

    def _check_day(self, task: AnyTask, day: str, name: str) -> None:
        with self._lock:
            pairs_read, when = self._checked.get((task.name, day), (0, float("-inf")))
            if pairs_read >= RECHECK_EVERY_PAIR_UP_TO and time.monotonic() - when < RECHECK_S:
                return
        lines = [line for _, line in jsonl_lines(self.store.read(self.containers.shadow, name).decode("utf-8"))]
        pairs = [p for p in latest_shadows(ShadowRecord.model_validate_json(line) for line in lines)
                 if p.agree is not None]
        right = sum(p.agree for p in pairs)
        low, high = wilson_interval(right, len(pairs))
        with self._lock:
            self._latest[(task.name, day)] = (right / len(pairs) if pairs else 0.0, low)
            self._checked[(task.name, day)] = (len(lines), time.monotonic())
        if len(pairs) >= MIN_PAIRS_FOR_ALERT and low < task.target_accuracy:
            log.warning("shadow: live accuracy of %s on %s is %.3f (95%% interval %.3f-%.3f, %d pairs): the lower "
                        "bound is below the target %.3f", task.name, day, right / len(pairs), low, high, len(pairs),
                        task.target_accuracy)

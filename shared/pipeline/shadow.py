"""Shadow sampling: live accuracy of the answers cheaper tiers had accepted.

A share of the items a cheaper tier answered and the cascade accepted (the task's `shadow_fraction`, or the
SMALLFIRST_SHADOW_FRACTION setting for every task) is answered again by the task's frontier, off the request
path: `shadow_requests` picks them when results are published, `send_shadows` puts them on a queue (never
at the answers' expense), and `ShadowWorker.handle` runs the frontier through `run_tier`, compares the
answers and appends a ShadowRecord to `shadow/<task>/<yyyy-mm-dd>.jsonl`. The user's answer never waits for
it or changes because of it.

The pick is a hash of (task, source, id) against the fraction, so a redelivered input picks the same items;
a claim written only-if-absent before the frontier call means a redelivered shadow message never pays twice.
After each pair the day's live accuracy (Wilson 95% interval) is recomputed from the day's blob and published
as gauges; a lower bound below the task's `target_accuracy` logs a WARNING (the alert), once a day has
MIN_PAIRS_FOR_ALERT pairs. Re-reading the day after every pair would be quadratic in the day's pairs, so past
RECHECK_EVERY_PAIR_UP_TO pairs a worker re-reads it at most every RECHECK_S seconds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from datetime import datetime, timezone
from typing import Any, Callable

from opentelemetry import metrics
from pydantic import BaseModel

from shared.core.cascade import Cascade
from shared.core.policy import frontier_of
from shared.foundation.records import Item, ResultRecord, ShadowRecord
from shared.core.run_tier import run_tier
from shared.foundation.tasks import AnyTask, ExtractionTask
from shared.foundation.text_files import jsonl_lines
from shared.errors import WriteConflict
from shared.foundation.answers import fields_correct, same_answer
from shared.foundation.metrics import wilson_interval
from shared.operations.stats import latest_shadows
from shared.pipeline.blob_names import Containers, poison_deadletter, shadow_claim, shadow_day
from shared.pipeline.storage import BlobStore

log = logging.getLogger(__name__)
# Below this many pairs in a day the interval is too wide to say anything; no alert yet.
MIN_PAIRS_FOR_ALERT = 30
# A queue message holds 64 KiB, and messages go base64-encoded (as the Functions trigger expects): 4/3 of the
# text, so 48,000 bytes of text leave a little room.
MAX_MESSAGE_BYTES = 48_000
RECHECK_EVERY_PAIR_UP_TO = 200
RECHECK_S = 60.0


class ShadowRequest(BaseModel):
    """One accepted item to answer again with the frontier (a queue message)."""

    task: str
    source: str
    id: str
    text: str
    accepted_tier: str
    accepted_answer: object
    accepted_confidence: float | None = None


def picked(task: str, source: str, item_id: str, fraction: float) -> bool:
    """Deterministic: the same item is always picked, or never, at a given fraction."""
    digest = hashlib.sha256(f"{task}\n{source}\n{item_id}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def shadow_requests(cascade: Cascade, task: AnyTask, items: list[Item], records: list[ResultRecord],
                    source: str) -> list[ShadowRequest]:
    """Of an input's finished items, those to shadow: accepted by a non-frontier tier, and picked."""
    fraction = cascade.settings.shadow_fraction if cascade.settings.shadow_fraction is not None \
        else task.shadow_fraction
    frontier = frontier_of(task, cascade.settings.tiers)
    if fraction <= 0 or frontier is None:
        return []
    texts = {item.id: item.text for item in items}
    return [ShadowRequest(task=task.name, source=source, id=r.id, text=texts[r.id], accepted_tier=r.tier,
                          accepted_answer=r.answer, accepted_confidence=r.confidence)
            for r in records
            if r.status == "accepted" and r.tier and r.tier != frontier and r.id in texts
            and picked(task.name, source, r.id, fraction)]


def send_shadows(requests: list[ShadowRequest], send: Callable[[str], Any]) -> int:
    """Put each request on the shadow queue through `send`; returns how many went. A shadow is a sample taken
    for monitoring, so losing one never costs the answers it samples: a request too large for a queue message
    (a long item in a script of 3-4 UTF-8 bytes a character) is skipped, and one the queue refuses is logged."""
    sent = 0
    for request in requests:
        text = request.model_dump_json()
        if len(text.encode("utf-8")) > MAX_MESSAGE_BYTES:
            log.warning("not shadowing %s item %s: its request is over a queue message's %d bytes",
                        request.task, request.id, MAX_MESSAGE_BYTES)
            continue
        try:
            send(text)
        except Exception:  # the queue refused or is unreachable: this sample is lost, the answer is not
            log.warning("could not queue the shadow of %s item %s", request.task, request.id, exc_info=True)
            continue
        sent += 1
    return sent


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
        """Answer one request with the frontier and record the pair; None if it was shadowed already."""
        request = ShadowRequest.model_validate_json(message_text)
        task = self.cascade.tasks.get(request.task)
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

"""The shadow pick: which accepted items of an input are answered again by the frontier, off the request path
(shared/monitoring/shadow.py's ShadowWorker does that), and putting them on the shadow queue.

A share of the items a cheaper tier answered and the cascade accepted (the task's `shadow_fraction`, or the
SMALLFIRST_SHADOW_FRACTION setting for every task) is picked when results are published. The pick is a hash of
(task, source, id) against the fraction, so a redelivered input picks the same items. Sending never costs the
answers it samples.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, Callable

from pydantic import BaseModel

from shared.core.cascade import Cascade
from shared.core.policy import frontier_of
from shared.foundation.records import Item, ResultRecord
from shared.foundation.tasks import AnyTask

log = logging.getLogger(__name__)
# A queue message holds 64 KiB, and messages go base64-encoded (as the Functions trigger expects): 4/3 of the
# text, so 48,000 bytes of text leave a little room.
MAX_MESSAGE_BYTES = 48_000


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

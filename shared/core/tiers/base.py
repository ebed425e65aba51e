"""The tier interface: a tier answers one item of a task with a value and its confidence, or raises TierError; a
tier that `batches` answers several items in one call (`answer_many`), each answer what that item would get alone.

Tiers only answer and score; whether an answer is accepted is decided by `shared/core/policy.py`, and
`shared/core/run_tier.py` is the one function that calls a tier (budget, retries, timing, cost).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Sequence

from pydantic import BaseModel

from shared.core.config import TierConfig
from shared.foundation.records import Probability
from shared.foundation.tasks import AnyTask, ClassificationTask, ExtractionTask


class TierAnswer(BaseModel):
    value: Any  # the label, or the extracted object
    confidence: Probability
    confidence_method: str
    field_confidence: dict[str, Probability] | None = None
    label_probs: dict[str, Probability] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in, served from the provider's prompt cache
    note: str | None = None  # why the confidence is what it is, where the tier has more to say than its method


class Tier(ABC):
    def __init__(self, config: TierConfig) -> None:
        self.config = config
        self.unpriced_warned = False  # run_tier logs the first attempt it cannot price, once per tier

    @property
    def name(self) -> str:
        return self.config.name

    def answer(self, task: AnyTask, text: str, decide_at: float | None = None) -> TierAnswer:
        """`decide_at`: the lowest confidence the policy would accept from this tier, for a tier that can stop
        scoring once the verdict is settled (sample agreement); None means score in full."""
        if isinstance(task, ClassificationTask):
            return self.classify(task, text, decide_at=decide_at)
        return self.extract(task, text)

    async def aanswer(self, task: AnyTask, text: str, decide_at: float | None = None) -> TierAnswer:
        """`answer` on the async path. A tier without a native async client (in-process models) answers on a
        worker thread; the caller's concurrency bound (the batch's semaphore) limits how many at once."""
        return await asyncio.to_thread(self.answer, task, text, decide_at)

    def batches(self, task: AnyTask) -> bool:
        """Whether this tier answers several of `task`'s items in one call (`answer_many`), for less per item than
        one at a time. The cascade and `smallfirst eval` then send it a batch; each item is still judged alone."""
        return False

    def answer_many(self, task: AnyTask, texts: Sequence[str], decide_at: float | None = None) -> list[TierAnswer]:
        """An answer per text, in their order; a TierError fails them all. One `answer` at a time here; a tier
        that `batches` answers them in one call."""
        return [self.answer(task, text, decide_at) for text in texts]

    @abstractmethod
    def classify(self, task: ClassificationTask, text: str, decide_at: float | None = None) -> TierAnswer: ...

    @abstractmethod
    def extract(self, task: ExtractionTask, text: str) -> TierAnswer: ...

    @abstractmethod
    def probe(self) -> str:
        """A short description of the tier if it is reachable (its endpoint answers, its model loads), spending no
        tokens; raises otherwise. `/api/health` and `smallfirst health` ask this."""

    @abstractmethod
    def health(self) -> str:
        """The deep check: a short description of the tier if it answers a request (an endpoint's costs tokens);
        raises otherwise. `/api/health?deep=true` and `smallfirst health --deep` ask this."""

"""The records at the core's boundary: an input Item, one Attempt per tier tried, one ResultRecord per item."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["accepted", "escalated", "needs_review", "failed"]
# answered: the tier gave a valid answer and no verdict was asked for (evaluation runs each tier alone);
# accepted / low_confidence: the verdict of the task's AcceptancePolicy on an answer;
# the rest: why the tier gave no answer (shared/core/run_tier.py maps each error to one of them).
AttemptOutcome = Literal[
    "answered", "accepted", "low_confidence", "invalid_output", "truncated", "too_large", "error"
]


class Item(BaseModel):
    """One input item; ``text`` is what the model reads."""

    id: str = Field(min_length=1, max_length=512)
    text: str


class Attempt(BaseModel):
    """One tier's try at one item: its answer (if any), what it cost, and the verdict on it."""

    tier: str
    outcome: AttemptOutcome
    reason: str | None = None
    answer: Any = None
    confidence: float | None = None  # what the threshold is compared with (calibrated, when the task has a map)
    raw_confidence: float | None = None  # the tier's own
    confidence_method: str | None = None
    field_confidence: dict[str, float] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0  # of tokens_in, served from the provider's prompt cache (priced at its cached rate)
    latency_ms: float = 0.0
    cost_usd: float = 0.0

    @property
    def answered(self) -> bool:
        return self.outcome in ("answered", "accepted", "low_confidence")


class ResultRecord(BaseModel):
    """The output contract: one per item, with every attempt that led to it."""

    id: str
    task: str
    status: Status
    answer: Any = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    confidence_method: str | None = None
    field_confidence: dict[str, float] | None = None
    tier: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None

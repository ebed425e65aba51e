"""The public output contract: one ResultRecord per item, with every tier attempt."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Status = Literal["accepted", "escalated", "needs_review", "failed"]
Outcome = Literal["accepted", "low_confidence", "invalid_output", "too_large", "error"]


class Item(BaseModel):
    """One input item; ``text`` is what the model reads."""

    id: str = Field(min_length=1, max_length=512)
    text: str


class Attempt(BaseModel):
    tier: str
    outcome: Outcome
    reason: str | None = None
    answer: Any = None
    confidence: float | None = None
    confidence_method: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0


class ResultRecord(BaseModel):
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

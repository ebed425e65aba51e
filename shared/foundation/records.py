"""The records at the core's boundary: an input Item, one Attempt per tier tried, one ResultRecord per item."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, computed_field, field_validator

# reviewed: a person decided the item (a CorrectionRecord holds the decision); the others are the cascade's.
Status = Literal["accepted", "escalated", "needs_review", "failed", "reviewed"]
# answered: the tier gave a valid answer and no verdict was asked for (evaluation runs each tier alone);
# accepted / low_confidence: the verdict of the task's AcceptancePolicy on an answer;
# the rest: why the tier gave no answer (shared/core/run_tier.py maps each error to one of them).
AttemptOutcome = Literal[
    "answered", "accepted", "low_confidence", "invalid_output", "truncated", "too_large", "error"
]


ITEM_ID_MAX_CHARS = 512
Probability = Annotated[float, Field(ge=0.0, le=1.0)]  # NaN and infinities fail the bounds too


class Item(BaseModel):
    """One input item; ``text`` is what the model reads."""

    id: str = Field(min_length=1, max_length=ITEM_ID_MAX_CHARS)
    text: str

    @field_validator("id", mode="before")
    @classmethod
    def _whole_number_as_text(cls, value: Any) -> Any:
        """Exported tables often number their rows: an integer id is its decimal text (a fraction is refused, as
        1e2 and 100 would be different ids for the same number)."""
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("text")
    @classmethod
    def _valid_unicode(cls, text: str) -> str:
        """JSON's \\ud800 escapes give Python strings that are not Unicode: no tokenizer or UTF-8 writer takes
        them (the id is checked by its length constraint, which pydantic validates as Unicode)."""
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"the text holds an unpaired surrogate at character {exc.start}: not Unicode") from None
        return text


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
    # False: the tier's model has no known price (no listed price, no PRICE_* settings), so cost_usd counts its
    # tokens at zero. Records written before it was kept read as known.
    cost_known: bool = True

    @property
    def answered(self) -> bool:
        return self.outcome in ("answered", "accepted", "low_confidence")


class ResultRecord(BaseModel):
    """The output contract: one per item, with every attempt that led to it."""

    id: str
    task: str
    status: Status
    answer: Any = None
    confidence: Probability | None = None
    confidence_method: str | None = None
    field_confidence: dict[str, float] | None = None
    tier: str | None = None
    attempts: list[Attempt] = Field(default_factory=list)
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    # What the item would have cost had the frontier answered it alone (shared/core/savings.py).
    counterfactual_cost_usd: float | None = None
    finished_at: datetime | None = None
    error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def cost_known(self) -> bool:
        """Whether `cost_usd` is the whole cost: False when a tier with no known price was tried (written out with
        the record for its readers; worked out again from the attempts when a record is read)."""
        return all(attempt.cost_known for attempt in self.attempts)


def utc(moment: datetime) -> datetime:
    """Records written by the app carry a UTC offset; one written by hand without one is taken as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


ReviewDecision = Literal["accept", "correct", "reject"]


class CorrectionRecord(BaseModel):
    """A person's decision on an item in review: ``final_answer`` is what is right (None when rejected),
    ``draft_answer`` what the cascade had proposed (kept for auditing; never trained on)."""

    task: str
    id: str
    # The input the item came from (`incoming/<task>/<name>`, as a ShadowRecord names it): ids are unique within
    # one input only. None in records written before it was kept.
    source: str | None = None
    text: str = Field(min_length=1)
    decision: ReviewDecision = "correct"
    final_answer: Any
    draft_answer: Any = None
    draft_tier: str | None = None
    by: str = Field(min_length=1)
    at: datetime


class ShadowRecord(BaseModel):
    """An item a cheaper tier answered and the cascade accepted, answered again by the frontier off the
    request path: one pair of answers, to estimate the live accuracy of accepted answers."""

    task: str
    id: str
    source: str | None = None  # the input blob (or "http") the item came from; with id, the key for duplicates
    accepted_tier: str
    accepted_answer: Any
    accepted_confidence: float | None = None
    frontier_tier: str
    frontier_answer: Any = None  # None when the frontier gave no valid answer (then agree is None)
    agree: bool | None = None
    field_agreement: dict[str, bool] | None = None  # extraction: per field
    frontier_cost_usd: float = 0.0
    at: datetime

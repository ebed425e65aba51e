"""The tier interface and the errors the cascade reacts to."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel

from shared.config import TierConfig
from shared.tasks import ClassificationTask, ExtractionTask


class TierError(Exception):
    """The tier could not answer (permanent for this item: bad request, auth, ...)."""


class TransientTierError(TierError):
    """Worth retrying: 429, 5xx, timeout, connection error."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InvalidOutputError(TierError):
    """The model answered, but the answer does not parse or does not validate against the task's schema."""

    def __init__(self, message: str, raw: str | None = None, tokens_in: int = 0, tokens_out: int = 0) -> None:
        super().__init__(message)
        self.raw = raw
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


class TierAnswer(BaseModel):
    answer: Any
    confidence: float
    confidence_method: str
    field_confidence: dict[str, float] | None = None
    label_probs: dict[str, float] | None = None
    tokens_in: int = 0
    tokens_out: int = 0


class Tier(ABC):
    def __init__(self, config: TierConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    def answer(self, task: ClassificationTask | ExtractionTask, text: str) -> TierAnswer:
        if isinstance(task, ClassificationTask):
            return self.classify(task, text)
        return self.extract(task, text)

    @abstractmethod
    def classify(self, task: ClassificationTask, text: str) -> TierAnswer: ...

    @abstractmethod
    def extract(self, task: ExtractionTask, text: str) -> TierAnswer: ...

    @abstractmethod
    def health(self) -> str:
        """A short description of the tier if it answers; raises TierError otherwise."""


class InputTooLargeError(TierError):
    """The item does not fit the tier's context or budget."""

"""Every exception smallfirst raises, in one tree:

    SmallfirstError
    ├── ConfigError                 a setting is missing or malformed; the message names the variable
    ├── NoTierError                 none of a task's tiers is configured: the task cannot be served as deployed
    ├── TaskError                   a task file is invalid; the message names the file and the field
    │   └── UnknownTaskError        no task of that name
    ├── InputError                  an input is unusable as a whole; `reason` is a stable code
    ├── ReviewItemNotFound          no item of that id waits in review
    ├── WriteConflict               a conditional blob write lost: the blob exists or changed meanwhile
    ├── ClaimHeldError              another live worker holds the claim on this work; `retry_after` seconds
    └── TierError                   a tier could not answer this item (permanent: bad request, auth, ...)
        ├── TransientTierError      worth retrying: 429, 5xx, timeout, connection; `retry_after` seconds
        ├── InputTooLargeError      the item does not fit the tier's context or budget
        └── InvalidOutputError      the model answered, but not valid JSON for the task's schema
            └── OutputTruncatedError    generation hit the output-token limit before the answer closed

SDK and HTTP errors become TierErrors inside each backend (`shared/core/tiers/`; an HTTP status by the one rule
in `chat.http_status_error`); `shared/core/run_tier.py` maps TierErrors to attempt outcomes in one table;
`InputError.reason` names dead letters and problem+json; NoTierError is HTTP 503 (`functions/http_api.py`). A
message naming many things names `some_of` them.
"""

from __future__ import annotations

from collections.abc import Sequence


class SmallfirstError(Exception):
    """Base of every error smallfirst raises on purpose."""


class ConfigError(SmallfirstError, ValueError):
    """A setting is missing or malformed; the message names the variable."""


class NoTierError(SmallfirstError):
    """None of the task's tiers is configured: every setting is valid, but this deployment cannot serve the task
    (HTTP 503, a `no_tier` dead letter), unlike a malformed setting (ConfigError), which stops the app starting."""


class TaskError(SmallfirstError, ValueError):
    """A task file is missing or invalid; the message names the file and the field."""


class UnknownTaskError(TaskError, LookupError):
    """No task of that name in the catalogue."""

    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"no task named {name!r}; known: {', '.join(known) or '(none)'}")
        self.name = name
        self.known = known


class InputError(SmallfirstError, ValueError):
    """The whole input is unusable; `reason` is a stable code for dead-letter records and problem+json."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class ReviewItemNotFound(SmallfirstError, LookupError):
    """No item of that id (and input) waits in the task's review queue."""


class WriteConflict(SmallfirstError):
    """A conditional blob write, read or delete lost: the blob exists, or changed since its etag was read."""


class ClaimHeldError(SmallfirstError):
    """Another worker holds a live claim on this work; try again after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TierError(SmallfirstError):
    """The tier could not answer (permanent for this item: bad request, auth, ...)."""


class TransientTierError(TierError):
    """Worth retrying: 429, 5xx, timeout, connection error."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class InputTooLargeError(TierError):
    """The item does not fit the tier's context or budget."""


class InvalidOutputError(TierError):
    """The model answered, but the answer does not parse or does not validate against the task's schema.

    The tokens were spent all the same, so they travel with the error and are paid for in the attempt.
    """

    def __init__(self, message: str, raw: str | None = None, tokens_in: int = 0, tokens_out: int = 0) -> None:
        super().__init__(message)
        self.raw = raw
        self.tokens_in = tokens_in
        self.tokens_out = tokens_out


class OutputTruncatedError(InvalidOutputError):
    """Generation stopped at the tier's output-token limit before the JSON answer was complete."""


def some_of(names: Sequence[object], limit: int = 10) -> str:
    """The first `limit` of `names`, quoted, then ", ..." if there are more: a message stays one readable line
    (a file with 10,000 unknown labels made a 109 KB one)."""
    return ", ".join(map(repr, names[:limit])) + (", ..." if len(names) > limit else "")

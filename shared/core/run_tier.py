"""The one function that runs a tier on an item: budget check, retries, timing, cost, errors as outcomes.

The cascade and evaluation both call `run_tier` (or `arun_tier`, its twin for the async path, which differs
only in awaiting the tier); nothing is decided here: whether the item fits the tier's budget is the policy's
rule (`over_input_budget`), as is the verdict on an answer. The attempt it returns is `answered` or says why
there is no answer.
"""

from __future__ import annotations

import logging
import time

from shared.core.policy import over_input_budget
from shared.foundation.records import Attempt, AttemptOutcome, Item
from shared.core.retry import RetryPolicy, acall_with_retries, call_with_retries
from shared.foundation.tasks import AnyTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.errors import InputTooLargeError, InvalidOutputError, OutputTruncatedError, TierError

log = logging.getLogger(__name__)

# Which outcome each tier error means; the first class that matches wins, so subclasses come first.
ERROR_OUTCOMES: tuple[tuple[type[TierError], AttemptOutcome], ...] = (
    (OutputTruncatedError, "truncated"),
    (InvalidOutputError, "invalid_output"),
    (InputTooLargeError, "too_large"),
    (TierError, "error"),
)


def outcome_of(error: TierError) -> AttemptOutcome:
    return next(outcome for kind, outcome in ERROR_OUTCOMES if isinstance(error, kind))


def run_tier(tier: Tier, task: AnyTask, item: Item, decide_at: float | None = None) -> Attempt:
    """One tier on one item; `decide_at` lets a sampling tier stop once the verdict is settled (see Tier.answer)."""
    refused = over_input_budget(tier.config, task, item.text)
    if refused is not None:
        return refused
    started = time.perf_counter()
    try:
        answer = call_with_retries(lambda: tier.answer(task, item.text, decide_at), _retry_policy(tier))
    except TierError as exc:
        return _failed(tier, task, item, exc, started)
    except Exception as exc:  # a tier's own defect: this item escalates, the batch around it goes on
        return _failed(tier, task, item, _unexpected(tier, exc), started)
    return _answered(tier, answer, started)


async def arun_tier(tier: Tier, task: AnyTask, item: Item, decide_at: float | None = None) -> Attempt:
    """`run_tier` on the async path (Tier.aanswer): the same budget, retries, timing, cost and outcomes."""
    refused = over_input_budget(tier.config, task, item.text)
    if refused is not None:
        return refused
    started = time.perf_counter()
    try:
        answer = await acall_with_retries(lambda: tier.aanswer(task, item.text, decide_at), _retry_policy(tier))
    except TierError as exc:
        return _failed(tier, task, item, exc, started)
    except Exception as exc:  # as in run_tier
        return _failed(tier, task, item, _unexpected(tier, exc), started)
    return _answered(tier, answer, started)


def _unexpected(tier: Tier, exc: Exception) -> TierError:
    """An exception no tier should raise, as a tier error (logged with its traceback, to be fixed)."""
    log.error("tier %s raised %s", tier.name, type(exc).__name__, exc_info=exc)
    return TierError(f"{tier.name} failed unexpectedly: {type(exc).__name__}: {exc}")


def _retry_policy(tier: Tier) -> RetryPolicy:
    return RetryPolicy(max_attempts=tier.config.max_attempts)


def _failed(tier: Tier, task: AnyTask, item: Item, exc: TierError, started: float) -> Attempt:
    outcome = outcome_of(exc)
    if outcome == "error":
        log.warning("tier %s failed on %s/%s: %s", tier.name, task.name, item.id, exc)
    # Invalid or cut-off output was generated, and is paid for.
    tokens_in, tokens_out = (exc.tokens_in, exc.tokens_out) if isinstance(exc, InvalidOutputError) else (0, 0)
    return Attempt(tier=tier.name, outcome=outcome, reason=str(exc), tokens_in=tokens_in, tokens_out=tokens_out,
                   latency_ms=(time.perf_counter() - started) * 1000,
                   cost_usd=tier.config.cost_usd(tokens_in, tokens_out),
                   cost_known=tier.config.price_source is not None or not (tokens_in or tokens_out))


def _answered(tier: Tier, answer: TierAnswer, started: float) -> Attempt:
    return Attempt(
        tier=tier.name,
        outcome="answered",
        answer=answer.value,
        confidence=answer.confidence,
        raw_confidence=answer.confidence,
        confidence_method=answer.confidence_method,
        field_confidence=answer.field_confidence,
        tokens_in=answer.tokens_in,
        tokens_out=answer.tokens_out,
        tokens_cached=answer.tokens_cached,
        latency_ms=(time.perf_counter() - started) * 1000,
        cost_usd=tier.config.cost_usd(answer.tokens_in, answer.tokens_out, answer.tokens_cached),
        cost_known=tier.config.price_source is not None,
    )

"""The one function that runs a tier on items: budget check, retries, timing, cost, errors as outcomes.

The cascade and evaluation both call `run_tier_batch` (a tier that batches answers the items in one call, see
`Tier.batches`), `run_tier` (a batch of one) or `arun_tier` (one item on the async path, which differs only in
awaiting the tier); nothing is decided here: whether an item fits the tier's budget is the policy's rule
(`over_input_budget`), as is the verdict on an answer. Each attempt returned is `answered` or says why there is
no answer.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from shared.core.policy import over_input_budget
from shared.foundation.records import Attempt, AttemptOutcome, Item
from shared.core.retry import RetryPolicy, acall_with_retries, call_with_retries
from shared.foundation.tasks import AnyTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.errors import (
    InputTooLargeError,
    InvalidOutputError,
    OutputTruncatedError,
    TierError,
    TransientTierError,
)

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
    (attempt,) = run_tier_batch(tier, task, [item], decide_at)
    return attempt


def run_tier_batch(tier: Tier, task: AnyTask, items: Sequence[Item], decide_at: float | None = None) -> list[Attempt]:
    """One tier on `items` in one call (`Tier.answer_many`), an attempt each in their order. An item over the tier's
    budget is refused alone; the others are asked together (`_ask`)."""
    refused = [over_input_budget(tier.config, task, item.text) for item in items]
    asked = iter(_ask(tier, task, [item for item, no in zip(items, refused) if no is None], decide_at))
    return [no if no is not None else next(asked) for no in refused]


def _ask(tier: Tier, task: AnyTask, items: list[Item], decide_at: float | None) -> list[Attempt]:
    """Items within the tier's budget, in one call. If it fails for several items other than transiently, each is
    asked again alone, so an item that breaks the call fails alone and the others are answered. An answered item's
    latency is its share of the call."""
    if not items:
        return []
    started = time.perf_counter()
    try:
        answers = call_with_retries(lambda: tier.answer_many(task, [item.text for item in items], decide_at),
                                    _retry_policy(tier))
        answered = list(zip(items, answers, strict=True))  # a tier that answered too few or too many is a defect
    except TransientTierError as exc:  # still failing after retries: asking each alone would only add load
        return [_failed(tier, task, item, exc, started) for item in items]
    except Exception as exc:
        if len(items) > 1:
            log.warning("tier %s failed on a batch of %d (%s); asking each alone", tier.name, len(items), exc)
            return [run_tier(tier, task, item, decide_at) for item in items]
        error = exc if isinstance(exc, TierError) else _unexpected(tier, exc)  # a tier's own defect: it escalates
        return [_failed(tier, task, items[0], error, started)]
    latency_ms = (time.perf_counter() - started) * 1000 / len(items)
    return [_answered(tier, answer, latency_ms) for _, answer in answered]


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
    return _answered(tier, answer, (time.perf_counter() - started) * 1000)


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
                   latency_ms=(time.perf_counter() - started) * 1000, **_cost(tier, tokens_in, tokens_out))


def _cost(tier: Tier, tokens_in: int, tokens_out: int, tokens_cached: int = 0) -> dict[str, Any]:
    """An attempt's cost and whether it is known: a tier whose model has no known price and no PRICE_* settings
    counts its tokens at zero (cost_known false). The first such attempt of each tier is logged as a warning, so a
    deployed app says so on its first result (the CLI warns before a run starts)."""
    known = tier.config.price_source is not None or not (tokens_in or tokens_out)
    if not known and not tier.unpriced_warned:
        tier.unpriced_warned = True
        log.warning("%s", tier.config.price_warning)
    return {"cost_usd": tier.config.cost_usd(tokens_in, tokens_out, tokens_cached), "cost_known": known}


def _answered(tier: Tier, answer: TierAnswer, latency_ms: float) -> Attempt:
    return Attempt(
        tier=tier.name,
        outcome="answered",
        reason=answer.note,
        answer=answer.value,
        confidence=answer.confidence,
        raw_confidence=answer.confidence,
        confidence_method=answer.confidence_method,
        field_confidence=answer.field_confidence,
        tokens_in=answer.tokens_in,
        tokens_out=answer.tokens_out,
        tokens_cached=answer.tokens_cached,
        latency_ms=latency_ms,
        **_cost(tier, answer.tokens_in, answer.tokens_out, answer.tokens_cached),
    )

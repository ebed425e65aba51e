"""Bounded exponential backoff with full jitter that honours Retry-After, for transient tier errors."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass
from typing import Awaitable, Callable, Mapping, TypeVar

from shared.errors import TransientTierError

T = TypeVar("T")
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 30.0  # a longer Retry-After means: move on to the next tier instead

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        backoff = rng.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt))
        return max(backoff, retry_after or 0.0)


def _delay_or_raise(exc: TransientTierError, attempt: int, policy: RetryPolicy, rng: random.Random | None) -> float:
    """Seconds to wait before the next try after ``exc`` on try ``attempt`` (from 0); re-raises it when none is left."""
    if attempt == policy.max_attempts - 1 or (exc.retry_after or 0) > policy.max_retry_after_s:
        raise exc
    # A new generator only for a retry: seeding one reads the OS's entropy, a call the first try need not make.
    delay = policy.delay(attempt, exc.retry_after, rng or random.Random())
    log.warning("transient tier error (%s); retry %d in %.2fs", exc, attempt + 1, delay)
    return delay


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call ``fn``; on TransientTierError wait and try again, up to ``policy.max_attempts`` calls in all."""
    for attempt in range(policy.max_attempts):
        try:
            return fn()
        except TransientTierError as exc:
            sleep(_delay_or_raise(exc, attempt, policy, rng))
    raise AssertionError("unreachable")


async def acall_with_retries(
    fn: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    rng: random.Random | None = None,
) -> T:
    """`call_with_retries` for a coroutine function: the same tries and waits, awaited."""
    for attempt in range(policy.max_attempts):
        try:
            return await fn()
        except TransientTierError as exc:
            await sleep(_delay_or_raise(exc, attempt, policy, rng))
    raise AssertionError("unreachable")


def retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from Azure's retry-after-ms / x-ms-retry-after-ms / Retry-After (an HTTP date is ignored)."""
    headers = headers or {}
    for name, scale in (("retry-after-ms", 0.001), ("x-ms-retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except ValueError:
            continue
    return None

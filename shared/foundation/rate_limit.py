"""A per-caller request limit: a token bucket per caller key, in the process.

Why in the app and not API Management: Flex Consumption has no built-in per-client throttle, and an API
Management instance in front costs a fixed monthly fee and a second endpoint for a limit that, per instance,
this bounds well enough: one caller cannot take a worker's whole capacity or run up model costs unchecked. The
limit is per instance (each keeps its own buckets), so N instances admit up to N times it; where a global limit
per subscription is required, put API Management's `rate-limit-by-key` policy in front instead.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable

MAX_CALLERS = 10_000  # buckets kept; the least recently seen caller is forgotten first (a full bucket again)


class CallerRateLimit:
    def __init__(self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_second, self.burst, self.clock = per_second, burst, clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # caller -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, caller: str) -> float:
        """Spend one token of `caller`'s bucket: 0 if it had one, else the seconds until it will."""
        with self._lock:
            now = self.clock()
            tokens, then = self._buckets.pop(caller, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
            spent = tokens >= 1
            self._buckets[caller] = (tokens - 1 if spent else tokens, now)
            while len(self._buckets) > MAX_CALLERS:
                self._buckets.popitem(last=False)
            return 0.0 if spent else (1 - tokens) / self.per_second

"""The cascade: try a task's tiers cheapest first, and stop where the policy says (core/policy.py, the rules).

Per tier: `run_tier` answers (or says why not), `AcceptancePolicy.judge` gives the verdict, `settles` says whether
to stop; `item_status` gives the record its status and answer. A batch's first tier, where it batches (the trained
tier on a classification task), is asked for all the items in one call (`run_tier_batch`); each item's attempt is
then judged alone, as if it had been asked alone.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any, Callable, Coroutine, Generator, Sequence, TypeVar

from opentelemetry import trace

from shared.core.config import Settings
from shared.core.policy import AcceptancePolicy, item_status, settles
from shared.foundation.records import Attempt, Item, ResultRecord
from shared.core.plans import adrive, drive, gather_all
from shared.core.run_tier import arun_tier, run_tier, run_tier_batch
from shared.core.savings import counterfactual_cost_usd, reference_frontier
from shared.foundation.tasks import AnyTask, TaskCatalog
from shared.core.telemetry import ItemMetrics
from shared.core.tiers.base import Tier
from shared.core.tiers.registry import TierRegistry
from shared.errors import NoTierError

T = TypeVar("T")


class Cascade:
    def __init__(self, settings: Settings, tiers: TierRegistry | None = None, tasks: TaskCatalog | None = None,
                 metrics: ItemMetrics | None = None) -> None:
        self.settings = settings
        self.tiers = tiers or TierRegistry(settings)
        self.tasks = tasks or TaskCatalog(settings.tasks_dir)
        self._metrics = metrics
        # A proxy until configure_telemetry sets the provider, then the provider's: fetched once, not per item.
        self._tracer = trace.get_tracer("smallfirst")

    @property
    def metrics(self) -> ItemMetrics:
        """Created on first use, from the meter provider in place by then (configure_telemetry sets it)."""
        if self._metrics is None:
            self._metrics = ItemMetrics()
        return self._metrics

    @classmethod
    def from_env(cls) -> "Cascade":
        return cls(Settings.from_env())

    def tier_names(self, task: AnyTask) -> list[str]:
        names = self.tiers.configured(task.tiers)
        if not names:
            raise NoTierError(f"task {task.name}: none of its tiers {task.tiers} is configured")
        return names

    def process(self, task: AnyTask, item: Item) -> ResultRecord:
        return drive(self._item_plan(task, item), lambda call: run_tier(call[0], task, item, call[1]))

    async def aprocess(self, task: AnyTask, item: Item, first: Attempt | None = None,
                       started: float | None = None) -> ResultRecord:
        """`process` on the async path: the same routing, each tier called through `arun_tier`. `first`: the first
        tier's attempt where it was asked already (in a batch), and `started` when that began."""
        return await adrive(self._item_plan(task, item, first, started),
                            lambda call: arun_tier(call[0], task, item, call[1]))

    def _call(self, task: AnyTask, name: str, policy: AcceptancePolicy) -> tuple[Tier, float | None]:
        """The tier `name` and the lowest confidence the policy would accept from it (its `decide_at`)."""
        return self.tiers.get(name), policy.lowest_accepted(name, self.settings.tiers[name].role)

    def _item_plan(self, task: AnyTask, item: Item, first: Attempt | None = None,
                   started: float | None = None) -> Generator[tuple[Tier, float | None], Attempt, ResultRecord]:
        """The routing of one item, for `drive`/`adrive`: yields (tier, decide_at) for each tier to try and
        receives its attempt (the first tier's is `first` where it was asked already); returns the record."""
        tracer = self._tracer
        with tracer.start_as_current_span("smallfirst.item") as span:
            started = time.perf_counter() if started is None else started
            policy = AcceptancePolicy(task)
            attempts: list[Attempt] = []
            for name in self.tier_names(task):
                with tracer.start_as_current_span("smallfirst.tier") as tier_span:
                    role = self.settings.tiers[name].role
                    asked = first if first is not None and not attempts else (yield self._call(task, name, policy))
                    attempt = policy.judge(asked, role)
                    tier_span.set_attributes({
                        "gen_ai.request.model": self.settings.tiers[name].model or name,
                        "gen_ai.usage.input_tokens": attempt.tokens_in, "gen_ai.usage.output_tokens": attempt.tokens_out,
                        "smallfirst.tier": name, "smallfirst.outcome": attempt.outcome,
                        "smallfirst.confidence": attempt.confidence or 0.0})
                attempts.append(attempt)
                if settles(attempt):
                    break
            record = _record(task, item, attempts, started)
            record.counterfactual_cost_usd = counterfactual_cost_usd(
                task, item, attempts, record.answer, reference_frontier(task, self.settings))
            span.set_attributes({"smallfirst.task": task.name, "smallfirst.status": record.status,
                                 "smallfirst.tier": record.tier or "", "smallfirst.cost_usd": record.cost_usd})
            self.metrics.record(task, record, self.settings)
            return record

    async def process_batch(self, task: AnyTask, items: Sequence[Item], concurrency: int | None = None,
                            on_record: Callable[[ResultRecord], None] | None = None) -> list[ResultRecord]:
        """Results in input order. The first tier, where it batches, answers all the items in one call on a
        thread; then at most `concurrency` items are in flight, each on the async path (endpoint tiers await
        their replies; in-process tiers answer on threads). `on_record` sees each record as soon as its item is
        done (to keep what was paid for)."""
        limit = asyncio.Semaphore(concurrency or self.settings.concurrency)
        started = time.perf_counter()
        firsts = await self._first_attempts(task, items)

        async def one(item: Item, first: Attempt | None) -> ResultRecord:
            async with limit:
                record = await self.aprocess(task, item, first, started if first is not None else None)
                if on_record is not None:
                    await asyncio.to_thread(on_record, record)  # it may block (a blob write): not on the loop
            return record

        # a failure (NoTierError) cancels the rest
        return await gather_all(one(item, first) for item, first in zip(items, firsts, strict=True))

    async def _first_attempts(self, task: AnyTask, items: Sequence[Item]) -> list[Attempt | None]:
        """The first tier's attempts at `items`, asked in one call where it batches (`Tier.batches`); else None for
        each, and each item asks it alone."""
        if len(items) < 2:
            return [None] * len(items)
        tier, decide_at = self._call(task, self.tier_names(task)[0], AcceptancePolicy(task))
        if not tier.batches(task):
            return [None] * len(items)
        return await asyncio.to_thread(run_tier_batch, tier, task, items, decide_at)

    def run_batch(self, task: AnyTask, items: Sequence[Item], concurrency: int | None = None,
                  on_record: Callable[[ResultRecord], None] | None = None) -> list[ResultRecord]:
        """`process_batch` from synchronous code (see `run_on_own_loop`)."""
        return self.run_on_own_loop(self.process_batch(task, items, concurrency, on_record))

    def run_on_own_loop(self, work: Coroutine[Any, Any, T]) -> T:
        """Run async work of this cascade from synchronous code, on an event loop of its own whose async
        clients are closed before it ends (async clients belong to one loop; see shared/core/tiers/chat.py)."""

        async def closing_clients() -> T:
            try:
                return await work
            finally:
                await self.tiers.aclose_async_clients()

        return asyncio.run(closing_clients())


def _record(task: AnyTask, item: Item, attempts: list[Attempt], started: float) -> ResultRecord:
    """The item's record: its status and answer as the policy rules (`item_status`)."""
    status, chosen = item_status(attempts)
    return ResultRecord(
        id=item.id,
        task=task.name,
        status=status,
        answer=chosen.answer if chosen else None,
        confidence=chosen.confidence if chosen else None,
        confidence_method=chosen.confidence_method if chosen else None,
        field_confidence=chosen.field_confidence if chosen else None,
        tier=chosen.tier if chosen else None,
        attempts=attempts,
        latency_ms=(time.perf_counter() - started) * 1000,
        cost_usd=sum(a.cost_usd for a in attempts),
        finished_at=datetime.now(timezone.utc),
        error="; ".join(f"{a.tier}: {a.reason}" for a in attempts) if status == "failed" else None,
    )

"""The cascade: try a task's tiers cheapest first, and stop at the first answer the task's policy accepts.

Per tier: `run_tier` answers (or says why not), `AcceptancePolicy.judge` gives the verdict. An item no tier
answered acceptably goes to review with the most confident draft; one no tier answered at all has failed.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from opentelemetry import trace

from shared.core.config import Settings
from shared.core.policy import AcceptancePolicy
from shared.core.records import Attempt, Item, ResultRecord, Status
from shared.core.run_tier import run_tier
from shared.core.savings import counterfactual_cost_usd, reference_frontier
from shared.core.tasks import AnyTask, TaskCatalog
from shared.core.tiers.registry import TierRegistry
from shared.errors import NoTierError


class Cascade:
    def __init__(self, settings: Settings, tiers: TierRegistry | None = None, tasks: TaskCatalog | None = None) -> None:
        self.settings = settings
        self.tiers = tiers or TierRegistry(settings)
        self.tasks = tasks or TaskCatalog(settings.tasks_dir)

    @classmethod
    def from_env(cls) -> "Cascade":
        return cls(Settings.from_env())

    def tier_names(self, task: AnyTask) -> list[str]:
        names = self.tiers.configured(task.tiers)
        if not names:
            raise NoTierError(f"task {task.name}: none of its tiers {task.tiers} is configured")
        return names

    def process(self, task: AnyTask, item: Item) -> ResultRecord:
        tracer = trace.get_tracer("smallfirst")
        with tracer.start_as_current_span("smallfirst.item") as span:
            started = time.perf_counter()
            policy = AcceptancePolicy(task)
            attempts: list[Attempt] = []
            for name in self.tier_names(task):
                with tracer.start_as_current_span("smallfirst.tier") as tier_span:
                    role = self.settings.tiers[name].role
                    attempt = policy.judge(run_tier(self.tiers.get(name), task, item, policy.lowest_accepted(name, role)),
                                           role)
                    tier_span.set_attributes({
                        "smallfirst.tier": name, "smallfirst.outcome": attempt.outcome,
                        "smallfirst.confidence": attempt.confidence or 0.0,
                        "smallfirst.tokens_in": attempt.tokens_in, "smallfirst.tokens_out": attempt.tokens_out})
                attempts.append(attempt)
                if attempt.outcome == "accepted":
                    break
            record = _record(task, item, attempts, started)
            record.counterfactual_cost_usd = counterfactual_cost_usd(
                task, item, attempts, record.answer, reference_frontier(self.settings))
            span.set_attributes({"smallfirst.task": task.name, "smallfirst.status": record.status,
                                 "smallfirst.tier": record.tier or "", "smallfirst.cost_usd": record.cost_usd})
            return record

    async def process_batch(self, task: AnyTask, items: Sequence[Item], concurrency: int | None = None,
                            on_record: Callable[[ResultRecord], None] | None = None) -> list[ResultRecord]:
        """Results in input order; at most `concurrency` items in flight (tier calls are blocking I/O).
        `on_record` sees each record as soon as its item is done (to keep what was paid for)."""

        def one(item: Item) -> ResultRecord:
            record = self.process(task, item)
            if on_record is not None:
                on_record(record)
            return record

        loop = asyncio.get_running_loop()
        # Threads start on demand, so a pool per batch is cheap; its size is the concurrency bound.
        with ThreadPoolExecutor(max_workers=concurrency or self.settings.concurrency) as pool:
            futures = [loop.run_in_executor(pool, one, item) for item in items]
            return list(await asyncio.gather(*futures))


def _record(task: AnyTask, item: Item, attempts: list[Attempt], started: float) -> ResultRecord:
    """The item's status and answer from its attempts (the last is the accepted one, if any was)."""
    drafts = [a for a in attempts if a.answered]
    chosen: Attempt | None
    if attempts[-1].outcome == "accepted":
        status: Status = "accepted" if len(attempts) == 1 else "escalated"
        chosen = attempts[-1]
    elif drafts:  # no tier was sure enough: keep the most confident answer as a draft for a person
        status, chosen = "needs_review", max(drafts, key=lambda a: a.confidence or 0.0)
    else:
        status, chosen = ("failed" if all(a.outcome == "error" for a in attempts) else "needs_review"), None
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

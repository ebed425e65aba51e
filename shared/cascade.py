"""The small-to-frontier cascade: try tiers in order, escalate on low confidence, bad output or failure."""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Sequence

from opentelemetry import trace

from shared.config import Settings
from shared.cost import cost_usd
from shared.results import Attempt, Item, ResultRecord
from shared.retry import RetryPolicy, call_with_retries
from shared.tasks import ClassificationTask, ExtractionTask, TaskCatalog
from shared.tiers.base import InputTooLargeError, InvalidOutputError, TierAnswer, TierError
from shared.tiers.factory import TierRegistry

log = logging.getLogger(__name__)
AnyTask = ClassificationTask | ExtractionTask


class NoTierError(TierError):
    """None of the task's tiers is configured."""


class Engine:
    def __init__(self, settings: Settings, tiers: TierRegistry | None = None, tasks: TaskCatalog | None = None) -> None:
        self.settings = settings
        self.tiers = tiers or TierRegistry(settings)
        self.tasks = tasks or TaskCatalog(settings.tasks_dir)

    @classmethod
    def from_env(cls) -> "Engine":
        return cls(Settings.from_env())

    def tier_names(self, task: AnyTask) -> list[str]:
        names = self.tiers.configured(task.tiers)
        if not names:
            raise NoTierError(f"task {task.name}: none of its tiers {task.tiers} is configured")
        return names

    def process(self, task: AnyTask, item: Item) -> ResultRecord:
        with trace.get_tracer("smallfirst").start_as_current_span("smallfirst.item") as span:
            record = self._process(task, item)
            span.set_attributes({"smallfirst.task": task.name, "smallfirst.status": record.status,
                                 "smallfirst.tier": record.tier or "", "smallfirst.cost_usd": record.cost_usd})
            return record

    def _process(self, task: AnyTask, item: Item) -> ResultRecord:
        started = time.perf_counter()
        attempts: list[Attempt] = []
        drafts: list[tuple[Attempt, TierAnswer]] = []
        names = self.tier_names(task)
        for position, name in enumerate(names):
            with trace.get_tracer("smallfirst").start_as_current_span("smallfirst.tier") as span:
                attempt, answer = self._try_tier(task, item, name)
                span.set_attributes({"smallfirst.tier": name, "smallfirst.outcome": attempt.outcome,
                                     "smallfirst.confidence": attempt.confidence or 0.0,
                                     "smallfirst.tokens_in": attempt.tokens_in, "smallfirst.tokens_out": attempt.tokens_out})
            attempts.append(attempt)
            if answer is None:
                continue
            drafts.append((attempt, answer))
            is_frontier = self.settings.tiers[name].role == "frontier"
            if is_frontier or attempt.confidence >= task.threshold:
                attempt.outcome = "accepted"
                return self._record(
                    task, item, "accepted" if position == 0 else "escalated", attempts, answer, name, started
                )
        if drafts:  # no tier was sure enough: keep the most confident answer as a draft for a person
            attempt, answer = max(drafts, key=lambda pair: pair[0].confidence or 0.0)
            return self._record(task, item, "needs_review", attempts, answer, attempt.tier, started)
        if all(a.outcome == "error" for a in attempts):
            record = self._record(task, item, "failed", attempts, None, None, started)
            record.error = "; ".join(f"{a.tier}: {a.reason}" for a in attempts)
            return record
        return self._record(task, item, "needs_review", attempts, None, None, started)

    def _try_tier(self, task: AnyTask, item: Item, name: str) -> tuple[Attempt, TierAnswer | None]:
        config = self.settings.tiers[name]
        budget = min(task.max_input_tokens, config.max_input_tokens)
        if len(item.text) > task.max_input_chars or task.estimate_tokens(item.text) > budget:
            return Attempt(tier=name, outcome="too_large", reason=f"input exceeds {name}'s budget"), None
        tier = self.tiers.get(name)
        policy = RetryPolicy(max_attempts=config.max_attempts)
        started = time.perf_counter()
        try:
            answer = call_with_retries(lambda: tier.answer(task, item.text), policy)
        except InvalidOutputError as exc:
            return self._attempt(name, "invalid_output", str(exc), started, exc.tokens_in, exc.tokens_out), None
        except InputTooLargeError as exc:
            return self._attempt(name, "too_large", str(exc), started), None
        except TierError as exc:
            log.warning("tier %s failed on %s/%s: %s", name, task.name, item.id, exc)
            return self._attempt(name, "error", str(exc), started), None
        attempt = self._attempt(name, "low_confidence", None, started, answer.tokens_in, answer.tokens_out)
        attempt.answer = answer.answer
        attempt.confidence = task.calibrated(name, answer.confidence)
        attempt.confidence_method = answer.confidence_method
        if attempt.confidence < task.threshold:
            attempt.reason = f"confidence {attempt.confidence:.3f} < threshold {task.threshold}"
        return attempt, answer

    def _attempt(self, name, outcome, reason, started, tokens_in=0, tokens_out=0) -> Attempt:
        return Attempt(
            tier=name,
            outcome=outcome,
            reason=reason,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            latency_ms=(time.perf_counter() - started) * 1000,
            cost_usd=cost_usd(tokens_in, tokens_out, self.settings.tiers[name].prices),
        )

    def _record(self, task, item, status, attempts, answer: TierAnswer | None, tier, started) -> ResultRecord:
        chosen = next((a for a in attempts if a.tier == tier and a.answer is not None), None)
        return ResultRecord(
            id=item.id,
            task=task.name,
            status=status,
            answer=answer.answer if answer else None,
            confidence=chosen.confidence if chosen else None,
            confidence_method=answer.confidence_method if answer else None,
            field_confidence=answer.field_confidence if answer else None,
            tier=tier,
            attempts=attempts,
            latency_ms=(time.perf_counter() - started) * 1000,
            cost_usd=sum(a.cost_usd for a in attempts),
        )

    # -- async batch API ----------------------------------------------------------------------------------
    async def process_batch(
        self, task: AnyTask, items: Sequence[Item], concurrency: int | None = None
    ) -> list[ResultRecord]:
        """Results in input order; at most `concurrency` items in flight (tier calls are blocking I/O)."""
        loop = asyncio.get_running_loop()
        # Threads start on demand, so a pool per batch is cheap; its size is the concurrency bound.
        with ThreadPoolExecutor(max_workers=concurrency or self.settings.concurrency) as pool:
            futures = [loop.run_in_executor(pool, self.process, task, item) for item in items]
            return list(await asyncio.gather(*futures))

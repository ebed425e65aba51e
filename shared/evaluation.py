"""`smallfirst eval`: every labelled item through each named tier separately (not the cascade).

One JSON line per (item, tier) with the answer, the raw confidence, tokens, latency, cost and any error.
Runs are resumable: pairs already in the output file are skipped.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from pydantic import BaseModel

from shared.cascade import Engine
from shared.config import ConfigError
from shared.cost import cost_usd
from shared.retry import RetryPolicy, call_with_retries
from shared.tasks import ClassificationTask, ExtractionTask
from shared.tiers.base import InputTooLargeError, InvalidOutputError, TierError


class LabelledItem(BaseModel):
    id: str
    text: str
    label: str | None = None
    expected: dict[str, Any] | None = None


class EvalRecord(BaseModel):
    task: str
    kind: str
    id: str
    tier: str
    gold: Any
    outcome: str  # ok | invalid_output | too_large | error
    answer: Any = None
    confidence: float | None = None
    confidence_method: str | None = None
    field_confidence: dict[str, float] | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    latency_ms: float = 0.0
    cost_usd: float = 0.0
    error: str | None = None


def load_labelled(path: Path, sample: int | None = None, seed: int = 0) -> list[LabelledItem]:
    items = [LabelledItem.model_validate_json(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if sample is not None and sample < len(items):
        items = random.Random(seed).sample(items, sample)
    return items


def done_pairs(path: Path) -> set[tuple[str, str]]:
    if not path.exists():
        return set()
    pairs = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
            pairs.add((row["id"], row["tier"]))
        except (json.JSONDecodeError, KeyError):
            continue  # a line cut short by an interruption: that pair runs again
    return pairs


def evaluate_one(engine: Engine, task: ClassificationTask | ExtractionTask, item: LabelledItem, tier_name: str) -> EvalRecord:
    config = engine.settings.tiers[tier_name]
    tier = engine.tiers.get(tier_name)
    gold = item.label if isinstance(task, ClassificationTask) else item.expected
    base = {"task": task.name, "kind": task.kind, "id": item.id, "tier": tier_name, "gold": gold}
    started = time.perf_counter()
    try:
        answer = call_with_retries(lambda: tier.answer(task, item.text), RetryPolicy(max_attempts=config.max_attempts))
    except InvalidOutputError as exc:
        return EvalRecord(**base, outcome="invalid_output", error=str(exc), tokens_in=exc.tokens_in,
                          tokens_out=exc.tokens_out, latency_ms=(time.perf_counter() - started) * 1000,
                          cost_usd=cost_usd(exc.tokens_in, exc.tokens_out, config.prices))
    except InputTooLargeError as exc:
        return EvalRecord(**base, outcome="too_large", error=str(exc))
    except TierError as exc:
        return EvalRecord(**base, outcome="error", error=str(exc), latency_ms=(time.perf_counter() - started) * 1000)
    return EvalRecord(
        **base, outcome="ok", answer=answer.answer, confidence=answer.confidence,
        confidence_method=answer.confidence_method, field_confidence=answer.field_confidence,
        tokens_in=answer.tokens_in, tokens_out=answer.tokens_out, latency_ms=(time.perf_counter() - started) * 1000,
        cost_usd=cost_usd(answer.tokens_in, answer.tokens_out, config.prices),
    )


async def run_eval(
    engine: Engine,
    task: ClassificationTask | ExtractionTask,
    items: Iterable[LabelledItem],
    tiers: list[str],
    out: Path,
    concurrency: int,
    on_done: Callable[[EvalRecord], None] = lambda record: None,
) -> int:
    """Evaluate the pairs not yet in `out`, appending each record as it completes; returns how many ran."""
    unknown = [t for t in tiers if t not in engine.settings.tiers]
    if unknown:
        raise ConfigError(f"tiers not configured: {', '.join(unknown)}")
    skip = done_pairs(out)
    todo = [(item, tier) for item in items for tier in tiers if (item.id, tier) not in skip]
    limit = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a", encoding="utf-8") as sink:

        async def one(item: LabelledItem, tier: str) -> None:
            async with limit:
                record = await loop.run_in_executor(None, evaluate_one, engine, task, item, tier)
            sink.write(record.model_dump_json() + "\n")
            sink.flush()  # an interrupted run keeps every finished pair
            on_done(record)

        await asyncio.gather(*(one(item, tier) for item, tier in todo))
    return len(todo)


def read_run(path: Path) -> list[EvalRecord]:
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(EvalRecord.model_validate_json(line))
        except ValueError:
            continue
    return records

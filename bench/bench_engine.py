"""Embedded label scoring with prefix reuse vs scoring each label from scratch, and the cascade's overhead.

Run: python bench/bench_engine.py [--items 20]. Prints figures measured in this one run.
Scoring every label from scratch re-evaluates the whole prompt once per label; for banking77 that is
~150k tokens per item, so that baseline runs on a sample of labels and its per-item figures are scaled
to the full label set (said in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from shared.cascade import Engine
from shared.config import Settings
from shared.results import Item
from shared.tasks import TaskCatalog
from shared.tiers.base import Tier, TierAnswer
from shared.tiers.embedded import EmbeddedTier
from shared.tiers.factory import TierRegistry

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "banking77" / "dev.jsonl"


def texts(n: int) -> list[str]:
    rows = [json.loads(line) for line in DATASET.read_text().splitlines()]
    return [row["text"] for row in rows[:: max(1, len(rows) // n)][:n]]


def bench_scoring(tier: EmbeddedTier, task, items: list[str], scratch_labels: int) -> None:
    tier.label_log_scores(task, "warm up the task prefix")
    before, started = tier.evaluated_tokens, time.perf_counter()
    for text in items:
        tier.label_log_scores(task, text)
    reuse_tokens = (tier.evaluated_tokens - before) / len(items)
    reuse_rate = len(items) / (time.perf_counter() - started)

    labels = task.allowed_labels
    sample = labels[:scratch_labels]
    scale = len(labels) / len(sample)
    scratch_items = items[: max(1, min(len(items), 3))]
    before, started = tier.evaluated_tokens, time.perf_counter()
    for text in scratch_items:
        tier.label_log_scores_from_scratch(task, text, sample)
    scratch_tokens = (tier.evaluated_tokens - before) / len(scratch_items) * scale
    scratch_rate = len(scratch_items) / (time.perf_counter() - started) / scale
    note = "" if scale == 1 else f" (from scratch: {len(sample)} of {len(labels)} labels scored, scaled to all)"
    print(f"{task.name}: {len(labels)} labels, {len(items)} items{note}")
    print(f"  prefix reuse : {reuse_tokens:9.0f} evaluated tokens/item  {reuse_rate:8.2f} items/s")
    print(f"  from scratch : {scratch_tokens:9.0f} evaluated tokens/item  {scratch_rate:8.4f} items/s")
    print(f"  ratio        : {scratch_tokens / reuse_tokens:9.1f}x fewer tokens     {reuse_rate / scratch_rate:8.1f}x faster")


class _InstantTier(Tier):
    """Answers at once: timing the engine around it leaves only the engine's own per-item work."""

    def classify(self, task, text: str) -> TierAnswer:
        return TierAnswer(answer=task.allowed_labels[0], confidence=0.9, confidence_method="instant", tokens_in=1)

    def extract(self, task, text: str) -> TierAnswer:
        raise NotImplementedError

    def health(self) -> str:
        return "instant"


def engine_own_seconds(catalog: TaskCatalog, task, calls: int = 5000) -> float:
    """Per item: engine.process minus the tier call itself (budget check, retries, spans, the record)."""
    settings = Settings.from_env({})
    registry = TierRegistry(settings)
    tier = _InstantTier(settings.tiers["small"])
    registry.add(tier)
    engine = Engine(settings, registry, catalog)
    for i in range(200):
        engine.process(task, Item(id=str(i), text="warm up"))
    started = time.perf_counter()
    for i in range(calls):
        engine.process(task, Item(id=str(i), text="my card was charged twice"))
    through_engine = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for _ in range(calls):
        tier.answer(task, "my card was charged twice")
    return through_engine - (time.perf_counter() - started) / calls


def bench_overhead(tier: EmbeddedTier, catalog: TaskCatalog, items: list[str], rounds: int) -> None:
    settings = Settings.from_env({})
    registry = TierRegistry(settings)
    registry.add(tier)
    engine = Engine(settings, registry, catalog)
    task = catalog.get("support_ticket")

    def timed(call) -> float:
        # Each timed call starts from the cached task prefix only, never from the same item's cache.
        tier.answer(task, "unrelated text that evicts the previous item")
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    direct_a, direct_b, cascade = [], [], []
    for _ in range(rounds):
        for i, text in enumerate(items):
            # A-B-B-A order, so drift in machine speed hits every arm alike.
            calls = [
                (direct_a, lambda: tier.answer(task, text)),
                (cascade, lambda: engine.process(task, Item(id=str(i), text=text))),
                (direct_b, lambda: tier.answer(task, text)),
            ]
            for arm, call in calls + calls[::-1]:
                arm.append(timed(call))
    a, b, c = statistics.median(direct_a), statistics.median(direct_b), statistics.median(cascade)
    own = engine_own_seconds(catalog, task)
    print(f"cascade overhead on support_ticket ({len(cascade)} calls per arm, medians):")
    print(f"  tier directly {a * 1000:8.2f} ms   again (A/A noise floor) {b * 1000:8.2f} ms   {100 * (b / a - 1):+.2f}%")
    print(f"  through the cascade {c * 1000:8.2f} ms   {100 * (c / a - 1):+.2f}% (end to end, within the noise floor's spread)")
    print(f"  engine's own work per item {own * 1e6:8.1f} us = {100 * own / a:.3f}% of the tier call (target <= 2%)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--scratch-labels", type=int, default=8, help="labels scored from scratch for banking77")
    parser.add_argument("--overhead-only", action="store_true", help="only the cascade-overhead measurement")
    args = parser.parse_args()
    catalog = TaskCatalog(REPO / "tasks")
    threads = {k: v for k, v in os.environ.items() if k == "SMALLFIRST_SMALL_N_THREADS"}  # nothing else leaks in
    tier = EmbeddedTier(Settings.from_env(threads).tiers["small"])
    items = texts(args.items)
    if not args.overhead_only:
        bench_scoring(tier, catalog.get("support_ticket"), items, scratch_labels=4)
        bench_scoring(tier, catalog.get("banking77"), items[: max(1, args.items // 4)], scratch_labels=args.scratch_labels)
    bench_overhead(tier, catalog, items, rounds=3)


if __name__ == "__main__":
    main()

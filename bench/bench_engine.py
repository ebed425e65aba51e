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


def bench_overhead(tier: EmbeddedTier, catalog: TaskCatalog, items: list[str], rounds: int) -> None:
    settings = Settings.from_env({})
    registry = TierRegistry(settings)
    registry.add(tier)
    engine = Engine(settings, registry, catalog)
    task = catalog.get("support_ticket")
    direct, cascade = [], []
    for _ in range(rounds):  # interleaved, so drift in machine speed hits both alike
        for i, text in enumerate(items):
            # Each timed call starts from the cached task prefix only, never from the same item's cache.
            tier.answer(task, "unrelated text that evicts the previous item")
            started = time.perf_counter()
            tier.answer(task, text)
            direct.append(time.perf_counter() - started)
            tier.answer(task, "unrelated text that evicts the previous item")
            started = time.perf_counter()
            engine.process(task, Item(id=str(i), text=text))
            cascade.append(time.perf_counter() - started)
    d, c = statistics.median(direct), statistics.median(cascade)
    print(f"cascade overhead on support_ticket ({len(direct)} calls each, medians):")
    print(f"  tier directly {d * 1000:8.2f} ms   through the cascade {c * 1000:8.2f} ms   overhead {100 * (c / d - 1):+.2f}%")


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

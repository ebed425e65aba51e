"""Embedded label scoring over the label prefix tree against two baselines, and the cascade's overhead.

Run from the repository root: python -m bench.bench_engine [--items 20]. Prints figures measured in this one run.
Baselines (bench/label_baselines.py): "prompt once" decodes the prompt once and then each label after it,
with no sharing between labels (the fair one: any prefix cache gives that much); "from scratch" decodes the
whole prompt again for every label. For banking77 from scratch is ~150k tokens per item, so it runs on a
sample of labels and its per-item figures are scaled to the full label set (said in the output).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from bench.label_baselines import scores_from_scratch, scores_prompt_once
from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item
from shared.foundation.tasks import TaskCatalog
from shared.core.tiers.base import Tier, TierAnswer
from shared.core.tiers.embedded import EmbeddedTier
from shared.core.tiers.registry import TierRegistry

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "banking77" / "dev.jsonl"


def texts(n: int) -> list[str]:
    rows = [json.loads(line) for line in DATASET.read_text().splitlines()]
    return [row["text"] for row in rows[:: max(1, len(rows) // n)][:n]]


def _per_item(tier: EmbeddedTier, score, items: list[str]) -> tuple[float, float]:
    """Evaluated tokens per item and seconds per item of `score(text)`."""
    before, started = tier.evaluated_tokens, time.perf_counter()
    for text in items:
        score(text)
    return (tier.evaluated_tokens - before) / len(items), (time.perf_counter() - started) / len(items)


def bench_scoring(tier: EmbeddedTier, task, items: list[str], scratch_labels: int) -> None:
    tier.label_log_scores(task, "warm up the task prefix")
    tree = _per_item(tier, lambda text: tier.label_log_scores(task, text), items)
    once = _per_item(tier, lambda text: scores_prompt_once(tier, task, text), items)
    labels = task.allowed_labels
    sample = labels[:scratch_labels]
    scale = len(labels) / len(sample)
    scratch_tokens, scratch_s = _per_item(tier, lambda text: scores_from_scratch(tier, task, text, sample),
                                          items[: max(1, min(len(items), 3))])
    scratch = (scratch_tokens * scale, scratch_s * scale)
    note = "" if scale == 1 else f" (from scratch: {len(sample)} of {len(labels)} labels scored, scaled to all)"
    print(f"{task.name}: {len(labels)} labels, {len(items)} items{note}")
    for name, (tokens, seconds) in (("prefix tree", tree), ("prompt once", once), ("from scratch", scratch)):
        print(f"  {name:12} : {tokens:9.0f} evaluated tokens/item  {1 / seconds:8.3f} items/s"
              f"   tree vs this: {tokens / tree[0]:6.2f}x fewer tokens, {seconds / tree[1]:6.2f}x faster")


def small_only(catalog: TaskCatalog):
    """support_ticket answered by the small tier alone: the overhead is measured around the embedded tier."""
    return catalog.get("support_ticket").model_copy(update={"tiers": ["small"]})


class _InstantTier(Tier):
    """Answers at once: timing the cascade around it leaves only the cascade's own per-item work."""

    def classify(self, task, text: str, decide_at: float | None = None) -> TierAnswer:
        return TierAnswer(value=task.allowed_labels[0], confidence=0.9, confidence_method="instant", tokens_in=1)

    def extract(self, task, text: str) -> TierAnswer:
        raise NotImplementedError

    def health(self) -> str:
        return "instant"

    def probe(self) -> str:
        return "instant"


def cascade_own_seconds(catalog: TaskCatalog, task, calls: int = 5000) -> float:
    """Per item: Cascade.process minus the tier call itself (budget check, retries, verdict, spans, the record)."""
    settings = Settings.from_env({})
    registry = TierRegistry(settings)
    tier = _InstantTier(settings.tiers["small"])
    registry.add(tier)
    cascade = Cascade(settings, registry, catalog)
    for i in range(200):
        cascade.process(task, Item(id=str(i), text="warm up"))
    started = time.perf_counter()
    for i in range(calls):
        cascade.process(task, Item(id=str(i), text="my card was charged twice"))
    through_cascade = (time.perf_counter() - started) / calls
    started = time.perf_counter()
    for _ in range(calls):
        tier.answer(task, "my card was charged twice")
    return through_cascade - (time.perf_counter() - started) / calls


def bench_overhead(tier: EmbeddedTier, catalog: TaskCatalog, items: list[str], rounds: int) -> None:
    settings = Settings.from_env({})
    registry = TierRegistry(settings)
    registry.add(tier)
    cascade = Cascade(settings, registry, catalog)
    task = small_only(catalog)

    def timed(call) -> float:
        # Each timed call starts from the cached task prefix only, never from the same item's cache.
        tier.answer(task, "unrelated text that evicts the previous item")
        started = time.perf_counter()
        call()
        return time.perf_counter() - started

    direct_a, direct_b, through = [], [], []
    for _ in range(rounds):
        for i, text in enumerate(items):
            # A-B-B-A order, so drift in machine speed hits every arm alike.
            calls = [
                (direct_a, lambda: tier.answer(task, text)),
                (through, lambda: cascade.process(task, Item(id=str(i), text=text))),
                (direct_b, lambda: tier.answer(task, text)),
            ]
            for arm, call in calls + calls[::-1]:
                arm.append(timed(call))
    a, b, c = statistics.median(direct_a), statistics.median(direct_b), statistics.median(through)
    own = cascade_own_seconds(catalog, task)
    print(f"cascade overhead on support_ticket ({len(through)} calls per arm, medians):")
    print(f"  tier directly {a * 1000:8.2f} ms   again (A/A noise floor) {b * 1000:8.2f} ms   {100 * (b / a - 1):+.2f}%")
    print(f"  through the cascade {c * 1000:8.2f} ms   {100 * (c / a - 1):+.2f}% (end to end, within the noise floor's spread)")
    print(f"  the cascade's own work per item {own * 1e6:8.1f} us = {100 * own / a:.3f}% of the tier call (target <= 2%)")


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

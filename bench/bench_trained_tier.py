"""The trained tier against the embedded LLM tier (SmolLM2-135M, llama.cpp) on the same Banking77 dev items, one run.

With 1 and with 2 threads per tier: both tiers answer items through their own `classify` (as the cascade calls
them), one item at a time; the trained tier also answers the whole sample as one batch (one embedding call, one
head call). The time per item includes embedding / prompt evaluation and the head / label scoring; loading and a
warm-up item are not counted. The embedded tier has no batch mode (it scores labels item by item) and is slow, so
it answers the first --embedded-items of the sample. Ratios: embedded time per item / trained time per item, at
the same thread count.

    python -m bench.bench_trained_tier | tee bench/results/trained_tier.txt   (from the repository root)

Items: a seeded sample (--items, default 100) of ../shared/datasets/banking77/dev.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sample(path: Path, n: int, seed: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return random.Random(seed).sample(rows, n)


def run(tier, task, rows: list[dict]) -> dict:
    tier.classify(task, "warm-up: load the model and the head")
    times, right = [], 0
    for row in rows:
        start = time.perf_counter()
        answer = tier.classify(task, row["text"])
        times.append(time.perf_counter() - start)
        right += answer.value == row["label"]
    return {"ms_per_item": 1000 * statistics.fmean(times), "p50_ms": 1000 * statistics.median(times),
            "accuracy": right / len(rows), "method": answer.confidence_method}


def run_batched(tier, task, rows: list[dict]) -> dict:
    """The whole sample in one embedding call and one head call (what a file of items could use)."""
    head, method = tier.head(task)
    head.embedder.embed(["warm-up"])
    start = time.perf_counter()
    texts = [row["text"] for row in rows]
    prediction = head.model.predict_with_confidence(head.embedder.embed(texts), texts)
    elapsed = time.perf_counter() - start
    right = sum(label == row["label"] for label, row in zip(prediction.labels, rows))
    return {"ms_per_item": 1000 * elapsed / len(rows), "p50_ms": float("nan"), "accuracy": right / len(rows),
            "method": method}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--embedded-items", type=int, default=30, help="items the embedded tier answers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from shared.core.config import Settings
    from shared.foundation.tasks import TaskCatalog
    from shared.core.tiers.embedded import EmbeddedTier
    from shared.core.tiers.trained import TrainedTier

    task = TaskCatalog(REPO / "tasks").get("banking77")
    rows = sample(args.datasets / "banking77" / "dev.jsonl", args.items, args.seed)
    slow_rows = rows[:args.embedded_items]
    print(f"trained tier vs embedded tier; python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (the machine is shared: timings carry that noise)")
    print(f"banking77 dev: {len(rows)} items (seed {args.seed}), the embedded tier the first {len(slow_rows)}; "
          f"trained head {task.trained_head}")
    print(f"{'threads':>7s}  {'tier':22s} {'items':>5s} {'ms/item':>10s} {'p50 ms':>9s} {'accuracy':>8s}")
    for threads in (1, 2):
        settings = Settings.from_env({"SMALLFIRST_TRAINED_N_THREADS": str(threads),
                                      "SMALLFIRST_SMALL_N_THREADS": str(threads),
                                      "SMALLFIRST_LOCAL_PROFILE": "embedded"})
        trained = TrainedTier(settings.tiers["trained"])
        results = {"trained, one at a time": (run(trained, task, rows), len(rows)),
                   "trained, one batch": (run_batched(trained, task, rows), len(rows)),
                   "embedded, one at a time": (run(EmbeddedTier(settings.tiers["small"]), task, slow_rows),
                                               len(slow_rows))}
        for name, (r, n) in results.items():
            print(f"{threads:>7d}  {name:22s} {n:>5d} {r['ms_per_item']:10.2f} {r['p50_ms']:9.2f} "
                  f"{r['accuracy']:8.3f}", flush=True)
        slow = results["embedded, one at a time"][0]["ms_per_item"]
        print(f"{threads:>7d}  embedded / trained time per item: {slow / results['trained, one at a time'][0]['ms_per_item']:.0f}x "
              f"one at a time, {slow / results['trained, one batch'][0]['ms_per_item']:.0f}x batched")
    print(f"load average at the end {os.getloadavg()[0]:.1f}")

if __name__ == "__main__":
    main()

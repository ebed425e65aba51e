"""The trained tier against the embedded LLM tier (SmolLM2-135M, llama.cpp) on the same Banking77 dev items, one run.

Both tiers answer every item through their own `classify` (as the cascade calls them), one item at a time, one
thread each; the time per item includes embedding / prompt evaluation and the head / label scoring. Loading and a
warm-up item are not counted. The ratio is embedded time per item / trained time per item.

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from shared.core.config import Settings
    from shared.core.tasks import TaskCatalog
    from shared.core.tiers.embedded import EmbeddedTier
    from shared.core.tiers.trained import TrainedTier

    env = {"SMALLFIRST_TRAINED_N_THREADS": "1", "SMALLFIRST_SMALL_N_THREADS": "1"}
    settings = Settings.from_env(env)
    task = TaskCatalog(REPO / "tasks").get("banking77")
    rows = sample(args.datasets / "banking77" / "dev.jsonl", args.items, args.seed)
    print(f"trained tier vs embedded tier; python {platform.python_version()}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} (the machine is shared: timings carry that noise)")
    print(f"banking77 dev: {len(rows)} items (seed {args.seed}), one at a time, 1 thread per tier; "
          f"trained head {task.trained_head}")
    results = {}
    for name, tier in (("trained", TrainedTier(settings.tiers["trained"])),
                       ("embedded", EmbeddedTier(settings.tiers["small"]))):
        results[name] = run(tier, task, rows)
        r = results[name]
        print(f"{name:9s} {r['ms_per_item']:10.2f} ms/item (p50 {r['p50_ms']:.2f}), accuracy {r['accuracy']:.3f} "
              f"({r['method']})", flush=True)
    ratio = results["embedded"]["ms_per_item"] / results["trained"]["ms_per_item"]
    print(f"embedded / trained time per item: {ratio:.0f}x; accuracy {results['trained']['accuracy']:.3f} vs "
          f"{results['embedded']['accuracy']:.3f}; load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

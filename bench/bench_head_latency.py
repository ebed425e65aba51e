"""The committed trained heads' own time per item, the embedding left out: one item per call, and a batch per call.

A head with word n-grams (banking77, clinc150) also computes the text's TF-IDF; an embedding-alone head
(support_ticket) multiplies the embedding only. Items: the first --items of each task's dev split; embeddings are
computed first and not timed.

    python -m bench.bench_head_latency | tee bench/results/head_latency.txt   (from the repository root)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEV = {"banking77": REPO.parent / "shared" / "datasets" / "banking77" / "dev.jsonl",
       "clinc150": REPO.parent / "shared" / "datasets" / "clinc150" / "dev.jsonl",
       "support_ticket": REPO / "tasks" / "data" / "support_ticket" / "dev.jsonl"}


def main() -> None:
    from shared.core.config import Settings
    from shared.foundation.tasks import TaskCatalog
    from shared.core.tiers.trained import TrainedTier

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    args = parser.parse_args()
    tier = TrainedTier(Settings.from_env({}).tiers["trained"])
    tasks = TaskCatalog(REPO / "tasks")
    print(f"trained heads, head time only; {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    for name, path in DEV.items():
        task = tasks.get(name)
        served, _ = tier.head(task)
        head = served.model
        texts = [json.loads(line)["text"] for line in path.read_text().splitlines()[:args.items]]
        X = served.embedder.embed(texts)
        head.predict_with_confidence(X[:1], texts[:1])  # warm-up
        single = []
        for i, text in enumerate(texts):
            started = time.perf_counter()
            head.predict_with_confidence(X[i:i + 1], [text])
            single.append(1000 * (time.perf_counter() - started))
        started = time.perf_counter()
        head.predict_with_confidence(X, texts)
        batched = 1000 * (time.perf_counter() - started) / len(texts)
        ngrams = head.ngrams_.width if getattr(head, "ngrams_", None) else 0
        print(f"  {name:15} {task.trained_head}  word n-grams {ngrams:6d}  one item per call: median "
              f"{statistics.median(single):.3f} ms  mean {statistics.fmean(single):.3f} ms;  {len(texts)} in one call: "
              f"{batched:.4f} ms/item")


if __name__ == "__main__":
    main()

"""The trained tier one item at a time against the same items in batches, on 1 thread, in one run (issue 29 part 5).

Both go through the path the pipeline takes: `run_tier` per item (what an item asks alone), and `run_tier_batch` on
batches of --batch items (what the cascade's first tier is asked for an HTTP request of up to 100 items, a blob
part or a `smallfirst run` chunk of 256, and by `smallfirst eval` 64 at a time: one embedder call and one head call
per batch), with the budget check, retries and the Attempt each builds. The local MiniLM (int8, onnxruntime) and
the shipped head of each task run on one intra-op thread. Rounds are interleaved (single, then each batch size) so
that load from other work on the machine falls on all; each round's ms/item is printed, and the medians are
compared. Loading and a warm-up batch are not counted. Target: batched <= 0.5x single per item. Then the model
alone: at onnxruntime's basic graph optimizations (what the embedder uses) against the default, and what a call
costs before its tokens (`CALL_COST_TOKENS`).

    python -m bench.bench_batched_embedding | tee bench/results/batched_embedding.txt   (from the repository root)

Items: a seeded sample (--items, default 256) of ../shared/datasets/banking77/dev.jsonl, and all of
tasks/data/support_ticket/dev.jsonl (longer texts, 80 items).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rows_of(path: Path, n: int | None, seed: int) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return random.Random(seed).sample(rows, n) if n is not None and n < len(rows) else rows


def single(tier, task, items) -> float:
    from shared.core.run_tier import run_tier

    start = time.perf_counter()
    for item in items:
        run_tier(tier, task, item)
    return 1000 * (time.perf_counter() - start) / len(items)


def batched(tier, task, items, size: int) -> float:
    from shared.core.run_tier import run_tier_batch

    start = time.perf_counter()
    for begin in range(0, len(items), size):
        run_tier_batch(tier, task, items[begin:begin + size])
    return 1000 * (time.perf_counter() - start) / len(items)


def call_cost(embedder, length: int, rows: int = 16, repeats: int = 7) -> tuple[float, float]:
    """The embedder's fixed cost of a call and its cost per token in a batch (ms), from one text and from `rows`
    copies of it (one call, no padding), `length` tokens each; the fastest of `repeats` tries, the least disturbed
    by other work on the machine."""
    text = " ".join(["word"] * (length - 2))  # [CLS] and [SEP] make up the length
    assert embedder.token_counts([text]) == [length]

    def fastest(texts: list[str]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            embedder.embed_metered(texts)
            times.append(time.perf_counter() - start)
        return 1000 * min(times)

    one, many = fastest([text]), fastest([text] * rows) / rows
    return one - many, many / length


def padding(embedder, texts: list[str], size: int) -> tuple[float, int]:
    """Padded tokens / real tokens over batches of `size`, as the embedder chunks them, and how many model calls."""
    padded = real = calls = 0
    for begin in range(0, len(texts), size):
        for chunk in embedder.encode(texts[begin:begin + size]):
            padded, real, calls = padded + chunk.attention_mask.size, real + int(chunk.attention_mask.sum()), calls + 1
    return padded / real, calls


def optimization_levels(embedder, texts: list[str], size: int, rounds: int) -> None:
    """The model alone at onnxruntime's basic and at its default (all) graph optimization level, on the chunks the
    embedder cuts, single and in batches of `size`; interleaved rounds, medians, and how far their rows differ."""
    import numpy as np
    import onnxruntime

    from shared.learning.embedders.minilm import default_model_path

    def session(level):
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        options.graph_optimization_level = level
        return onnxruntime.InferenceSession(str(default_model_path()), options, providers=["CPUExecutionProvider"])

    def feeds(chunks):
        return [{"input_ids": c.input_ids, "attention_mask": c.attention_mask,
                 "token_type_ids": np.zeros_like(c.input_ids)} for c in chunks]

    batches = feeds([c for begin in range(0, len(texts), size) for c in embedder.encode(texts[begin:begin + size])])
    singles = feeds([c for text in texts for c in embedder.encode([text])])
    levels = {"basic": session(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC),
              "all (default)": session(onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL)}
    differ = max(float(np.abs(levels["basic"].run(None, f)[0] - levels["all (default)"].run(None, f)[0]).max())
                 for f in batches)
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):
        for name, level in levels.items():
            for how, fed in (("single", singles), ("batched", batches)):
                start = time.perf_counter()
                for feed in fed:
                    level.run(["last_hidden_state"], feed)
                times.setdefault((name, how), []).append(1000 * (time.perf_counter() - start) / len(texts))
    print(f"\nthe model alone by graph optimization level, banking77 items, batches of {size} ({rounds} interleaved "
          f"rounds, medians); hidden states differ by at most {differ:.1e}")
    for (name, how), values in times.items():
        print(f"  {name:14s} {how:8s} {statistics.median(values):.2f} ms/item")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--batch", type=int, nargs="+", default=[64, 256], help="items per batch (several: each)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from shared.core.config import Settings
    from shared.core.tiers.registry import TierRegistry
    from shared.foundation.records import Item
    from shared.foundation.tasks import TaskCatalog

    catalog = TaskCatalog(REPO / "tasks")
    tier = TierRegistry(Settings.from_env({"SMALLFIRST_TRAINED_N_THREADS": "1"})).get("trained")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout
    print(f"trained tier, single vs batched through run_tier / run_tier_batch; commit {commit.strip()} (+ working "
          f"tree), python {platform.python_version()}, {os.cpu_count()} cores, 1 onnxruntime thread, load average "
          f"{os.getloadavg()[0]:.1f} at the start (the machine is shared: timings carry that noise)")
    sets = {"banking77": rows_of(args.datasets / "banking77" / "dev.jsonl", args.items, args.seed),
            "support_ticket": rows_of(REPO / "tasks" / "data" / "support_ticket" / "dev.jsonl", None, args.seed)}
    for name, rows in sets.items():
        task = catalog.get(name)
        items = [Item(id=str(row.get("id", index)), text=row["text"]) for index, row in enumerate(rows)]
        texts = [item.text for item in items]
        tokens = tier.embedder.token_counts(texts)
        print(f"\n{name} dev: {len(items)} items, tokens per item mean {statistics.fmean(tokens):.1f} "
              f"(max {max(tokens)}); head {task.trained_head}")
        for size in args.batch:
            padded, calls = padding(tier.embedder, texts, size)
            print(f"  batches of {size}: {calls} model calls, padded to {padded:.2f}x their tokens")
        batched(tier, task, items[:max(args.batch)], max(args.batch))  # warm-up: the model, the head, the allocator
        times: dict[str, list[float]] = {"single": [], **{f"batches of {size}": [] for size in args.batch}}
        for round_ in range(args.rounds):
            times["single"].append(single(tier, task, items))
            for size in args.batch:
                times[f"batches of {size}"].append(batched(tier, task, items, size))
            print(f"  round {round_ + 1}: " + ", ".join(f"{how} {values[-1]:.2f}" for how, values in times.items())
                  + " ms/item", flush=True)
        one = statistics.median(times.pop("single"))
        print(f"  median: single {one:.2f} ms/item")
        for how, values in times.items():
            many = statistics.median(values)
            print(f"  median: {how} {many:.2f} ms/item: / single = {many / one:.2f} "
                  f"(target <= 0.50: {'met' if many / one <= 0.5 else 'missed'})")
    optimization_levels(tier.embedder, [row["text"] for row in sets["banking77"]], min(args.batch), args.rounds)
    for length in (8, 16):
        fixed, per_token = call_cost(tier.embedder, length)
        print(f"\nthe model alone, rows of {length} tokens: a call's fixed cost {fixed:.2f} ms, a token in a batch "
              f"{per_token:.3f} ms: a call costs {fixed / per_token:.1f} tokens (CALL_COST_TOKENS)")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

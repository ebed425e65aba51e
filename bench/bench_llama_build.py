"""The embedded tier's llama.cpp loading choice: extra buffer types off (the default) against on.

Run from the repository root: python -m bench.bench_llama_build [--rounds 2] [--items 8]. Prints figures measured in this one run.
Each variant runs in its own child process, in A-B-B-A order, on one thread: prompt prefill of ~1,000
tokens (median of 3 cold-cache decodes) and the per-item cost of classifying support tickets. A variant
that kills its process (llama.cpp's AMX path does on CPUs with AMX) is reported with its signal.
The other alternative, a portable build (GGML_NATIVE=OFF), needs a second compile of llama-cpp-python
and so cannot be measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATASET = REPO.parent / "shared" / "datasets" / "banking77" / "dev.jsonl"

CHILD = """
import json, sys, time
from pathlib import Path
from shared.core.config import Settings
from shared.foundation.tasks import TaskCatalog
from shared.core.tiers.embedded import EmbeddedTier
from shared.core.tiers.llama_session import build_info
extra, items = sys.argv[1] == "on", json.loads(sys.argv[2])
tier = EmbeddedTier(Settings.from_env({"SMALLFIRST_SMALL_N_THREADS": "1",
                                      "SMALLFIRST_SMALL_EXTRA_BUFFER_TYPES": str(extra).lower()}).tiers["small"])
session = tier.session
tokens = session.tokenize(" ".join(items * 40))[:1000]
prefill = []
for _ in range(3):
    session.truncate(0)
    started = time.perf_counter()
    session.append(tokens, {len(tokens) - 1})
    prefill.append(time.perf_counter() - started)
task = TaskCatalog(Path(sys.argv[3])).get("support_ticket")
tier.classify(task, "warm up the task prefix")
started = time.perf_counter()
for item in items:
    tier.classify(task, item)
per_item = (time.perf_counter() - started) / len(items)
print(json.dumps({"prefill_tokens": len(tokens), "prefill_s": sorted(prefill)[1], "per_item_s": per_item,
                  "extra_buffer_types": session.extra_buffer_types, "build": build_info()}))
"""


def run_variant(extra: str, items: list[str]) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, extra, json.dumps(items), str(REPO / "tasks")], cwd=REPO,
                          capture_output=True, text=True)
    if done.returncode < 0:
        return {"killed_by": signal.Signals(-done.returncode).name}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1]}
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="A-B-B-A rounds")
    parser.add_argument("--items", type=int, default=8)
    args = parser.parse_args()
    rows = [json.loads(line) for line in DATASET.read_text().splitlines()]
    items = [row["text"] for row in rows[:: len(rows) // args.items][: args.items]]
    results: dict[str, list[dict]] = {"off": [], "on": []}
    for _ in range(args.rounds):
        for variant in ("off", "on", "on", "off"):
            results[variant].append(run_variant(variant, items))
    build = next((r["build"] for rs in results.values() for r in rs if "build" in r), {})
    print(f"llama-cpp-python {build.get('llama_cpp_python')}; CPU features: {' '.join(build.get('cpu_features', []))}")
    summary = {}
    for variant, runs in results.items():
        failed = [r for r in runs if "prefill_s" not in r]
        if failed:
            print(f"extra buffer types {variant:3}: {len(failed)} of {len(runs)} runs failed: {failed[0]}")
            continue
        prefill = statistics.median(r["prefill_tokens"] / r["prefill_s"] for r in runs)
        per_item = statistics.median(r["per_item_s"] for r in runs)
        summary[variant] = (prefill, per_item)
        print(f"extra buffer types {variant:3}: prefill {prefill:7.1f} tokens/s (1 thread)   "
              f"per support_ticket item {per_item * 1000:7.1f} ms   ({len(runs)} runs)")
    if len(summary) == 2:
        print(f"off / on: prefill rate {summary['off'][0] / summary['on'][0]:.3f}x, "
              f"per-item time {summary['off'][1] / summary['on'][1]:.3f}x")


if __name__ == "__main__":
    main()

"""Cold start: from a fresh process's start to its first answer from the trained tier, a base commit against this tree.

    python -m bench.bench_cold_start --base COMMIT | tee bench/results/cold_start.txt   (from the repository root)

Each try starts a fresh interpreter inside one code tree (the base is checked out with `git worktree add --detach`)
that builds the trained tier from default settings (local MiniLM, the shipped heads in models/), answers one
Banking77 item with the shipped head (it reads word n-grams), and prints the wall-clock time at that moment; the
time measured runs from just before the process is started to that moment: interpreter start, imports, settings,
loading the embedder and the head, the answer. The two trees alternate, try by try, for --rounds rounds after one
unmeasured warm-up each (which fills the page cache); medians are reported. Also reported: whether scikit-learn or
scipy was imported by then.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FIRST_ANSWER = r'''
import json, sys, time
from pathlib import Path
from shared.core.config import Settings
from shared.core.tiers.trained import TrainedTier
from shared.foundation.tasks import TaskCatalog

task = TaskCatalog(Path("tasks")).get("banking77")
answer = TrainedTier(Settings.from_env({}).tiers["trained"]).classify(task, "I still have not received my new card")
answered_at = time.time()
loaded = sorted({name.split(".")[0] for name in sys.modules} & {"sklearn", "scipy"})
print(json.dumps({"answered_at": answered_at, "label": answer.value, "confidence": answer.confidence,
                  "loaded": loaded}))
'''


def first_answer(tree: Path) -> dict:
    started = time.time()
    done = subprocess.run([sys.executable, "-c", FIRST_ANSWER], cwd=tree, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(tree)})
    if done.returncode != 0:
        raise SystemExit(f"first answer in {tree} failed:\n{done.stderr[-3000:]}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {**answer, "seconds": answer["answered_at"] - started}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit whose code is 'before'")
    parser.add_argument("--base-tree", type=Path, default=Path("/tmp/coldstart_base"))
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    if not args.base_tree.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(args.base_tree), args.base], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    trees = {"before": args.base_tree, "after": REPO}
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    print(f"cold start to the first trained-tier answer: before = {args.base} ({args.base_tree}), after = this tree "
          f"(HEAD {head.stdout.strip()} plus its working changes); python {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (the machine is shared: timings carry "
          f"that noise)", flush=True)
    for name, tree in trees.items():
        warm_up = first_answer(tree)
        print(f"warm-up {name}: {warm_up['seconds']:.2f} s, answered {warm_up['label']} "
              f"({warm_up['confidence']:.3f}), imported by then: {warm_up['loaded'] or 'neither sklearn nor scipy'}",
              flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in trees}
    for round_ in range(1, args.rounds + 1):
        for name, tree in trees.items():
            seconds[name].append(first_answer(tree)["seconds"])
        print(f"round {round_}: " + ", ".join(f"{name} {s[-1]:.2f} s" for name, s in seconds.items()), flush=True)
    before, after = (statistics.median(seconds[name]) for name in trees)
    print(f"median of {args.rounds}: before {before:.2f} s, after {after:.2f} s ({after / before:.2f}x); "
          f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

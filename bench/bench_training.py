"""Training a head: the code of a base commit against this tree's, in one run, on the same cached embeddings.

    python -m bench.bench_training --base COMMIT | tee bench/results/training.txt   (from the repository root)

For each task (CLINC150, then Banking77) the base and this tree fit a head in turn, each in a fresh process that has
only its own tree on sys.path (the base is checked out with `git worktree add --detach`). Each calls its own
`train_head` as `smallfirst train` does, with the task file's settings (none label, reject budget, recall target)
and the train split's rows; its embedder is a stand-in that returns the cached embedding of each text, so the
time measured is the fit alone. Reported: the fit's wall time, the cross-validated figures it records, the longest
silence between two progress reports (this tree only: the base reports nothing while fitting), and the head's
accuracy on the dev split, which nothing in the fit sees.

Embeddings: MiniLM-L6 int8 (shared.learning.embedders.minilm.LocalMiniLM, 1 thread, batches of 256) of
../shared/datasets/{task}/{train,dev}.jsonl, made on the first run and cached in --cache as
{task}-{split}-{model hash[:12]}.npy (float32, one row per line of the file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TASKS = ("clinc150", "banking77")

# Run in a fresh interpreter inside one code tree: argv = task, datasets folder, cache folder, model hash prefix.
FIT = r'''
import inspect, json, sys, time
from pathlib import Path
import numpy as np
from shared.foundation.tasks import TaskCatalog
from shared.learning.training import train_head
from shared.learning.training_data import LabelledExample, TrainingSet

task_name, datasets, cache, model = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]

def split(name):
    rows = [json.loads(line) for line in (datasets / task_name / f"{name}.jsonl").read_text("utf-8").splitlines()
            if line.strip()]
    return rows, np.load(cache / f"{task_name}-{name}-{model}.npy")

class CachedEmbedder:
    """The cached embedding of each text, as an embedder hands it over."""
    def __init__(self, rows, vectors):
        self.vectors = {row["text"]: vector for row, vector in zip(rows, vectors)}
        self.dimension = vectors.shape[1]
    def embed(self, texts):
        return np.vstack([self.vectors[text] for text in texts])

train, X_train = split("train")
dev, X_dev = split("dev")
task = TaskCatalog(Path("tasks")).get(task_name)
training = TrainingSet(LabelledExample(text=r["text"], label=r["label"], provenance="gold") for r in train)
kwargs = dict(labels=[label.name for label in task.labels], none_label=task.none_label if task.allow_none else None,
              none_reject_budget=task.none_reject_budget, none_recall_target=task.none_recall_target)
reports = []
if "fit_progress" in inspect.signature(train_head).parameters:
    kwargs["fit_progress"] = lambda step: reports.append(time.perf_counter())
start = time.perf_counter()
head = train_head(CachedEmbedder(train, X_train), training, **kwargs)
elapsed = time.perf_counter() - start
marks = [start, *reports, start + elapsed]
texts = [r["text"] for r in dev]
gold = np.array([r["label"] for r in dev], dtype=object)
answered = np.array(head.predict(X_dev, texts), dtype=object)
none = task.none_label if task.allow_none else None
m = head.cv_metrics_
out = {"fit_s": elapsed, "rows": len(training), "folds": m.folds, "C": head.C_,
       "ngrams": bool(getattr(head, "ngrams_", None)), "cv_accuracy": m.accuracy,
       "cv_inscope_accuracy": m.inscope_accuracy, "cv_oos_recall": m.oos_recall, "cv_ece": m.ece,
       "cv_accuracy_by_c": m.cv_accuracy_by_c, "dev_accuracy": float(np.mean(answered == gold)),
       "progress_reports": len(reports), "longest_silence_s": max(b - a for a, b in zip(marks, marks[1:]))}
if none is not None:
    out["dev_inscope_accuracy"] = float(np.mean(answered[gold != none] == gold[gold != none]))
    out["dev_oos_recall"] = float(np.mean(answered[gold == none] == none))
print(json.dumps(out))
'''


def cache_embeddings(datasets: Path, cache: Path) -> str:
    """The model hash prefix of the cached files, embedding whatever is not cached yet."""
    import numpy as np

    from shared.learning.embedders.minilm import LocalMiniLM

    embedder = LocalMiniLM(threads=1)
    model = embedder.model_hash[:12]
    cache.mkdir(parents=True, exist_ok=True)
    for task in TASKS:
        for split in ("train", "dev"):
            path = cache / f"{task}-{split}-{model}.npy"
            if path.exists():
                continue
            lines = (datasets / task / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
            texts = [json.loads(line)["text"] for line in lines if line.strip()]
            np.save(path, np.vstack([embedder.embed(texts[i:i + 256]) for i in range(0, len(texts), 256)]))
            print(f"embedded {task} {split}: {len(texts)} texts -> {path}", flush=True)
    return model


def base_tree(commit: str, where: Path) -> Path:
    if not where.exists():
        subprocess.run(["git", "worktree", "add", "--detach", str(where), commit], cwd=REPO, check=True,
                       stdout=subprocess.DEVNULL)
    return where


def fit(tree: Path, task: str, datasets: Path, cache: Path, model: str) -> dict:
    done = subprocess.run([sys.executable, "-c", FIT, task, str(datasets), str(cache), model], cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"fit in {tree} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def show(name: str, r: dict) -> str:
    line = (f"  {name:6s} fit {r['fit_s']:7.1f} s  {r['rows']} rows, {r['folds']} folds, C = {r['C']:g}"
            f"{' + words' if r['ngrams'] else ''}; CV accuracy {r['cv_accuracy']:.4f}")
    if r["cv_oos_recall"] is not None:
        line += f" (in-scope {r['cv_inscope_accuracy']:.4f}, oos recall {r['cv_oos_recall']:.4f})"
    line += f", ECE {r['cv_ece']:.4f}; DEV accuracy {r['dev_accuracy']:.4f}"
    if "dev_oos_recall" in r:
        line += f" (in-scope {r['dev_inscope_accuracy']:.4f}, oos recall {r['dev_oos_recall']:.4f})"
    line += (f"; progress reports {r['progress_reports']}, longest silence {r['longest_silence_s']:.1f} s"
             f"\n         CV accuracy by C: " + ", ".join(f"{k}: {v:.4f}" for k, v in r["cv_accuracy_by_c"].items()))
    return line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="the commit whose training code is 'before'")
    parser.add_argument("--base-tree", type=Path, default=Path("/tmp/smallfirst_training_base"))
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/smallfirst_bench_embeddings"))
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    args = parser.parse_args()

    model = cache_embeddings(args.datasets, args.cache)
    trees = {"before": base_tree(args.base, args.base_tree), "after": REPO}
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    print(f"training a head: before = {args.base} (its tree at {args.base_tree}), after = this tree "
          f"(HEAD {head.stdout.strip()} plus its working changes); python {platform.python_version()}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} (the machine is shared: timings carry "
          f"that noise)", flush=True)
    for task in args.tasks:
        print(f"== {task} (cached MiniLM-L6 embeddings, model {model})", flush=True)
        for name, tree in trees.items():
            print(show(name, fit(tree, task, args.datasets, args.cache, model)), flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

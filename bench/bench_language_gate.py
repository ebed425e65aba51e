"""The language gate (shared/learning/language.py): which texts it judges unreadable, and what it costs, in one run.

For each labelled set: how many texts the gate names as written outside the embedder's languages (MiniLM: English;
USE-m: its 16), by language, and -- for support_ticket's sets, through the shipped head -- how many of those the head
answered right (what escalating them gives up) and at what confidence it answered them. Cost: the identifier's load
once, and ms/item of the gate beside ms/item of embedding the same texts with the same embedder in batches of 64
(one thread each, interleaved, median of 3).

    nice -n 5 .venv/bin/python -m bench.bench_language_gate | tee bench/results/language_gate.txt
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from collections import Counter
from pathlib import Path

import numpy as np

from shared.learning.embedders import LocalMiniLM, LocalUSEMultilingual
from shared.learning.language import MAX_READABLE_SHARE, MIN_IDENTIFIED, MIN_LETTERS, LanguageGate

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"
TICKETS = REPO / "tasks" / "data" / "support_ticket"


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def timed(fn, rounds: int = 3) -> float:
    """Median seconds of `rounds` calls."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    from shared.core.config import Settings
    from shared.core.tiers.trained import TrainedTier
    from shared.foundation.tasks import TaskCatalog

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    print(f"# bench_language_gate  {time.strftime('%Y-%m-%d %H:%M')}  commit {commit.strip()}  "
          f"python {platform.python_version()}  rule: >= {MIN_LETTERS} letters, one language named at >= "
          f"{MIN_IDENTIFIED:.0%} and < {MAX_READABLE_SHARE:.0%} of the identifier's probability on the embedder's "
          "languages")
    gate = LanguageGate()
    started = time.perf_counter()
    gate.unreadable(["a text long enough to be judged by the identifier"], frozenset({"en"}))
    print(f"identifier load (first call): {time.perf_counter() - started:.2f} s")

    embedders = {"minilm": LocalMiniLM(threads=1), "use_m": LocalUSEMultilingual(threads=1)}
    sets = {("banking77 dev", "minilm"): rows(DATASETS / "banking77" / "dev.jsonl"),
            ("clinc150 dev", "minilm"): rows(DATASETS / "clinc150" / "dev.jsonl")}
    for name in ("dev", "multilingual_dev", "shifted_dev", "train"):
        sets[(f"support_ticket {name}", "use_m")] = rows(TICKETS / f"{name}.jsonl")

    tier = TrainedTier(Settings.from_env({}).tiers["trained"])
    task = TaskCatalog(REPO / "tasks").get("support_ticket")
    served, _ = tier.head(task)

    print(f"\n{'set':32s} {'embedder':8s} {'items':>6s} {'judged':>6s}  languages judged; head right / mean "
          f"confidence on them  gate ms/item  embed ms/item  ratio")
    for (name, kind), data in sets.items():
        embedder = embedders[kind]
        texts = [r["text"] for r in data]
        judged = gate.unreadable(texts, embedder.languages)
        flagged = [i for i, language in enumerate(judged) if language]
        detail = ", ".join(f"{language} {n}" for language, n in Counter(j for j in judged if j).most_common()) or "-"
        if kind == "use_m" and flagged:
            vectors = embedder.embed([texts[i] for i in flagged])
            answered = served.model.predict_with_confidence(vectors, [texts[i] for i in flagged])
            right = np.mean(np.asarray(answered.labels) == np.asarray([data[i]["label"] for i in flagged]))
            detail += f"; {right:.0%} right at {np.mean(answered.confidence):.2f}"
        gate_s = timed(lambda: gate.unreadable(texts, embedder.languages))
        sample = texts[:640]
        embed_s = timed(lambda: [embedder.embed(sample[i:i + 64]) for i in range(0, len(sample), 64)])
        gate_ms, embed_ms = gate_s * 1000 / len(texts), embed_s * 1000 / len(sample)
        print(f"{name:32s} {kind:8s} {len(texts):6d} {len(flagged):6d}  {detail:40s} {gate_ms:8.3f} "
              f"{embed_ms:13.3f} {gate_ms / embed_ms:6.3f}")


if __name__ == "__main__":
    main()

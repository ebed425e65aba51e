"""Benchmark of the trained head on the FULL Banking77 and CLINC150: quality on dev, training cost, embedding cost.

Everything the head fits -- C, whether it reads word n-grams, the temperature, the out-of-scope threshold -- comes
from the TRAIN split only (cross-validation and out-of-fold logits); the dev split is used for evaluation and nothing
else. `--embedding-only` leaves the n-grams out (bench/results/trained_head_embedding_only.txt).

    python -m bench.bench_trained_head | tee bench/results/trained_head.txt   (from the repository root)

Datasets are read from ../shared/datasets (override with --datasets). Takes 10-30 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
from shared.learning.calibration import softmax
from shared.learning.classifier import EmbeddingClassifier
from shared.learning.embedders.minilm import LocalMiniLM
from shared.learning.lexical import NGRAM_RANGE
from shared.foundation.metrics import (
    accuracy,
    expected_calibration_error,
    macro_f1,
    selective_accuracy,
)

TARGETS = {"banking77": "acc >= 0.92, ECE <= 0.03, top-80% acc >= 0.985",
           "clinc150": "in-scope acc >= 0.92 with oos recall >= 0.85"}


def read(path: Path) -> tuple[list[str], np.ndarray]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows], dtype=object)


def embed_timed(embedder: LocalMiniLM, texts: list[str]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    vectors = embedder.embed(texts)
    return vectors, time.perf_counter() - start


def embedding_speed(texts: list[str], threads: int, n: int) -> dict[str, float]:
    """ms per item: one text per call, and all ``n`` texts in one call (sorted by length, chunks of 16)."""
    embedder = LocalMiniLM(threads=threads)
    sample = texts[:n]
    embedder.embed(sample[:8])  # load and warm up
    start = time.perf_counter()
    for text in sample:
        embedder.embed([text])
    single = (time.perf_counter() - start) / len(sample) * 1000
    start = time.perf_counter()
    embedder.embed(sample)
    return {"single": single, "batched": (time.perf_counter() - start) / len(sample) * 1000}


def evaluate(name: str, root: Path, none_label: str | None, jobs: int, budgets: list[float], recall_targets: list[float],
             word_ngrams: tuple[int, int] | None) -> None:
    view = (f"embedding, with or without word {word_ngrams[0]}-{word_ngrams[1]}-grams as cross-validation decides"
            if word_ngrams else "embedding alone")
    print(f"\n== {name}, {view} ({TARGETS[name]}) ==")
    train_texts, y_train = read(root / name / "train.jsonl")
    dev_texts, y_dev = read(root / name / "dev.jsonl")
    embedder = LocalMiniLM(threads=1)
    X_train, train_s = embed_timed(embedder, train_texts)
    X_dev, dev_s = embed_timed(embedder, dev_texts)
    print(f"rows: train {len(y_train)}, dev {len(y_dev)}; labels {len(set(y_train))}")
    print(f"embedding (1 thread, sorted by length, chunks of 16): train {train_s:.1f} s "
          f"({train_s / len(y_train) * 1000:.2f} ms/item), dev {dev_s:.1f} s ({dev_s / len(y_dev) * 1000:.2f} ms/item)")

    head = EmbeddingClassifier(none_label=none_label, n_jobs=jobs, word_ngrams=word_ngrams)
    start = time.perf_counter()
    head.fit(X_train, y_train, texts=train_texts)
    fit_s = time.perf_counter() - start
    cv = head.cv_metrics_
    views = "2 views (with and without word n-grams) x " if word_ngrams else ""
    print(f"training ({len(head.Cs)} C values x {views}{cv.folds} folds + final fit, n_jobs={jobs}): {fit_s:.1f} s")
    chosen = f"C = {head.C_:g}" + (f" + word n-grams ({head.ngrams_.width} of them)" if head.ngrams_ else "")
    print(f"chosen on train: {chosen} ({cv.folds}-fold CV accuracy by C: "
          + ", ".join(f"{c}: {a:.4f}" for c, a in cv.cv_accuracy_by_c.items()) + f"), temperature T = "
          f"{head.temperature_:.3f}" + (f", oos threshold = {head.oos_threshold_:.4f} (max in-scope reject "
                                         f"{head.max_inscope_reject:.0%})" if none_label else ""))
    print(f"cross-validated on train: acc {cv.accuracy:.4f}, macro-F1 {cv.macro_f1:.4f}, ECE {cv.ece:.4f} "
          f"(raw {cv.ece_before_temperature:.4f}), top-80% acc {cv.selective_accuracy_80:.4f}")

    start = time.perf_counter()
    predictions = head.predict_with_confidence(X_dev, dev_texts)
    predict_ms = (time.perf_counter() - start) / len(y_dev) * 1000
    right = np.asarray(predictions.labels, dtype=object) == y_dev
    raw = softmax(head.decision_function(X_dev, dev_texts))
    raw_right = head.classes_[raw.argmax(1)] == y_dev
    print(f"DEV accuracy {accuracy(y_dev, predictions.labels):.4f}, macro-F1 {macro_f1(y_dev, predictions.labels):.4f}")
    print(f"DEV ECE after temperature {expected_calibration_error(predictions.confidence, right):.4f} "
          f"(raw, T = 1 and no threshold: {expected_calibration_error(raw.max(1), raw_right):.4f})")
    for coverage in (0.7, 0.8, 0.9):
        print(f"DEV accuracy of the {coverage:.0%} most confident: "
              f"{selective_accuracy(predictions.confidence, right, coverage):.4f}")
    print(f"head prediction: {predict_ms * 1000:.1f} us/item (dev set in one call)")

    if none_label:
        in_scope = y_dev != none_label
        print(f"DEV in-scope accuracy {right[in_scope].mean():.4f}, oos recall {right[~in_scope].mean():.4f} "
              f"({(~in_scope).sum()} oos rows)")
        threshold = head.oos_threshold_
        head.oos_threshold_ = None
        alone = np.asarray(head.predict(X_dev, dev_texts), dtype=object) == y_dev
        print(f"  the oos class alone (no threshold): in-scope {alone[in_scope].mean():.4f}, "
              f"oos recall {alone[~in_scope].mean():.4f}")
        oof_probabilities = softmax(head.oof_logits_, head.temperature_)

        def threshold_row(setting: float, **rule: float | None) -> None:
            """The threshold one rule setting picks from the train OOF rows, scored on dev; the head left as it was."""
            before = {name: getattr(head, name) for name in rule}
            vars(head).update(rule)
            head.oos_threshold_ = head.choose_threshold(oof_probabilities, y_train)
            scored = np.asarray(head.predict(X_dev, dev_texts), dtype=object) == y_dev
            print(f"    {setting:5.0%} -> {head.oos_threshold_:.4f} -> {scored[in_scope].mean():.4f}, "
                  f"{scored[~in_scope].mean():.4f}   ({head.threshold_rule_})")
            vars(head).update(before, oos_threshold_=threshold)

        print("  in-scope reject budget -> threshold (from train OOF) -> DEV in-scope acc, oos recall:")
        for budget in budgets:
            threshold_row(budget, max_inscope_reject=budget)
        print("  none recall target -> threshold (from train OOF) -> DEV in-scope acc, oos recall:")
        for target in recall_targets:
            threshold_row(target, min_none_recall=target)

        in_scope_train = y_train != none_label
        head_t = EmbeddingClassifier(none_label=none_label, n_jobs=jobs, Cs=(head.C_,), word_ngrams=word_ngrams)
        head_t.fit(X_train[in_scope_train], y_train[in_scope_train],
                   texts=[t for t, keep in zip(train_texts, in_scope_train) if keep])
        alone_t = np.asarray(head_t.predict(X_dev, dev_texts), dtype=object) == y_dev
        print(f"  threshold alone (trained without oos examples, C = {head.C_:g}): in-scope "
              f"{alone_t[in_scope].mean():.4f}, oos recall {alone_t[~in_scope].mean():.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--jobs", type=int, default=1, help="parallel cross-validation fits")
    parser.add_argument("--speed-items", type=int, default=300)
    parser.add_argument("--embedding-only", action="store_true",
                        help="the head without word n-grams (bench/results/trained_head_embedding_only.txt)")
    parser.add_argument("--only", nargs="+", choices=["banking77", "clinc150"], default=["banking77", "clinc150"],
                        help="the datasets to evaluate (embedding speed is measured on both either way)")
    args = parser.parse_args()
    word_ngrams = None if args.embedding_only else NGRAM_RANGE
    import onnxruntime
    import sklearn

    print(f"trained head benchmark; python {platform.python_version()}, onnxruntime {onnxruntime.__version__}, "
          f"scikit-learn {sklearn.__version__}, {os.cpu_count()} cores, {platform.machine()}, "
          f"load average {os.getloadavg()[0]:.1f} (the machine is shared: timings carry that noise)")
    for name in ("banking77", "clinc150"):
        texts, _ = read(args.datasets / name / "dev.jsonl")
        for threads in (1, 2):
            speed = embedding_speed(texts, threads, args.speed_items)
            print(f"{name} embed speed, {threads} thread(s), {args.speed_items} dev items: single "
                  f"{speed['single']:.2f} ms/item; batched (sorted by length, 16 a chunk) "
                  f"{speed['batched']:.2f} ms/item")
    if "banking77" in args.only:
        evaluate("banking77", args.datasets, None, args.jobs, [], [], word_ngrams)
    if "clinc150" in args.only:
        evaluate("clinc150", args.datasets, "oos", args.jobs, [0.03, 0.05, 0.07, 0.10], [0.80, 0.85, 0.90, 0.95],
                 word_ngrams)
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()

"""The trained tier's two local embedders on support tickets, with the head the project really fits (issue 29 part 1).

For MiniLM-L6 (English) and USE-m v3 (multilingual, the `auto` choice for a task that declares several
languages), a support_ticket head is fitted exactly as `smallfirst train` fits one (shared.learning.training.
train_head: cross-validated over the embedding alone and with word n-grams, temperature, threshold) on each
training file given, and scored on the English dev set (dev.jsonl, 80 tickets) and the multilingual one
(multilingual_dev.jsonl, 136 tickets in 12 languages, written for the project): accuracy, ECE, accuracy of the 80%
most confident, and per language. Speed: ms/item through the serving path (embed_metered, then the head), one
thread, one text per call and calls of 64, over both dev sets, in interleaved rounds (median).

The issue's bar: on the multilingual dev set, the local default for a multilingual task within 3 points of its
English accuracy. USE-m was trained on 16 languages (ar de en es fr it ja ko nl pl pt ru th tr zh zh-TW); the set
also holds Swedish, Indonesian and Czech, which are outside them, so both figures are printed.

    .venv/bin/python -m bench.bench_multilingual_tickets --train TRAIN.jsonl [--train OTHER.jsonl] \\
        | tee bench/results/multilingual_tickets.txt
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_variable] = "1"  # one thread everywhere, set before numpy loads its thread pool

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np

from shared.foundation.metrics import expected_calibration_error, selective_accuracy
from shared.foundation.model_files import file_sha256
from shared.learning.embedders.base import Embedder
from shared.learning.embedders.minilm import LocalMiniLM
from shared.learning.embedders.use_multilingual import LocalUSEMultilingual
from shared.learning.training import train_head
from shared.learning.training_data import TrainingSet, read_labelled_jsonl

REPO = Path(__file__).resolve().parents[1]
TICKETS = REPO / "tasks" / "data" / "support_ticket"
LABELS = ["account", "billing", "other", "technical"]
USE_M_LANGUAGES = {"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"}


def read_rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def scores(head, embedder: Embedder, rows: list[dict]) -> tuple[dict[str, float], np.ndarray, list[str]]:
    texts = [row["text"] for row in rows]
    prediction = head.predict_with_confidence(embedder.embed(texts), texts)
    right = np.asarray(prediction.labels, dtype=object) == np.array([row["label"] for row in rows], dtype=object)
    figures = {"acc": float(right.mean()), "ece": expected_calibration_error(prediction.confidence, right),
               "sel80": selective_accuracy(prediction.confidence, right, 0.8)}
    return figures, right, list(prediction.labels)


def speed(embedders: dict[str, Embedder], heads: dict, texts: list[str], rounds: int) -> dict[str, dict[str, float]]:
    """ms/item through embed_metered and the head: each text alone, and calls of 64; rounds interleave."""
    samples = {key: {"single": [], "batch64": []} for key in embedders}
    for _ in range(rounds):
        for key, embedder in embedders.items():
            head = heads[key]
            start = time.perf_counter()
            for text in texts:
                head.predict_with_confidence(embedder.embed_metered([text]).vectors, [text])
            samples[key]["single"].append((time.perf_counter() - start) / len(texts) * 1000)
            start = time.perf_counter()
            for i in range(0, len(texts), 64):
                chunk = texts[i:i + 64]
                head.predict_with_confidence(embedder.embed_metered(chunk).vectors, chunk)
            samples[key]["batch64"].append((time.perf_counter() - start) / len(texts) * 1000)
    return {key: {mode: statistics.median(values) for mode, values in modes.items()}
            for key, modes in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=Path, action="append", required=True, help="a labelled .jsonl to fit on")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"python {platform.python_version()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, "
          "one thread")
    embedders: dict[str, Embedder] = {"minilm": LocalMiniLM(threads=1), "use-m": LocalUSEMultilingual(threads=1)}
    for key, embedder in embedders.items():
        print(f"{key}: {embedder.id}, model sha256 {embedder.model_hash}")
    dev, multilingual = read_rows(TICKETS / "dev.jsonl"), read_rows(TICKETS / "multilingual_dev.jsonl")
    languages = np.array([row["lang"] for row in multilingual])
    in_use_m = np.isin(languages, sorted(USE_M_LANGUAGES))
    print(f"dev.jsonl {len(dev)} rows, multilingual_dev.jsonl {len(multilingual)} rows "
          f"({int(in_use_m.sum())} in USE-m's languages)")
    table, heads = [], {}
    for path in args.train:
        training = TrainingSet(read_labelled_jsonl(path))
        print(f"\n== train on {path.relative_to(REPO) if path.is_relative_to(REPO) else path}: {len(training)} rows, "
              f"sha256 {file_sha256(path)}")
        for key, embedder in embedders.items():
            start = time.perf_counter()
            head = train_head(embedder, training, labels=LABELS)
            heads[key] = head
            views = "embedding + word n-grams" if getattr(head, "ngrams_", None) else "embedding alone"
            print(f"-- {key}: fitted in {time.perf_counter() - start:.1f} s ({views}), "
                  f"CV accuracy {head.cv_metrics_.accuracy:.4f}", flush=True)
            english, _, _ = scores(head, embedder, dev)
            figures, right, predicted = scores(head, embedder, multilingual)
            by_language = {lang: right[languages == lang] for lang in dict.fromkeys(languages.tolist())}
            print("    multilingual by language: " + ", ".join(
                f"{lang} {hits.sum()}/{len(hits)}" for lang, hits in by_language.items()))
            wrong = [f"{row['id']} {row['label']}->{p}"
                     for row, p, ok in zip(multilingual, predicted, right) if not ok]
            print(f"    multilingual errors ({len(wrong)}): " + "; ".join(wrong))
            table.append((path.name, len(training), key, english, figures, float(right[in_use_m].mean()),
                          float(right[~in_use_m].mean())))
    print("\ntrain file (rows)              embedder  EN acc  ECE    top80 | multi acc  ECE    top80 | its 16 langs  "
          "sv/id/cs | multi - EN")
    for name, rows, key, english, figures, inside, outside in table:
        print(f"{name + f' ({rows})':<30} {key:<8} {english['acc']:6.1%} {english['ece']:.3f} "
              f"{english['sel80']:6.1%} | {figures['acc']:8.1%} {figures['ece']:.3f} {figures['sel80']:6.1%} | {inside:11.1%} "
              f"{outside:8.1%} | {100 * (figures['acc'] - english['acc']):+6.1f} pt")
    texts = [row["text"] for row in dev + multilingual]
    for embedder in embedders.values():
        embedder.embed(texts[:8])  # loaded and warm before any timing
    timings = speed(embedders, heads, texts, args.rounds)
    print(f"\nms/item through embed_metered + head (the last file's heads), {len(texts)} tickets, median of "
          f"{args.rounds} interleaved rounds:")
    for key, modes in timings.items():
        print(f"  {key:<8} single {modes['single']:.2f}  batch64 {modes['batch64']:.2f}  "
              f"(single / MiniLM {modes['single'] / timings['minilm']['single']:.2f})")


if __name__ == "__main__":
    main()

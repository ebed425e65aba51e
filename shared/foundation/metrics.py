"""The pure maths of evaluation and monitoring: quality, latency, calibration, co-failure, intervals and drift.
Whether one answer is right is foundation/answers.py; the simulated cascade is evaluation/cascade_simulation.py."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any, Sequence

import numpy as np

from shared.foundation.answers import fields_correct, normalise_field, normalise_text

# -- classification ---------------------------------------------------------------------------------------
def accuracy(gold: Sequence[Any], predicted: Sequence[Any]) -> float:
    return float(np.mean([g == p for g, p in zip(gold, predicted)])) if len(gold) else 0.0


def macro_f1(gold: Sequence[str], predicted: Sequence[str | None]) -> float:
    """Mean F1 over the labels that occur in the gold answers (a missing prediction counts as wrong)."""
    scores = []
    for label in sorted(set(gold)):
        tp = sum(g == label and p == label for g, p in zip(gold, predicted))
        fp = sum(g != label and p == label for g, p in zip(gold, predicted))
        fn = sum(g == label and p != label for g, p in zip(gold, predicted))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def none_label_precision_recall(gold: Sequence[str], predicted: Sequence[str | None], none_label: str) -> tuple[float, float]:
    tp = sum(g == none_label and p == none_label for g, p in zip(gold, predicted))
    predicted_none = sum(p == none_label for p in predicted)
    gold_none = sum(g == none_label for g in gold)
    return (tp / predicted_none if predicted_none else 0.0, tp / gold_none if gold_none else 0.0)


def inscope_accuracy(gold: Sequence[str], predicted: Sequence[str | None], none_label: str) -> float:
    """Accuracy over the items whose gold label is not the none label (an in-scope item answered none is wrong)."""
    pairs = [(g, p) for g, p in zip(gold, predicted) if g != none_label]
    return accuracy([g for g, _ in pairs], [p for _, p in pairs])


def top_confusions(gold: Sequence[str], predicted: Sequence[str | None], n: int = 10) -> list[tuple[str, str, int]]:
    counts = Counter((g, str(p)) for g, p in zip(gold, predicted) if g != p)
    return [(g, p, c) for (g, p), c in counts.most_common(n)]


# -- extraction -----------------------------------------------------------------------------------------
def field_exact_match(answers: Sequence[dict | None], expected: Sequence[dict]) -> dict[str, float]:
    fields = list(expected[0]) if expected else []
    return {f: float(np.mean([fields_correct(a, e)[f] for a, e in zip(answers, expected)])) for f in fields}


def field_f1(answers: Sequence[dict | None], expected: Sequence[dict]) -> float:
    """Micro F1 over (field, value) pairs: a non-empty predicted value is right if it matches after normalising."""
    tp = predicted = relevant = 0
    for answer, gold in zip(answers, expected):
        answer = answer or {}
        for field, value in gold.items():
            has_prediction = normalise_text(answer.get(field)) != ""
            has_gold = normalise_text(value) != ""
            predicted += has_prediction
            relevant += has_gold
            tp += has_prediction and has_gold and normalise_field(field, answer.get(field)) == normalise_field(field, value)
    if tp == 0:
        return 0.0
    precision, recall = tp / predicted, tp / relevant
    return 2 * precision * recall / (precision + recall)


# -- latency, cost, calibration -------------------------------------------------------------------------
def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> dict[str, float]:
    if not values:
        return {f"p{int(q)}": 0.0 for q in qs}
    return {f"p{int(q)}": float(np.percentile(values, q)) for q in qs}


@dataclass
class ReliabilityBin:
    low: float
    high: float
    count: int
    mean_confidence: float
    accuracy: float


def reliability(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> list[ReliabilityBin]:
    edges = np.linspace(0.0, 1.0, bins + 1)
    conf = np.asarray(confidences, dtype=float)
    right = np.asarray(correct, dtype=float)
    index = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    result = []
    for b in range(bins):
        mask = index == b
        count = int(mask.sum())
        result.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), count,
                                     float(conf[mask].mean()) if count else 0.0, float(right[mask].mean()) if count else 0.0))
    return result


def expected_calibration_error(confidences: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    n = len(confidences)
    if n == 0:
        return 0.0
    return float(sum(b.count / n * abs(b.accuracy - b.mean_confidence) for b in reliability(confidences, correct, bins)))


def selective_accuracy(confidence: Sequence[float], correct: Sequence[bool], coverage: float = 0.8) -> float:
    """Accuracy on the ``coverage`` share of items with the highest confidence (ties broken by input order)."""
    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        return 0.0
    keep = max(1, int(np.ceil(coverage * conf.size)))
    order = np.argsort(-conf, kind="stable")[:keep]
    return float(right[order].mean())


def co_failure(small_correct: Sequence[bool], frontier_correct: Sequence[bool]) -> dict[str, int]:
    pairs = list(zip(small_correct, frontier_correct))
    return {
        "both_right": sum(s and f for s, f in pairs),
        "only_small_wrong": sum((not s) and f for s, f in pairs),
        "only_frontier_wrong": sum(s and not f for s, f in pairs),
        "both_wrong": sum((not s) and (not f) for s, f in pairs),
    }


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a proportion: sound at small n and near 0 or 1, where the normal one is not.
    With no observations it is the whole range."""
    if n <= 0:
        return 0.0, 1.0
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    # At 0 or n successes the bound is exactly 0 or 1; the subtraction would leave rounding error.
    return (0.0 if successes == 0 else centre - half), (1.0 if successes == n else centre + half)


PSI_BINS = 10


def confidence_histogram(confidences: Sequence[float], bins: int = PSI_BINS) -> list[float]:
    """Shares of confidences in equal-width bins over [0, 1] (the reference a live distribution is compared with)."""
    counts = np.histogram(np.clip(np.asarray(confidences, dtype=float), 0.0, 1.0), bins=bins, range=(0.0, 1.0))[0]
    return [float(c) / max(1, len(confidences)) for c in counts]


def population_stability_index(reference: Sequence[float], live: Sequence[float], floor: float = 1e-4) -> float:
    """PSI between two histograms of shares: sum (live - ref) * ln(live / ref), empty bins floored. Rule of thumb:
    below 0.1 stable, 0.1-0.25 moderate drift, above 0.25 a shift worth re-tuning for."""
    ref = np.maximum(np.asarray(reference, dtype=float), floor)
    now = np.maximum(np.asarray(live, dtype=float), floor)
    return float(np.sum((now - ref) * np.log(now / ref)))

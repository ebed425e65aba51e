"""The few metrics a head is judged by. ECE uses the same 10 equal-width bins as shared.metrics, so figures compare."""

from __future__ import annotations

from typing import Sequence

import numpy as np


def expected_calibration_error(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Sum over equal-width confidence bins of (bin share) x |accuracy - mean confidence| in the bin."""
    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=float)
    if conf.size == 0:
        return 0.0
    index = np.clip(np.digitize(conf, np.linspace(0.0, 1.0, bins + 1)[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        mask = index == b
        if mask.any():
            total += mask.mean() * abs(right[mask].mean() - conf[mask].mean())
    return float(total)


def selective_accuracy(confidence: Sequence[float], correct: Sequence[bool], coverage: float = 0.8) -> float:
    """Accuracy on the ``coverage`` share of items with the highest confidence (ties broken by input order)."""
    conf = np.asarray(confidence, dtype=float)
    right = np.asarray(correct, dtype=bool)
    if conf.size == 0:
        return 0.0
    keep = max(1, int(np.ceil(coverage * conf.size)))
    order = np.argsort(-conf, kind="stable")[:keep]
    return float(right[order].mean())


def macro_f1(gold: Sequence[str], predicted: Sequence[str]) -> float:
    """Mean F1 over the labels that occur in the gold answers."""
    gold_arr, pred_arr = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    scores = []
    for label in sorted(set(gold_arr.tolist())):
        tp = np.sum((gold_arr == label) & (pred_arr == label))
        fp = np.sum((gold_arr != label) & (pred_arr == label))
        fn = np.sum((gold_arr == label) & (pred_arr != label))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores)) if scores else 0.0


def accuracy(gold: Sequence[str], predicted: Sequence[str]) -> float:
    gold_arr, pred_arr = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    return float(np.mean(gold_arr == pred_arr)) if gold_arr.size else 0.0

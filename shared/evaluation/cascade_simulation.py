"""The evaluation's cascade, simulated from per-tier records: each threshold's accuracy and cost, the recommended
threshold (the one evaluation/guarantees.py shows to reach a target). Acceptance is the policy's own rule
(core/policy.py `accepts`), so the simulation and the live cascade cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from shared.core.policy import accepts
from shared.evaluation.guarantees import Selection
from shared.foundation.tasks import ThresholdBound


@dataclass
class CascadePoint:
    threshold: float
    accuracy: float
    cost_per_item: float
    escalation_rate: float


def simulate_cascade(
    small_conf: Sequence[float], small_correct: Sequence[bool], small_cost: Sequence[float],
    frontier_correct: Sequence[bool], frontier_cost: Sequence[float],
) -> list[CascadePoint]:
    """Every distinct threshold: items whose confidence the policy accepts there keep the small answer (the cascade
    stops), the rest pay for the frontier too.

    Thresholds run from 0 (all small) to just above the largest confidence (everything escalates).
    """
    conf = np.asarray(small_conf, dtype=float)
    thresholds = sorted({0.0, *conf.tolist(), float(np.nextafter(conf.max(), 2.0)) if len(conf) else 1.0})
    s_ok, f_ok = np.asarray(small_correct, bool), np.asarray(frontier_correct, bool)
    s_cost, f_cost = np.asarray(small_cost, float), np.asarray(frontier_cost, float)
    points = []
    for t in thresholds:
        keep = accepts(conf, t)
        correct = np.where(keep, s_ok, f_ok)
        cost = s_cost + np.where(keep, 0.0, f_cost)
        points.append(CascadePoint(float(t), float(correct.mean()), float(cost.mean()), float((~keep).mean())))
    return points


def simulated_correct(small_conf: np.ndarray, threshold: float, small_correct: Sequence[bool],
                      frontier_correct: Sequence[bool]) -> np.ndarray:
    """Per item, whether the simulated cascade at `threshold` is right: the small answer where the policy accepts
    its confidence, else the frontier's."""
    return np.where(accepts(small_conf, threshold), small_correct, frontier_correct)


@dataclass
class Recommendation:
    threshold: float
    accuracy: float
    accuracy_ci: tuple[float, float]
    cost_per_item: float
    escalation_rate: float
    target: float
    saving_vs_frontier: float | None  # share of the all-frontier cost saved
    bound: ThresholdBound  # the lower bound on cascade accuracy the threshold was chosen by


def recommend_threshold(
    points: list[CascadePoint], selection: Selection, correct_at: "callable", frontier_cost_per_item: float | None,
    bootstrap: int = 1000, seed: int = 0,
) -> Recommendation | None:
    """The threshold `selection` chose (the lowest shown to reach its target, so the cheapest of those: a lower
    threshold escalates less), its point on the curve and a bootstrap 95% interval of its accuracy; None if no
    threshold was shown to reach the target.

    `correct_at(threshold)` returns the per-item correctness array of the cascade at that threshold.
    """
    if selection.chosen is None:
        return None
    best = next(p for p in points if p.threshold == selection.chosen.threshold)
    correct = np.asarray(correct_at(best.threshold), dtype=float)
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(correct), size=(bootstrap, len(correct)))
    means = correct[samples].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    saving = None
    if frontier_cost_per_item:
        saving = 1.0 - best.cost_per_item / frontier_cost_per_item
    return Recommendation(best.threshold, best.accuracy, (float(low), float(high)), best.cost_per_item,
                          best.escalation_rate, selection.target, saving, selection.bound())

"""`smallfirst tune`: fit a cheaper tier's calibration and write the threshold it recommends, with the accuracy bound
the threshold was chosen by, into the task file."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np

from shared.foundation.task_files import read_task_data, update_task_file
from shared.foundation.tasks import Calibration
from shared.evaluation import guarantees
from shared.foundation import metrics
from shared.evaluation.run_analysis import FRONTIER, SMALL, analyse_cascade, load_runs


def fit_isotonic(confidences: list[float], correct: list[bool], max_points: int = 20) -> Calibration:
    """A non-decreasing map from raw confidence to observed accuracy (scipy's isotonic regression)."""
    from scipy.optimize import isotonic_regression

    # Items of equal confidence are one point, weighted by their count: the map must give them one value (fitted
    # one by one, ties got a rising staircase at a single x, which np.interp reads as its last step).
    x, index, counts = np.unique(np.asarray(confidences, float), return_inverse=True, return_counts=True)
    accuracy = np.bincount(index, weights=np.asarray(correct, float)) / counts
    y = isotonic_regression(accuracy, weights=counts.astype(float)).x
    # Keep the breakpoints only: the map is piecewise constant between them, and interpolated at apply time.
    keep = [0] + [i for i in range(1, len(x)) if y[i] != y[i - 1]] + [len(x) - 1]
    keep = sorted(set(keep))
    if len(keep) > max_points:
        keep = sorted(set(np.linspace(0, len(x) - 1, max_points).astype(int).tolist()))
    return Calibration(x=[float(x[i]) for i in keep], y=[float(y[i]) for i in keep])


def tune(task_path: Path, run_path: Path, *, task: str, frontier_run: Path | None = None,
         target: float | None = None, tier: str = SMALL, calibrate: bool = True,
         confidence: float = guarantees.DEFAULT_CONFIDENCE) -> dict[str, Any]:
    """Fit a cheaper tier's calibration on a run and write it, with the threshold it recommends and the accuracy
    bound that threshold was chosen by, into the task.

    The threshold is the lowest whose accuracy is shown to reach the target with `confidence` (guarantees.py:
    one-sided Clopper-Pearson bounds in a fixed sequence from the highest threshold down): the cascade's accuracy
    with a frontier run, else that of the items the tier accepts. ValueError, in one line saying what the run
    would need, if none is. For `small` the task's `threshold` is set; for another tier its entry in
    `tier_thresholds`; either way the bound goes into `threshold_bounds` under the tier's name. Without
    `calibrate` (a tier whose confidence is calibrated already, as the trained tier's), the threshold is chosen
    on the tier's own confidence and the task's calibration map is left as it is."""
    runs = load_runs(run_path, task, frontier_run)
    if tier not in runs:
        raise ValueError(f"{run_path}: no records for tier {tier!r}")
    small_run = runs[tier]
    today = date.today().isoformat()
    calibration = fit_isotonic(small_run.raw_confidences, small_run.correct)
    calibration.fitted_on, calibration.fitted_at, calibration.tier = str(run_path), today, tier
    mapping = calibration.apply if calibrate else (lambda confidence: confidence)
    calibrated = [mapping(c) for c in small_run.raw_confidences]
    if FRONTIER in runs:
        analysis = analyse_cascade(small_run, runs[FRONTIER], mapping, target, confidence)
        selection, rec = analysis.selection, analysis.recommendation
        detail = f"; escalation {rec.escalation_rate:.1%}" if rec else ""
    else:
        selection = guarantees.select_accepted(calibrated, small_run.correct, 0.9 if target is None else target,
                                               confidence)
        detail = ", the rest to review"
    if selection.chosen is None:
        raise ValueError(selection.shortfall())
    threshold, bound = selection.chosen.threshold, selection.bound()
    source = f"tuned {today} on {run_path.name} for a {bound.target:.1%} target: {bound.statement}{detail}"
    raw = read_task_data(task_path)
    updates: dict[str, Any] = {}
    # Unrounded: a threshold rounded down would accept items below the one the bound was shown on
    if tier == SMALL:
        updates["threshold"] = float(threshold)
        updates["threshold_source"] = source
    else:
        updates["tier_thresholds"] = {**(raw.get("tier_thresholds") or {}), tier: float(threshold)}
        updates["tier_threshold_sources"] = {**(raw.get("tier_threshold_sources") or {}), tier: source}
    updates["threshold_bounds"] = {**(raw.get("threshold_bounds") or {}), tier: bound.model_dump()}
    # What the threshold was tuned on, for drift: live confidences are compared with it (population stability)
    updates["confidence_reference"] = {**(raw.get("confidence_reference") or {}), tier: [
        round(share, 6) for share in metrics.confidence_histogram(calibrated)]}
    if calibrate:
        updates["calibration"] = calibration.model_dump()
    update_task_file(task_path, updates)
    return {"threshold": threshold, "source": source, "bound": bound, "calibration_points": len(calibration.x)}

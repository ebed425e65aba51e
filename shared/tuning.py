"""`smallfirst tune`: fit the small tier's calibration and write the recommended threshold into the task file."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from shared import metrics
from shared.evaluation import read_run
from shared.report import align, default_target, tier_runs
from shared.tasks import Calibration


def fit_isotonic(confidences: list[float], correct: list[bool], max_points: int = 20) -> Calibration:
    """A non-decreasing map from raw confidence to observed accuracy (scipy's isotonic regression)."""
    from scipy.optimize import isotonic_regression

    order = np.argsort(confidences)
    x = np.asarray(confidences, float)[order]
    y = isotonic_regression(np.asarray(correct, float)[order]).x
    # Keep the breakpoints only: the map is piecewise constant between them, and interpolated at apply time.
    keep = [0] + [i for i in range(1, len(x)) if y[i] != y[i - 1]] + [len(x) - 1]
    keep = sorted(set(keep))
    if len(keep) > max_points:
        keep = sorted(set(np.linspace(0, len(x) - 1, max_points).astype(int).tolist()))
    return Calibration(x=[float(x[i]) for i in keep], y=[float(y[i]) for i in keep])


def tune(task_path: Path, run_path: Path, *, frontier_run: Path | None = None, small: str = "small",
         frontier: str = "frontier", target: float | None = None) -> dict[str, Any]:
    runs = tier_runs(read_run(run_path))
    if frontier_run is not None:
        extra = tier_runs(read_run(frontier_run))
        runs[frontier] = extra.get(frontier) or next(iter(extra.values()))
    if small not in runs:
        raise ValueError(f"{run_path}: no records for tier {small!r}")
    small_run = runs[small]
    calibration = fit_isotonic(small_run.confidences, small_run.correct)
    today = date.today().isoformat()
    calibration.fitted_on, calibration.fitted_at, calibration.tier = str(run_path), today, small
    calibrated = [calibration.apply(c) for c in small_run.confidences]
    if frontier in runs:
        s, f = align(small_run, runs[frontier])
        conf = np.asarray([calibration.apply(c) for c in s.confidences])
        points = metrics.simulate_cascade(conf.tolist(), s.correct, s.costs, f.correct, f.costs)
        goal = target if target is not None else default_target(f)
        rec = metrics.recommend_threshold(points, goal, lambda t: np.where(conf >= t, s.correct, f.correct),
                                          float(np.mean(f.costs)) or None)
        if rec is None:
            raise ValueError(f"no threshold reaches the target accuracy {goal:.3f}")
        threshold = rec.threshold
        source = (f"tuned {today} on {run_path.name} ({len(s.records)} items): cascade accuracy {rec.accuracy:.3f} "
                  f"[{rec.accuracy_ci[0]:.3f}, {rec.accuracy_ci[1]:.3f}], escalation {rec.escalation_rate:.1%}")
    else:
        goal = target if target is not None else 0.9
        found = metrics.selective_threshold(calibrated, small_run.correct, goal)
        if found is None:
            raise ValueError(f"no threshold gives accepted items an accuracy of {goal:.2f}")
        threshold = found[0]
        source = (f"tuned {today} on {run_path.name} ({len(small_run.records)} items, one tier): accepted items "
                  f"{found[1]:.3f} accurate, {found[2]:.1%} accepted, the rest to review")
    raw = yaml.safe_load(task_path.read_text(encoding="utf-8"))
    raw["threshold"] = round(float(threshold), 6)
    raw["threshold_source"] = source
    raw["calibration"] = calibration.model_dump()
    task_path.write_text(yaml.safe_dump(raw, sort_keys=False, allow_unicode=True, width=200), encoding="utf-8")
    return {"threshold": threshold, "source": source, "calibration_points": len(calibration.x)}

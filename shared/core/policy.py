"""Where escalation is decided: a task's AcceptancePolicy judges each answered attempt, and nothing else does.

Tiers only score (as RouteLLM's routers do); the policy owns the threshold test. The confidence it compares
is the tier's own, mapped through the task's calibration for that tier when `smallfirst tune` fitted one,
so evaluation and tuning use `calibrated` to see exactly what the cascade compares.
"""

from __future__ import annotations

import numpy as np

from shared.core.config import Role
from shared.core.records import Attempt
from shared.core.tasks import AnyTask


class AcceptancePolicy:
    def __init__(self, task: AnyTask) -> None:
        self.threshold = task.threshold
        self.tier_thresholds = task.tier_thresholds
        self.frontier_threshold = task.frontier_threshold
        self.calibration = task.calibration

    def calibrated(self, tier: str, raw_confidence: float) -> float:
        if self.calibration is not None and self.calibration.tier == tier:
            return self.calibration.apply(raw_confidence)
        return raw_confidence

    def threshold_for(self, tier: str, role: Role) -> float:
        return self.frontier_threshold if role == "frontier" else self.tier_thresholds.get(tier, self.threshold)

    def lowest_accepted(self, tier: str, role: Role) -> float:
        """The lowest raw confidence of `tier` that `judge` would accept (the calibration map is non-decreasing),
        for tiers that stop scoring once the verdict is settled; above 1 if none would be."""
        threshold = self.threshold_for(tier, role)
        if self.calibration is None or self.calibration.tier != tier:
            return threshold
        grid = np.linspace(0.0, 1.0, 1001)
        accepted = grid[np.interp(grid, self.calibration.x, self.calibration.y) >= threshold]
        return float(accepted[0]) if accepted.size else 1.5

    def judge(self, attempt: Attempt, role: Role) -> Attempt:
        """The attempt with its verdict: `accepted` or `low_confidence` (with the reason), if it answered."""
        if not attempt.answered or attempt.raw_confidence is None:
            return attempt
        confidence = self.calibrated(attempt.tier, attempt.raw_confidence)
        threshold = self.threshold_for(attempt.tier, role)
        if confidence >= threshold:
            return attempt.model_copy(update={"outcome": "accepted", "confidence": confidence, "reason": None})
        return attempt.model_copy(update={
            "outcome": "low_confidence", "confidence": confidence,
            "reason": f"confidence {confidence:.3f} < {attempt.tier}'s threshold {threshold}",
        })

"""The routing rules, all of them: which tiers an item tries, when it stops, what its status is, and which tier is
the frontier. Nothing else decides escalation; the cascade (core/cascade.py) only drives these rules, and the
evaluation's simulated cascade (evaluation/cascade_simulation.py) applies the same ones.

- `over_input_budget`: a tier is skipped (outcome `too_large`) for an item over its input budget, unasked.
- `AcceptancePolicy.judge`: the verdict on an answered attempt, `accepted` or `low_confidence`. Tiers only score
  (as RouteLLM's routers do); the policy owns the threshold test (`accepts`). The confidence it compares is the
  tier's own, mapped through the task's calibration for that tier when `smallfirst tune` fitted one, so
  evaluation and tuning use `calibrated` to see exactly what the cascade compares.
- `settles`: the stop rule, the first accepted attempt ends the item's cascade.
- `item_status`: the item's status and chosen attempt from its attempts.
- `frontier_of`: the task's frontier, for the counterfactual cost, shadow sampling and training data.
"""

from __future__ import annotations

from typing import Mapping, Sequence, TypeVar

import numpy as np

from shared.core.config import Role, TierConfig
from shared.foundation.records import Attempt, Status
from shared.foundation.tasks import AnyTask

C = TypeVar("C", float, np.ndarray)


def accepts(confidence: C, threshold: float) -> C:
    """Whether a (calibrated) confidence is accepted at `threshold`; elementwise for an array."""
    return confidence >= threshold


def frontier_of(task: AnyTask, tiers: Mapping[str, TierConfig]) -> str | None:
    """The task's frontier: the last of its configured tiers (`tiers`, the settings' tiers by name) whose role is
    frontier; None if it has none."""
    frontiers = [name for name in task.tiers if name in tiers and tiers[name].role == "frontier"]
    return frontiers[-1] if frontiers else None


def over_input_budget(tier: TierConfig, task: AnyTask, text: str) -> Attempt | None:
    """The `too_large` attempt of a tier that `text` does not fit (the task's and the tier's budgets), else None."""
    budget = min(task.max_input_tokens, tier.max_input_tokens)
    if len(text) > task.max_input_chars or task.estimate_tokens(text) > budget:
        return Attempt(tier=tier.name, outcome="too_large", reason=f"input exceeds {tier.name}'s budget")
    return None


def settles(attempt: Attempt) -> bool:
    """The stop rule: an accepted attempt ends the cascade; any other outcome tries the next tier."""
    return attempt.outcome == "accepted"


def item_status(attempts: Sequence[Attempt]) -> tuple[Status, Attempt | None]:
    """The item's status and the attempt whose answer it keeps (the last attempt is the accepted one, if any was):
    accepted by the first tier, escalated, needs_review with the most confident draft (none if no tier answered),
    or failed when every tier errored."""
    if settles(attempts[-1]):
        return ("accepted" if len(attempts) == 1 else "escalated"), attempts[-1]
    drafts = [a for a in attempts if a.answered]
    if drafts:  # no tier was sure enough: keep the most confident answer as a draft for a person
        return "needs_review", max(drafts, key=lambda a: a.confidence or 0.0)
    return ("failed" if all(a.outcome == "error" for a in attempts) else "needs_review"), None


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
        accepted = grid[accepts(np.interp(grid, self.calibration.x, self.calibration.y), threshold)]
        return float(accepted[0]) if accepted.size else 1.5

    def judge(self, attempt: Attempt, role: Role) -> Attempt:
        """The attempt with its verdict: `accepted` or `low_confidence` (with the reason), if it answered."""
        if not attempt.answered or attempt.raw_confidence is None:
            return attempt
        confidence = self.calibrated(attempt.tier, attempt.raw_confidence)
        threshold = self.threshold_for(attempt.tier, role)
        if accepts(confidence, threshold):
            return attempt.model_copy(update={"outcome": "accepted", "confidence": confidence, "reason": None})
        note = f" ({attempt.reason})" if attempt.reason else ""  # the tier's own word on its confidence
        return attempt.model_copy(update={
            "outcome": "low_confidence", "confidence": confidence,
            "reason": f"confidence {confidence:.3f} < {attempt.tier}'s threshold {threshold}{note}",
        })

"""Thresholds with a stated guarantee: the lowest threshold whose accuracy is shown, with a chosen confidence, to
reach a target on an eval run, and the bound it was shown with.

Each candidate threshold is a hypothesis test: "accuracy at this threshold is below the target", rejected when the
one-sided Clopper-Pearson lower bound (Clopper and Pearson, 1934) reaches the target. Choosing the lowest of many
thresholds by testing each on the same data would make a per-threshold bound optimistic (one of many tries passes
by luck), so the candidates are tested in a fixed sequence, from the highest threshold down, stopping at the first
that fails: fixed-sequence testing keeps the chance of any wrong pass at most 1 - confidence with no correction
for the number of tests (Bauer, 1991), as in Learn then Test (Angelopoulos et al., 2021, arXiv:2110.01052). The
candidates and their order come from the confidences alone, never from which answers were right. (With `tune
--calibrate` the confidences are an isotonic map's fitted on the same run: its flat steps pool neighbouring
thresholds, so which candidates exist leans a little on the labels; `--no-calibrate` keeps the sequence label-free.)

Two scopes: `accepted`, one tier alone, bounds the accuracy of the items it accepts (the rest go to review);
candidates accepting fewer items than any bound at the target needs are skipped (a label-free rule: all right,
they could still not pass), else the sequence would stop at its first, one-item candidate. `cascade` bounds the
accuracy over every item, the small tier's answer where it is accepted and the frontier's elsewhere; its sequence
starts where everything escalates.

The bound holds for items like those of the run (drawn from the same stream); a shift in what arrives is what
the live checks are for (shadow accuracy, confidence drift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator, Literal, Sequence

import numpy as np

from shared.core.policy import accepts
from shared.foundation.tasks import ThresholdBound

DEFAULT_CONFIDENCE = 0.95
Scope = Literal["accepted", "cascade"]


def accuracy_lower_bound(correct: int, items: int, confidence: float) -> float:
    """One-sided Clopper-Pearson lower bound on a proportion: the lowest accuracy under which `correct` or more
    right answers of `items` still has probability above 1 - confidence (a beta quantile). 0 with none right."""
    from scipy.stats import beta  # scipy is an evaluation dependency: imported here, not when the package loads

    if correct <= 0 or items <= 0:
        return 0.0
    return float(beta.ppf(1.0 - confidence, correct, items - correct + 1))


def items_needed(target: float, confidence: float) -> int | None:
    """The fewest items, every one right, whose lower bound reaches `target` ((1 - confidence) ** (1 / n) >= target);
    None for a target of 1, which no finite run shows."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"a confidence must be between 0 and 1, not {confidence}")
    if target >= 1.0:
        return None
    if target <= 0.0:
        return 1
    n = max(1, math.ceil(math.log(1.0 - confidence) / math.log(target)))
    while accuracy_lower_bound(n, n, confidence) < target:  # the logarithms' rounding, at an exact boundary
        n += 1
    return n


@dataclass(frozen=True)
class TestedThreshold:
    threshold: float
    accepted: int  # items the tier accepts at the threshold
    counted: int  # items the bound is over: the accepted ones (one tier) or all (cascade)
    correct: int  # right answers among them
    bound: float


@dataclass(frozen=True)
class Selection:
    """The fixed sequence as it ran: the thresholds that passed, highest first, and the one it stopped at."""

    scope: Scope
    target: float
    confidence: float
    items: int
    passed: list[TestedThreshold]
    stopped_at: TestedThreshold | None  # the first that failed; None if every candidate passed

    @property
    def chosen(self) -> TestedThreshold | None:
        """The lowest threshold that passed (the last before the sequence stopped)."""
        return self.passed[-1] if self.passed else None

    def bound(self) -> ThresholdBound:
        chosen = self.chosen
        if chosen is None:
            raise ValueError(self.shortfall())
        return ThresholdBound(scope=self.scope, accuracy_lower_bound=chosen.bound, confidence=self.confidence,
                              target=self.target, items=self.items, accepted=chosen.accepted, correct=chosen.correct)

    def shortfall(self) -> str:
        """Why no threshold passed, and what a run would need, in one line."""
        what = "accepted items" if self.scope == "accepted" else "cascade answers"
        head = f"no threshold's {what} reach {self.target:.1%} with {self.confidence * 100:g}% confidence"
        needed = items_needed(self.target, self.confidence)
        if needed is None:
            return f"{head}: no finite run shows 100%; give a --target below 1"
        first = self.stopped_at
        if first is None:  # no candidate accepted enough items to be tested at all
            seen = f"the run has {self.items} items"
        else:
            seen = (f"the first threshold tested ({first.threshold:.3f}) has {first.correct} of {first.counted} right, "
                    f"bound {first.bound:.1%}")
        return (f"{head}: {seen}; {self.target:.1%} needs at least {needed} "
                f"{'accepted ' if self.scope == 'accepted' else ''}items, all right (more if any is wrong): label more "
                "items, or lower --target or --confidence")


def fixed_sequence(tests: Iterable[TestedThreshold], target: float
                   ) -> tuple[list[TestedThreshold], TestedThreshold | None]:
    """Tests in their fixed order until the first whose bound is below the target: (those passed, that one)."""
    passed: list[TestedThreshold] = []
    for test in tests:
        if test.bound < target:
            return passed, test
        passed.append(test)
    return passed, None


def select_accepted(confidences: Sequence[float], correct: Sequence[bool], target: float,
                    confidence: float = DEFAULT_CONFIDENCE) -> Selection:
    """One tier alone: the lowest threshold whose accepted items are shown to be at least `target` accurate."""
    conf, ok = np.asarray(confidences, dtype=float), np.asarray(correct, dtype=bool)
    needed = items_needed(target, confidence)

    def tests() -> Iterator[TestedThreshold]:
        for threshold in sorted(set(conf.tolist()), reverse=True):
            keep = accepts(conf, threshold)
            accepted = int(keep.sum())
            if needed is None or accepted < needed:
                continue
            right = int(ok[keep].sum())
            yield TestedThreshold(threshold, accepted, accepted, right,
                                  accuracy_lower_bound(right, accepted, confidence))

    passed, stopped_at = fixed_sequence(tests(), target)
    return Selection("accepted", target, confidence, len(conf), passed, stopped_at)


def select_cascade(small_confidences: Sequence[float], small_correct: Sequence[bool], frontier_correct: Sequence[bool],
                   thresholds: Sequence[float], target: float, confidence: float = DEFAULT_CONFIDENCE) -> Selection:
    """With a frontier: among `thresholds` (the simulated cascade's), the lowest whose cascade accuracy over every
    item is shown to be at least `target`."""
    conf = np.asarray(small_confidences, dtype=float)
    s_ok, f_ok = np.asarray(small_correct, dtype=bool), np.asarray(frontier_correct, dtype=bool)

    def tests() -> Iterator[TestedThreshold]:
        for threshold in sorted(set(thresholds), reverse=True):
            keep = accepts(conf, threshold)
            right = int(np.where(keep, s_ok, f_ok).sum())
            yield TestedThreshold(threshold, int(keep.sum()), len(conf), right,
                                  accuracy_lower_bound(right, len(conf), confidence))

    passed, stopped_at = fixed_sequence(tests(), target)
    return Selection("cascade", target, confidence, len(conf), passed, stopped_at)

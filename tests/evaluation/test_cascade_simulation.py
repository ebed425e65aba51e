"""The simulated cascade (evaluation/cascade_simulation.py) and the isotonic calibration tuning fits, by hand."""

from __future__ import annotations

import numpy as np
import pytest

from shared.evaluation import cascade_simulation
from shared.evaluation.guarantees import select_cascade


def fixture_cascade():
    conf = [0.9, 0.8, 0.6, 0.3]
    small_ok = [True, True, False, False]
    frontier_ok = [True, True, True, False]
    return conf, small_ok, [0.0] * 4, frontier_ok, [1.0] * 4


def test_cascade_curve_by_hand():
    points = cascade_simulation.simulate_cascade(*fixture_cascade())
    got = [(p.threshold, p.accuracy, p.cost_per_item, p.escalation_rate) for p in points]
    assert got[0] == (0.0, 0.5, 0.0, 0.0)  # all small
    assert got[1] == (0.3, 0.5, 0.0, 0.0)
    assert got[2] == (0.6, 0.5, 0.25, 0.25)  # 0.3 escalates: frontier also wrong there
    assert got[3] == (0.8, 0.75, 0.5, 0.5)  # 0.6 escalates and the frontier gets it
    assert got[4] == (0.9, 0.75, 0.75, 0.75)
    assert got[5][1:] == (0.75, 1.0, 1.0)  # all frontier


def recommended(conf, s_ok, f_ok, target, confidence=0.95):
    points = cascade_simulation.simulate_cascade(conf, s_ok, [0.0] * len(conf), f_ok, [1.0] * len(conf))
    selection = select_cascade(conf, s_ok, f_ok, [p.threshold for p in points], target, confidence)
    arr = np.asarray(conf)
    return cascade_simulation.recommend_threshold(points, selection, lambda t: np.where(arr >= t, s_ok, f_ok), 1.0)


def test_recommended_threshold_is_the_lowest_whose_cascade_accuracy_bound_reaches_the_target():
    # 100 items, the frontier always right; the small tier wrong on its 5 least confident items only
    conf = np.linspace(0.01, 1.0, 100).tolist()
    s_ok, f_ok = [i >= 5 for i in range(100)], [True] * 100
    rec = recommended(conf, s_ok, f_ok, 0.95)
    # 100 of 100 right (bound 0.05 ** (1 / 100) = 0.9705) until the threshold accepts a wrong answer: 99 of 100 has
    # a bound of 0.953, 98 of 100 one of 0.938, so one wrong answer may be accepted and not two
    assert rec.threshold == pytest.approx(conf[4]) and rec.accuracy == 0.99 and rec.escalation_rate == 0.04
    assert rec.bound.scope == "cascade" and rec.bound.correct == 99 and rec.bound.items == 100
    assert rec.bound.accepted == 96 and rec.bound.accuracy_lower_bound == pytest.approx(0.95344, abs=1e-5)
    assert rec.saving_vs_frontier == pytest.approx(0.96)
    low, high = rec.accuracy_ci
    assert 0.95 <= low <= 0.99 <= high <= 1.0
    # the point estimate reaches 0.99 at the same threshold, but 99 of 100 does not show 0.99
    assert recommended(conf, s_ok, f_ok, 0.99) is None


def test_bootstrap_interval_narrows_with_more_items():
    conf = np.linspace(0, 1, 400)
    ok = (np.arange(400) % 5 != 0).tolist()  # 80% right
    rec = recommended(conf.tolist(), ok, ok, 0.75)
    low, high = rec.accuracy_ci
    assert 0.74 < low < 0.8 < high < 0.86


def test_isotonic_calibration_gives_tied_confidences_one_value_their_accuracy():
    from shared.evaluation.tuning import fit_isotonic

    tied = fit_isotonic([0.5] * 20, [True] * 18 + [False] * 2)
    assert tied.apply(0.5) == pytest.approx(0.9)  # not the top of a staircase of 20 points at x = 0.5
    mixed = fit_isotonic([0.1, 0.2, 0.2, 0.3, 0.9], [False, True, False, True, True])
    assert (mixed.x, mixed.y) == ([0.1, 0.2, 0.3, 0.9], [0.0, 0.5, 1.0, 1.0])
    assert all(later > earlier for earlier, later in zip(mixed.x, mixed.x[1:]))
    # fitted one by one, the two items at 0.2 were a step 0 -> 1 at one x, read as 1 there
    assert fit_isotonic([0.1, 0.2, 0.2, 0.9], [False, False, True, True]).apply(0.2) == pytest.approx(0.5)


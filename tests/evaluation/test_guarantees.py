"""Thresholds with a stated guarantee (evaluation/guarantees.py): the Clopper-Pearson bound against closed forms and
an exact binomial tail, and the fixed sequence that chooses the threshold."""

from __future__ import annotations

import math

import pytest

from shared.evaluation import guarantees


def binomial_tail_lower_bound(correct: int, items: int, confidence: float) -> float:
    """The same bound from its definition, without scipy: the accuracy p at which P(Binomial(items, p) >= correct)
    is 1 - confidence, by bisection on the exact tail."""
    def tail(p: float) -> float:
        return sum(math.comb(items, k) * p ** k * (1 - p) ** (items - k) for k in range(correct, items + 1))

    low, high = 0.0, 1.0
    for _ in range(100):
        middle = (low + high) / 2
        low, high = (middle, high) if tail(middle) < 1 - confidence else (low, middle)
    return (low + high) / 2


def test_bound_of_a_run_all_right_is_the_closed_form():
    assert guarantees.accuracy_lower_bound(80, 80, 0.95) == pytest.approx(0.05 ** (1 / 80), rel=1e-12)
    assert guarantees.accuracy_lower_bound(80, 80, 0.95) == pytest.approx(0.96325, abs=1e-5)
    assert guarantees.accuracy_lower_bound(80, 80, 0.9) == pytest.approx(0.1 ** (1 / 80), rel=1e-12)


@pytest.mark.parametrize(("correct", "items", "confidence"), [(95, 100, 0.95), (62, 80, 0.95), (30, 40, 0.9),
                                                             (1, 1, 0.95)])
def test_bound_equals_the_exact_binomial_tail_definition(correct, items, confidence):
    assert guarantees.accuracy_lower_bound(correct, items, confidence) == pytest.approx(
        binomial_tail_lower_bound(correct, items, confidence), abs=1e-9)


def test_bound_with_nothing_right_is_zero():
    assert guarantees.accuracy_lower_bound(0, 50, 0.95) == 0.0


def test_items_needed_is_the_fewest_all_right_items_whose_bound_reaches_the_target():
    for target, confidence in ((0.95, 0.95), (0.97, 0.95), (0.9, 0.99), (0.5, 0.5)):
        n = guarantees.items_needed(target, confidence)
        assert guarantees.accuracy_lower_bound(n, n, confidence) >= target
        assert guarantees.accuracy_lower_bound(n - 1, n - 1, confidence) < target
    assert guarantees.items_needed(0.95, 0.95) == 59
    assert guarantees.items_needed(1.0, 0.95) is None  # no finite run shows 100%


def test_one_tier_run_of_80_items_all_right_accepts_all_with_the_closed_form_bound():
    confidences = [0.5 + i / 200 for i in range(80)]
    selection = guarantees.select_accepted(confidences, [True] * 80, 0.95)
    assert selection.chosen.threshold == 0.5 and selection.stopped_at is None
    bound = selection.bound()
    assert (bound.scope, bound.items, bound.accepted, bound.correct, bound.target, bound.confidence) == (
        "accepted", 80, 80, 80, 0.95, 0.95)
    assert bound.accuracy_lower_bound == pytest.approx(0.05 ** (1 / 80))
    assert bound.statement == "accepted items >= 96.3% accurate with 95% confidence on 80 items (80 accepted)"


def test_one_tier_sequence_starts_at_the_fewest_items_that_could_pass():
    # the 59 most confident are right (59 is the fewest that can show 95%): the sequence starts there, not at the
    # single most confident item, whose bound (0.05) would stop it at once
    confidences = [1 - i / 100 for i in range(70)]
    selection = guarantees.select_accepted(confidences, [True] * 59 + [False] * 11, 0.95)
    assert selection.passed[0].accepted == 59 and selection.chosen.accepted == 59
    assert selection.chosen.threshold == pytest.approx(confidences[58])
    assert selection.stopped_at.accepted == 60 and selection.stopped_at.correct == 59


def test_fixed_sequence_stops_at_the_first_failing_threshold_though_lower_ones_would_pass():
    # 100 right answers at confidences 0.99..0.90, 10 wrong ones all at 0.85, then 300 right ones below
    confidences = [0.99 - i * 0.0009 for i in range(100)] + [0.85] * 10 + [0.8 - i * 0.001 for i in range(300)]
    correct = [True] * 100 + [False] * 10 + [True] * 300
    selection = guarantees.select_accepted(confidences, correct, 0.9)
    assert selection.chosen.accepted == 100 and selection.chosen.threshold == pytest.approx(confidences[99])
    assert selection.stopped_at.threshold == 0.85 and selection.stopped_at.correct == 100
    assert selection.stopped_at.accepted == 110 and selection.stopped_at.bound < 0.9
    # tested alone, the lowest threshold (400 of 410 right) would pass: choosing it after looking is what the
    # fixed sequence forbids
    assert guarantees.accuracy_lower_bound(400, 410, 0.95) >= 0.9


def test_cascade_sequence_starts_where_everything_escalates_and_stops_at_the_first_failure():
    confidences = [0.9, 0.8, 0.7, 0.6] * 25
    small_ok = [True, True, False, True] * 25  # wrong at 0.7, right below it again
    thresholds = [0.0, 0.6, 0.7, 0.8, 0.9, 0.91]
    selection = guarantees.select_cascade(confidences, small_ok, [True] * 100, thresholds, 0.9)
    assert [t.threshold for t in selection.passed] == [0.91, 0.9, 0.8]  # 100 of 100 right
    assert (selection.stopped_at.threshold, selection.stopped_at.correct) == (0.7, 75)
    assert selection.bound().statement == ("cascade answers >= 97.0% accurate with 95% confidence on 100 items "
                                           "(50 accepted, 50 escalated)")


def test_no_threshold_says_what_the_run_would_need():
    selection = guarantees.select_accepted([0.9] * 40, [True] * 40, 0.95)
    assert selection.chosen is None and selection.stopped_at is None
    assert selection.shortfall() == (
        "no threshold's accepted items reach 95.0% with 95% confidence: the run has 40 items; 95.0% needs at least "
        "59 accepted items, all right (more if any is wrong): label more items, or lower --target or --confidence")
    with pytest.raises(ValueError, match="needs at least 59"):
        selection.bound()
    perfect = guarantees.select_accepted([0.9] * 40, [True] * 40, 1.0)
    assert perfect.chosen is None and "no finite run shows 100%" in perfect.shortfall()


def test_cascade_with_no_threshold_names_the_first_tested_and_what_the_target_needs():
    # 40 items, the frontier right on 38: even escalating everything shows only 0.85 of the 0.9 asked
    selection = guarantees.select_cascade([0.5] * 40, [True] * 40, [True] * 38 + [False] * 2, [0.5, 0.51], 0.9)
    assert selection.chosen is None and selection.stopped_at.threshold == 0.51
    assert selection.shortfall() == (
        "no threshold's cascade answers reach 90.0% with 95% confidence: the first threshold tested (0.510) has 38 "
        "of 40 right, bound 85.1%; 90.0% needs at least 29 items, all right (more if any is wrong): label more "
        "items, or lower --target or --confidence")

"""Evaluation metrics against values computed by hand on small fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from shared.foundation import metrics
from shared.foundation.answers import is_correct


def test_accuracy_and_macro_f1():
    gold = ["a", "a", "b", "c"]
    pred = ["a", "b", "b", None]
    assert metrics.accuracy(gold, pred) == 0.5
    # a: tp1 fn1 -> 2/3; b: tp1 fp1 -> 2/3; c: tp0 -> 0
    assert metrics.macro_f1(gold, pred) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_none_label_precision_recall():
    gold = ["oos", "oos", "x", "y"]
    pred = ["oos", "x", "oos", "y"]
    assert metrics.none_label_precision_recall(gold, pred, "oos") == (0.5, 0.5)


def test_inscope_accuracy_counts_only_items_not_gold_none_and_an_in_scope_item_answered_none_is_wrong():
    gold = ["oos", "oos", "x", "y", "z"]
    pred = ["x", "oos", "oos", "y", None]
    assert metrics.inscope_accuracy(gold, pred, "oos") == pytest.approx(1 / 3)


def test_confusions():
    assert metrics.top_confusions(["a", "a", "a", "b"], ["b", "b", "a", "c"]) == [("a", "b", 2), ("b", "c", 1)]


def test_field_exact_match_and_f1():
    expected = [{"company": "A", "total": "1.00"}, {"company": "B", "total": "2.00"}]
    answers = [{"company": "a", "total": "1"}, {"company": "", "total": "3.00"}]
    assert metrics.field_exact_match(answers, expected) == {"company": 0.5, "total": 0.5}
    # predicted non-empty: 3, relevant: 4, correct: 2 -> P 2/3, R 1/2, F1 4/7
    assert metrics.field_f1(answers, expected) == pytest.approx(4 / 7)
    assert is_correct("extraction", answers[0], expected[0]) is True
    assert is_correct("extraction", None, expected[0]) is False


def test_percentiles():
    values = list(range(1, 101))
    got = metrics.percentiles(values)
    assert got == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05), "p99": pytest.approx(99.01)}


def test_ece_by_hand():
    conf = [0.95, 0.95, 0.15, 0.15, 0.55]
    right = [True, False, False, False, True]
    # bins: [0.9,1.0]: conf .95 acc .5 (n2); [0.1,0.2): .15 vs 0 (n2); [0.5,0.6): .55 vs 1 (n1)
    expected = 2 / 5 * 0.45 + 2 / 5 * 0.15 + 1 / 5 * 0.45
    assert metrics.expected_calibration_error(conf, right) == pytest.approx(expected)
    bins = metrics.reliability(conf, right)
    assert [b.count for b in bins] == [0, 2, 0, 0, 0, 1, 0, 0, 0, 2]


def test_co_failure():
    assert metrics.co_failure([True, False, True, False], [True, True, False, False]) == {
        "both_right": 1, "only_small_wrong": 1, "only_frontier_wrong": 1, "both_wrong": 1}


def test_wilson_interval_matches_the_published_values_and_stays_inside_zero_one():
    # Newcombe (1998), Table I: 81 of 263 -> 0.2553 to 0.3662; 0 of 10 -> 0 to 0.2775.
    low, high = metrics.wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)
    low, high = metrics.wilson_interval(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=5e-4)
    assert metrics.wilson_interval(10, 10)[1] == 1.0 and metrics.wilson_interval(0, 0) == (0.0, 1.0)


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    reference = metrics.confidence_histogram(rng.beta(8, 2, 5000))
    same = metrics.confidence_histogram(rng.beta(8, 2, 5000))
    shifted = metrics.confidence_histogram(rng.beta(3, 3, 5000))
    assert sum(reference) == pytest.approx(1.0)
    assert metrics.population_stability_index(reference, same) < 0.02
    assert metrics.population_stability_index(reference, shifted) > 0.5

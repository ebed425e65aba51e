"""Temperature scaling and the out-of-scope threshold rule, on data whose right answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.calibration import (choose_recall_threshold, choose_reject_threshold, fit_temperature,
                                        negative_log_likelihood, softmax)
from shared.foundation.metrics import expected_calibration_error, macro_f1, selective_accuracy


def test_fit_temperature_recovers_the_temperature_that_generated_the_labels():
    rng = np.random.default_rng(0)
    logits = rng.normal(0.0, 3.0, size=(20_000, 5))
    true_t = 2.0
    probabilities = softmax(logits, true_t)
    targets = np.array([rng.choice(5, p=p) for p in probabilities])
    fitted = fit_temperature(logits, targets)
    assert fitted == pytest.approx(true_t, rel=0.05)
    assert negative_log_likelihood(logits, targets, fitted) < negative_log_likelihood(logits, targets, 1.0)


def test_temperature_never_changes_the_predicted_class():
    logits = np.random.default_rng(1).normal(size=(100, 7))
    assert (softmax(logits, 0.3).argmax(1) == softmax(logits, 3.0).argmax(1)).all()


def test_threshold_rejects_at_most_the_budget_of_in_scope_rows():
    best = np.linspace(0.05, 1.0, 200)
    threshold = choose_reject_threshold(best, np.zeros(200, bool), max_reject=0.05)
    assert np.sum(best < threshold) == 10  # exactly 5% of 200, the largest threshold allowed
    assert np.sum(best < np.nextafter(threshold, 2.0)) > 10  # any higher threshold would reject more


def test_threshold_budget_counts_rows_already_answered_none_by_the_class():
    best = np.linspace(0.05, 1.0, 200)
    already = np.zeros(200, bool)
    already[-4:] = True  # four in-scope rows the none class already took
    threshold = choose_reject_threshold(best, already, max_reject=0.05)
    assert np.sum((best < threshold) & ~already) == 6


def test_threshold_is_zero_when_the_class_already_spent_the_budget():
    already = np.zeros(100, bool)
    already[:5] = True
    assert choose_reject_threshold(np.full(100, 0.9), already, max_reject=0.05) == 0.0


def test_ties_at_the_threshold_never_overspend_the_budget():
    best = np.array([0.2] * 5 + [0.5] * 10 + [0.9] * 85)
    threshold = choose_reject_threshold(best, np.zeros(100, bool), max_reject=0.10)
    assert np.sum(best < threshold) <= 10


def test_recall_threshold_is_the_lowest_that_catches_the_required_share_of_out_of_scope_rows():
    best = np.linspace(0.05, 1.0, 100)  # the best in-scope probability of 100 held-out out-of-scope rows
    threshold = choose_recall_threshold(best, np.zeros(100, bool), min_recall=0.9)
    assert np.sum(best < threshold) == 90
    assert np.sum(best < np.nextafter(threshold, 0.0)) < 90  # any lower threshold would catch too few


def test_recall_threshold_counts_rows_the_none_class_caught_already():
    best = np.linspace(0.05, 1.0, 100)
    caught = np.zeros(100, bool)
    caught[-30:] = True  # the none class caught the 30 surest-looking ones
    threshold = choose_recall_threshold(best, caught, min_recall=0.9)
    assert np.sum((best < threshold) & ~caught) == 60
    assert choose_recall_threshold(best, np.ones(100, bool), min_recall=0.9) == 0.0  # the class alone is enough


def test_recall_threshold_needs_out_of_scope_examples_and_a_recall_in_range():
    with pytest.raises(ValueError, match="held-out examples"):
        choose_recall_threshold(np.array([]), np.array([], bool), min_recall=0.9)
    with pytest.raises(ValueError, match="min_recall"):
        choose_recall_threshold(np.array([0.5]), np.zeros(1, bool), min_recall=0.0)


def test_ece_is_zero_for_perfectly_calibrated_bins_and_large_for_overconfidence():
    confidence = np.array([0.8] * 10)
    assert expected_calibration_error(confidence, [True] * 8 + [False] * 2) == pytest.approx(0.0)
    assert expected_calibration_error([0.99] * 10, [False] * 5 + [True] * 5) == pytest.approx(0.49)


def test_selective_accuracy_keeps_the_most_confident_share():
    confidence = [0.9, 0.8, 0.7, 0.6, 0.1]
    correct = [True, True, True, True, False]
    assert selective_accuracy(confidence, correct, 0.8) == 1.0
    assert selective_accuracy(confidence, correct, 1.0) == 0.8


def test_macro_f1_averages_over_gold_labels():
    assert macro_f1(["a", "a", "b", "b"], ["a", "a", "b", "b"]) == 1.0
    assert macro_f1(["a", "a", "b", "b"], ["a", "a", "a", "a"]) == pytest.approx((2 / 3 + 0.0) / 2)

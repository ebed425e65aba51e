"""The logistic head for real (scikit-learn's objective, fitted here), trained on a Banking77 subset and judged
on its dev rows; the search over C and the progress of fitting."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.calibration import softmax
from shared.learning.classifier import (EmbeddingClassifier, FitStep, ZeroShotClassifier, _c_search, _Features,
                                        fit_logistic)
from shared.foundation.metrics import expected_calibration_error
from tests.learning.conftest import dataset, per_label

SUPPORT_DESCRIPTIONS = {
    "billing": "invoices, charges, refunds, prices, payment methods, subscriptions and plans",
    "technical": "errors, bugs, crashes, outages, performance, integrations and how the product works",
    "account": "sign-in, passwords, two-factor, profile, users, permissions, closing an account",
    "other": "anything else, such as feedback, sales questions or partnership requests",
}


@pytest.fixture(scope="module")
def banking(embedder):
    """20 Banking77 intents: 30 train rows each (600), all their dev rows (390)."""
    train, dev = dataset("banking77", "train"), dataset("banking77", "dev")
    labels = set(sorted({r["label"] for r in train})[:20])
    train_rows, dev_rows = per_label(train, labels, 30), per_label(dev, labels)
    return (embedder.embed([r["text"] for r in train_rows]), [r["label"] for r in train_rows],
            embedder.embed([r["text"] for r in dev_rows]), np.array([r["label"] for r in dev_rows], dtype=object))


@pytest.fixture(scope="module")
def banking_head(banking):
    X_train, y_train, _, _ = banking
    return EmbeddingClassifier(Cs=(1.0, 10.0, 30.0), cv_folds=3).fit(X_train, y_train)


def test_banking77_subset_reaches_90_percent_on_dev(banking, banking_head):
    _, _, X_dev, y_dev = banking
    assert np.mean(np.array(banking_head.predict(X_dev), dtype=object) == y_dev) >= 0.90


def test_temperature_scaled_ece_on_dev_is_lower_than_the_raw_one(banking, banking_head):
    _, _, X_dev, y_dev = banking
    raw = softmax(banking_head.decision_function(X_dev))
    scaled = banking_head.predict_proba(X_dev)
    right = banking_head.classes_[scaled.argmax(1)] == y_dev
    raw_ece = expected_calibration_error(raw.max(1), right)
    scaled_ece = expected_calibration_error(scaled.max(1), right)
    assert banking_head.temperature_ < 1.0  # few examples per class: raw probabilities are under-confident
    assert scaled_ece < raw_ece / 2 and scaled_ece < 0.05


def test_c_is_chosen_from_the_grid_by_cross_validated_accuracy(banking_head):
    by_c = banking_head.cv_metrics_.cv_accuracy_by_c
    assert set(by_c) == {"1", "10", "30"}
    assert by_c[f"{banking_head.C_:g}"] == max(by_c.values())
    assert by_c["1"] < by_c[f"{banking_head.C_:g}"]  # heavy regularisation costs accuracy on normalised embeddings


def test_cross_validated_metrics_are_recorded_and_consistent(banking_head):
    metrics = banking_head.cv_metrics_
    assert metrics.folds == 3 and metrics.rows == 600
    assert metrics.accuracy == pytest.approx(metrics.cv_accuracy_by_c[f"{banking_head.C_:g}"])
    assert metrics.ece < metrics.ece_before_temperature
    assert metrics.selective_accuracy_80 >= metrics.accuracy
    assert 0.0 < metrics.macro_f1 <= 1.0


def test_confidence_is_the_scaled_probability_of_the_answered_label(banking, banking_head):
    _, _, X_dev, _ = banking
    predictions = banking_head.predict_with_confidence(X_dev)
    probabilities = banking_head.predict_proba(X_dev)
    assert predictions.labels == banking_head.classes_[probabilities.argmax(1)].tolist()
    assert np.allclose(predictions.confidence, probabilities.max(1))


def test_two_labels_work_and_probabilities_match_scikit_learn_at_temperature_one(support_data):
    from sklearn.linear_model import LogisticRegression

    X_train, y_train, X_dev, _ = support_data
    keep = [i for i, y in enumerate(y_train) if y in ("billing", "account")]
    X, y = X_train[keep], [y_train[i] for i in keep]
    head = EmbeddingClassifier(Cs=(3.0,), cv_folds=3).fit(X, y)
    reference = LogisticRegression(C=3.0, max_iter=2000).fit(X, y)
    assert head.coef_.shape == (2, X.shape[1])
    assert np.allclose(softmax(head.decision_function(X_dev)), reference.predict_proba(X_dev), atol=1e-6)


def test_fit_logistic_reaches_scikit_learns_logistic_regression_on_twenty_intents(banking):
    from sklearn.linear_model import LogisticRegression

    X_train, y_train, X_dev, _ = banking
    targets = np.searchsorted(sorted(set(y_train)), y_train)
    coef, intercept = fit_logistic(_Features(X_train.astype(np.float32)), targets, 20, 10.0, 2000)
    reference = LogisticRegression(C=10.0, max_iter=2000).fit(X_train, targets)
    ours, theirs = softmax(X_dev @ coef.T + intercept), reference.predict_proba(X_dev)
    assert np.mean(ours.argmax(1) == theirs.argmax(1)) >= 0.99
    assert np.abs(ours - theirs).max() < 0.02  # both stop at the same gradient tolerance, by slightly other paths


def test_progress_hears_each_vocabulary_fold_and_c_then_temperature_threshold_and_final_fit(support_data):
    X_train, y_train, _, _ = support_data
    texts = [f"ticket {i} about {label}" for i, label in enumerate(y_train)]
    steps: list[FitStep] = []
    head = EmbeddingClassifier(Cs=(1.0, 10.0, 100.0), cv_folds=3, none_label="other", word_ngrams=(1, 2)).fit(
        X_train, y_train, texts=texts, progress=steps.append)
    fits = {(step.view, step.C, step.fold) for step in steps if step.phase == "cross-validation"}
    assert fits == {(view, c, fold) for view in (None, (1, 2)) for c in (1.0, 10.0, 100.0) for fold in (1, 2, 3)}
    assert [step.fold for step in steps if step.phase == "vocabulary"] == [1, 2, 3]
    finished = [step for step in steps if step.iteration is None]
    assert [step.phase for step in finished[-3:]] == ["temperature", "threshold", "final fit"]
    assert [step.done for step in finished] == list(range(1, len(finished) + 1))
    assert finished[-1].done == steps[-1].total
    assert finished[-1].C == head.C_


def test_with_plentiful_rows_c_is_searched_on_three_folds_and_the_chosen_c_refitted_on_all_five(banking):
    X_train, y_train, _, _ = banking
    steps: list[FitStep] = []
    head = EmbeddingClassifier(Cs=(1.0, 10.0, 30.0), few_folds_above=500).fit(X_train, y_train, progress=steps.append)
    fits = [(step.C, step.fold, step.folds) for step in steps if step.phase == "cross-validation"]
    assert sorted(fits[:9]) == [(c, fold, 3) for c in (1.0, 10.0, 30.0) for fold in (1, 2, 3)]
    assert sorted(fits[9:]) == [(head.C_, fold, 5) for fold in range(1, 6)]
    assert head.cv_metrics_.folds == 5 and set(head.cv_metrics_.cv_accuracy_by_c) == {"1", "10", "30"}
    # Temperature and metrics come from the five-fold logits: the chosen C's accuracy there, not the search's.
    assert head.cv_metrics_.accuracy == pytest.approx(np.mean(head.oof_logits_.argmax(1) == np.searchsorted(
        head.classes_, y_train)))


def test_progress_never_passes_its_total_when_the_chosen_n_gram_view_is_refitted_on_all_folds():
    rng = np.random.default_rng(0)
    labels = [("refund", "login", "crash")[i % 3] for i in range(120)]
    texts = [f"{label} ticket {i % 7}" for i, label in enumerate(labels)]  # the words tell the label apart
    X = rng.normal(size=(120, 8))  # the embedding does not
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    steps: list[FitStep] = []
    head = EmbeddingClassifier(Cs=(1.0, 10.0), word_ngrams=(1, 2), few_folds_above=50).fit(
        X, labels, texts=texts, progress=steps.append)
    assert head.ngrams_ is not None  # the n-gram view was chosen, so its vocabulary is refitted on all five folds
    assert [step.folds for step in steps if step.phase == "vocabulary"] == [3, 3, 3, 5, 5, 5, 5, 5]
    assert all(step.done <= step.total for step in steps)
    assert steps[-1].done == steps[-1].total


def test_the_search_over_c_stops_where_accuracy_has_peaked():
    Cs = (1.0, 3.0, 10.0, 30.0, 100.0)
    accuracy = {1.0: 0.90, 3.0: 0.92, 10.0: 0.95, 30.0: 0.94, 100.0: 0.99}
    batches = list(_c_search(Cs, [None], lambda key: accuracy[key[1]]))
    assert batches == [[(None, 3.0), (None, 10.0), (None, 30.0)]]  # 10 beats both neighbours: 1 and 100 unfitted
    rising = list(_c_search(Cs, ["a", "b"], lambda key: key[1] if key[0] == "a" else -key[1]))
    assert rising[1:] == [[("a", 100.0), ("b", 1.0)]]  # each view's best at an end of what was tried: one further


def test_a_label_with_a_single_example_is_refused_naming_it():
    X = np.eye(5, dtype=np.float32)
    with pytest.raises(ValueError, match="at least 2 examples for cross-validation; one only: 'c'$"):
        EmbeddingClassifier().fit(X, ["a", "a", "b", "b", "c"])


def test_zero_shot_ranks_support_tickets_better_than_chance_but_never_sounds_sure(embedder, support_data):
    _, _, X_dev, y_dev = support_data
    head = ZeroShotClassifier.from_texts(embedder, {k: [f"{k}: {v}"] for k, v in SUPPORT_DESCRIPTIONS.items()})
    predictions = head.predict_with_confidence(X_dev)
    accuracy = np.mean(np.array(predictions.labels) == np.array(y_dev))
    assert accuracy >= 0.6  # chance is 0.25
    assert predictions.confidence.max() <= 0.5 + 0.5 / 4 + 1e-9
    assert np.allclose(head.predict_proba(X_dev).sum(1), 1.0)


def test_the_same_examples_in_another_order_give_the_same_head_though_their_last_bits_differ(banking):
    X_train, y_train, X_dev, _ = banking
    texts = [f"example {i}" for i in range(len(X_train))]  # the folds follow the texts
    order = np.random.default_rng(1).permutation(len(X_train))
    # as an embedder gives a text in another batch: equal to float32's last bits, not bit for bit
    nudged = (X_train * np.float32(1 + 1e-7)).astype(np.float32)
    assert not np.array_equal(nudged, X_train)
    settings = dict(Cs=(1.0, 10.0), cv_folds=3, novelty_max_rows=1000, calibration_repeats=2)
    head, shuffled = EmbeddingClassifier(**settings), EmbeddingClassifier(**settings)
    as_given = head.fit(X_train, y_train, texts=texts, progress=None).predict_with_confidence(X_dev)
    reordered = shuffled.fit(nudged[order], [y_train[i] for i in order], texts=[texts[i] for i in order],
                             progress=None).predict_with_confidence(X_dev)
    assert reordered.labels == as_given.labels
    assert np.allclose(reordered.confidence, as_given.confidence, atol=1e-4)
    assert shuffled.temperature_ == pytest.approx(head.temperature_, abs=1e-4)


def test_texts_that_do_not_match_the_embeddings_are_refused():
    with pytest.raises(ValueError, match="2 texts for 3 embeddings"):
        EmbeddingClassifier().fit(np.eye(3), ["a", "b", "a"], texts=["x", "y"])


def test_a_novelty_head_cross_validates_its_chosen_c_on_each_extra_fold_assignment_and_a_larger_head_on_one(banking):
    X_train, y_train, _, _ = banking
    steps: list[FitStep] = []
    head = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, novelty_max_rows=1000, calibration_repeats=4).fit(
        X_train, y_train, progress=steps.append)
    cross_validation = [step for step in steps if step.phase == "cross-validation"]
    assert len(cross_validation) == 3 + 3 * 3  # the search's assignment, then three more at the chosen C
    assert head.novelty_ is not None and head.cv_metrics_.rows == len(X_train)  # metrics: one pass, as before
    steps.clear()
    EmbeddingClassifier(Cs=(10.0,), cv_folds=3, novelty_max_rows=100, calibration_repeats=4).fit(
        X_train, y_train, progress=steps.append)
    assert sum(step.phase == "cross-validation" for step in steps) == 3  # above novelty_max_rows: one assignment
    with pytest.raises(ValueError, match="calibration_repeats"):
        EmbeddingClassifier(calibration_repeats=0)

"""The logistic head for real (scikit-learn), trained on a Banking77 subset and judged on its dev rows."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.calibration import softmax
from shared.learning.classifier import EmbeddingClassifier, ZeroShotClassifier
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

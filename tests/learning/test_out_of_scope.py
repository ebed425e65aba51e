"""Out-of-scope on a CLINC150 subset: 15 intents plus the `oos` queries, the none class and/or the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.classifier import EmbeddingClassifier
from tests.learning.conftest import dataset, per_label


@pytest.fixture(scope="module")
def clinc(embedder):
    train, dev = dataset("clinc150", "train"), dataset("clinc150", "dev")
    intents = set(sorted({r["label"] for r in train} - {"oos"})[::10])
    train_rows = per_label(train, intents, 40) + [r for r in train if r["label"] == "oos"]
    dev_rows = per_label(dev, intents) + [r for r in dev if r["label"] == "oos"]
    return (embedder.embed([r["text"] for r in train_rows]), np.array([r["label"] for r in train_rows], dtype=object),
            embedder.embed([r["text"] for r in dev_rows]), np.array([r["label"] for r in dev_rows], dtype=object))


@pytest.fixture(scope="module")
def threshold_only_head(clinc):
    """Trained without a single oos example: out-of-scope can only come from the threshold."""
    X_train, y_train, _, _ = clinc
    in_scope_rows = y_train != "oos"
    return EmbeddingClassifier(Cs=(10.0,), cv_folds=3, none_label="oos").fit(X_train[in_scope_rows],
                                                                             y_train[in_scope_rows])


def score(head: EmbeddingClassifier, X, gold) -> tuple[float, float]:
    right = np.array(head.predict(X), dtype=object) == gold
    in_scope = gold != "oos"
    return float(right[in_scope].mean()), float(right[~in_scope].mean())


def test_with_oos_examples_the_class_and_a_threshold_beat_the_class_alone(clinc):
    X_train, y_train, X_dev, y_dev = clinc
    head = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, none_label="oos").fit(X_train, y_train)
    assert "oos" in head.classes_ and head.oos_threshold_ > 0
    in_scope, recall = score(head, X_dev, y_dev)
    threshold, head.oos_threshold_ = head.oos_threshold_, None
    in_scope_class_only, recall_class_only = score(head, X_dev, y_dev)
    head.oos_threshold_ = threshold
    assert recall > recall_class_only
    assert recall >= 0.9 and in_scope >= 0.85
    assert in_scope >= in_scope_class_only - 0.10  # the rule's 5% in-scope budget, plus dev noise


def test_without_oos_examples_the_threshold_alone_finds_out_of_scope(clinc, threshold_only_head):
    _, _, X_dev, y_dev = clinc
    head = threshold_only_head
    assert "oos" not in head.classes_ and head.oos_threshold_ > 0
    in_scope, recall = score(head, X_dev, y_dev)
    assert recall >= 0.8 and in_scope >= 0.85


def test_a_rejected_item_is_answered_none_with_confidence_one_minus_its_best_probability(clinc, threshold_only_head):
    _, _, X_dev, _ = clinc
    head = threshold_only_head
    predictions = head.predict_with_confidence(X_dev)
    best = head.predict_proba(X_dev).max(1)
    rejected = np.array(predictions.labels) == "oos"
    assert rejected.any() and (best[rejected] < head.oos_threshold_).all()
    assert np.allclose(predictions.confidence[rejected], 1.0 - best[rejected])
    assert np.allclose(predictions.confidence[~rejected], best[~rejected])


def test_a_task_without_a_none_label_never_answers_none(clinc):
    X_train, y_train, X_dev, _ = clinc
    in_scope_rows = y_train != "oos"
    head = EmbeddingClassifier(Cs=(10.0,), cv_folds=3).fit(X_train[in_scope_rows], y_train[in_scope_rows])
    assert head.oos_threshold_ is None and "oos" not in head.predict(X_dev)

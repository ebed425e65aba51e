"""A head for a task with a catch-all label (support_ticket's `other`), as `smallfirst train` fits it: the catch-all
gets the none label's threshold, confidence drops off-distribution, both are saved with the head, and a head saved
before either answers as it did."""

from __future__ import annotations

import numpy as np
import pytest

from shared.learning.artifact import HeadExpectation, load_head, save_head
from shared.learning.classifier import EmbeddingClassifier
from shared.learning.embedders.base import l2_normalise
from shared.learning.stores import LocalFolderStore
from shared.learning.training import train_head
from shared.learning.training_data import LabelledExample, TrainingSet
from tests.learning.conftest import REPO

LABELS = ["account", "billing", "other", "technical"]
SHIPPED_BEFORE = "20261123T204049.592929Z"  # the support_ticket head shipped before catch-all and novelty


@pytest.fixture(scope="module")
def training(support_tickets) -> TrainingSet:
    return TrainingSet(LabelledExample(text=r["text"], label=r["label"], provenance="gold")
                       for r in support_tickets["train"])


@pytest.fixture(scope="module")
def head(embedder, training) -> EmbeddingClassifier:
    return train_head(embedder, training, labels=LABELS, catch_all="other", none_recall_target=0.97,
                      fit_progress=None)


def test_train_head_gives_the_catch_all_a_threshold_that_meets_its_recall_target_out_of_fold(head, training):
    others = sum(label == "other" for label in training.labels)
    # each example counted once, though the threshold is fitted on five fold assignments' out-of-fold rows
    assert head.threshold_rule_ == f"none recall >= 0.97 on {others} held-out none rows in 5 fold assignments"
    assert head.oos_threshold_ > 0
    assert head.cv_metrics_.oos_recall >= 0.97


def test_an_item_no_in_scope_label_is_sure_of_is_answered_the_catch_all_not_the_nearest_label():
    rng = np.random.default_rng(0)
    centres = np.eye(6)
    X = l2_normalise(np.vstack([centres[0] + 0.1 * rng.standard_normal((30, 6)),
                                centres[1] + 0.1 * rng.standard_normal((30, 6)),
                                rng.standard_normal((30, 6))]))
    y = ["a"] * 30 + ["b"] * 30 + ["other"] * 30
    fitted = EmbeddingClassifier(catch_all="other", min_none_recall=1.0, max_inscope_reject=0.0).fit(
        X, y, progress=None)
    threshold = fitted.oos_threshold_
    assert 0.5 < threshold < 1.0  # in scope, a label less sure than this is not forced
    unsure, sure = min(0.5, threshold - 0.01), max(0.99, threshold + 0.005)
    decided = fitted.head_.decide(np.array([[unsure, 1 - unsure - 0.01, 0.01], [sure, 0.0, 1 - sure]]))
    assert decided.labels == ["other", "a"]
    np.testing.assert_allclose(decided.confidence, [1 - unsure, sure])


def test_a_saved_catch_all_head_with_novelty_loads_and_answers_exactly_as_fitted(tmp_path, head, embedder,
                                                                                   training, support_tickets):
    store = LocalFolderStore(tmp_path / "models")
    artifact = save_head(store, task="support_ticket", classifier=head, embedder=embedder,
                         training_data=training.summary())
    assert (artifact.catch_all, artifact.none_label, artifact.labels) == ("other", None, LABELS)
    assert artifact.novelty_neighbours == head.novelty_.neighbours
    loaded = load_head(store, "support_ticket", artifact.version, HeadExpectation.of(embedder, LABELS)).classifier
    texts = [r["text"] for r in support_tickets["dev"]]
    X = embedder.embed(texts)
    before, after = head.predict_with_confidence(X, texts), loaded.predict_with_confidence(X, texts)
    assert after.labels == before.labels
    np.testing.assert_allclose(after.confidence, before.confidence, rtol=1e-6)
    probability = head.predict_proba(X, texts).max(axis=1)
    assert not np.allclose(after.confidence, probability)  # the calibrated confidence, not the probability


def test_the_head_shipped_before_answers_with_its_probability_as_it_did(embedder, support_tickets):
    loaded = load_head(LocalFolderStore(REPO / "models"), "support_ticket", SHIPPED_BEFORE,
                       HeadExpectation.of(embedder, LABELS))
    assert loaded.artifact.novelty_neighbours is None and loaded.artifact.catch_all is None
    texts = [r["text"] for r in support_tickets["dev"]]
    X = embedder.embed(texts)
    answered = loaded.classifier.predict_with_confidence(X, texts)
    np.testing.assert_allclose(answered.confidence, loaded.classifier.predict_proba(X, texts).max(axis=1))


def test_a_head_over_the_novelty_row_limit_keeps_the_probability_as_its_confidence(support_data):
    X_train, y_train, X_dev, _ = support_data
    fitted = EmbeddingClassifier(novelty_max_rows=len(X_train) - 1).fit(X_train, y_train, progress=None)
    assert fitted.novelty_ is None
    np.testing.assert_allclose(fitted.predict_with_confidence(X_dev).confidence,
                               fitted.predict_proba(X_dev).max(axis=1))


def test_train_head_refuses_a_classifier_made_for_another_catch_all(embedder, training):
    with pytest.raises(ValueError, match="catch-all None is not the task's 'other'"):
        train_head(embedder, training, labels=LABELS, catch_all="other", classifier=EmbeddingClassifier())


def test_a_head_has_a_none_label_or_a_catch_all_not_both():
    with pytest.raises(ValueError, match="not both"):
        EmbeddingClassifier(none_label="oos", catch_all="other")

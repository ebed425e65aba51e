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


def test_a_none_recall_target_chooses_the_lowest_threshold_that_meets_it_on_held_out_oos_rows(clinc):
    X_train, y_train, X_dev, y_dev = clinc
    heads = {target: EmbeddingClassifier(Cs=(10.0,), cv_folds=3, none_label="oos", min_none_recall=target)
             .fit(X_train, y_train) for target in (0.8, 0.95)}
    for target, head in heads.items():
        assert head.cv_metrics_.oos_recall >= target  # met on the held-out folds it was chosen on
        assert head.threshold_rule_ == f"none recall >= {target:g} on 100 held-out none rows"
    assert heads[0.8].oos_threshold_ < heads[0.95].oos_threshold_
    (in_scope_low, recall_low), (in_scope_high, recall_high) = (score(heads[t], X_dev, y_dev) for t in (0.8, 0.95))
    assert recall_high >= recall_low and in_scope_high <= in_scope_low  # the trade-off moves the way it was asked


def test_with_too_few_oos_examples_a_recall_target_falls_back_to_the_in_scope_reject_budget(clinc):
    X_train, y_train, _, _ = clinc
    keep = (y_train != "oos") | (np.cumsum(y_train == "oos") <= 10)  # only 10 oos examples
    with_target = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, none_label="oos", min_none_recall=0.9)
    with_target.fit(X_train[keep], y_train[keep])
    budget_only = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, none_label="oos").fit(X_train[keep], y_train[keep])
    assert with_target.oos_threshold_ == budget_only.oos_threshold_
    assert with_target.threshold_rule_ == ("in-scope rows answered none <= 0.05 "
                                           "(a none recall needs 20 held-out none rows, had 10)")


def test_the_recall_target_and_its_rule_survive_the_artifact_round_trip(clinc, embedder, tmp_path):
    from shared.learning.artifact import HeadExpectation, load_head, save_head
    from shared.learning.stores import LocalFolderStore
    from shared.learning.training_data import LabelledExample, TrainingSet

    X_train, y_train, X_dev, _ = clinc
    head = EmbeddingClassifier(Cs=(10.0,), cv_folds=3, none_label="oos", min_none_recall=0.9).fit(X_train, y_train)
    store = LocalFolderStore(tmp_path)
    summary = TrainingSet(LabelledExample(text=str(i), label=label, provenance="gold")
                          for i, label in enumerate(y_train)).summary()
    artifact = save_head(store, task="clinc", classifier=head, embedder=embedder, training_data=summary)
    labels = sorted(set(y_train) - {"oos"})
    loaded = load_head(store, "clinc", artifact.version, HeadExpectation.of(embedder, labels, "oos")).classifier
    assert (artifact.min_none_recall, artifact.oos_threshold_rule) == (0.9, head.threshold_rule_)
    assert (loaded.min_none_recall, loaded.threshold_rule_) == (0.9, head.threshold_rule_)
    assert loaded.predict(X_dev) == head.predict(X_dev)

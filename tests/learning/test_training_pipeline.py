"""train_head: the labels are checked against the task before anything is embedded or fitted."""

from __future__ import annotations

import pytest

from shared.learning.classifier import EmbeddingClassifier
from shared.learning.training import train_head
from shared.learning.training_data import LabelledExample, TrainingSet
from tests.learning.conftest import SUPPORT_TICKETS, read_jsonl

LABELS = ["account", "billing", "other", "technical"]


@pytest.fixture(scope="module")
def training(support_tickets):
    return TrainingSet(LabelledExample(text=r["text"], label=r["label"], provenance="gold")
                       for r in support_tickets["train"])


def test_train_head_embeds_with_progress_and_fits_every_label(embedder, training):
    seen = []
    head = train_head(embedder, training, labels=LABELS, progress=lambda done, total: seen.append((done, total)))
    assert list(head.classes_) == LABELS
    rows = len(training)
    assert seen == [(min(done, rows), rows) for done in range(256, rows + 256, 256)]  # batches of 256


def test_a_label_the_task_does_not_have_is_refused(embedder, training):
    with pytest.raises(ValueError, match=r"labels the task does not \(1\): 'other'"):
        train_head(embedder, training, labels=["account", "billing", "technical"])


def test_a_task_label_without_examples_is_refused(embedder, training):
    with pytest.raises(ValueError, match=r"no examples of: \['sales'\]"):
        train_head(embedder, training, labels=LABELS + ["sales"])


def test_the_classifier_must_use_the_task_none_label(embedder, training):
    with pytest.raises(ValueError, match="none label"):
        train_head(embedder, training, labels=LABELS, none_label="none", classifier=EmbeddingClassifier())


def test_the_tasks_none_reject_budget_sets_how_many_in_scope_items_the_head_may_answer_none(embedder, training):
    """Without examples of the none label the head's threshold alone rejects: a larger budget, a higher threshold,
    and more held-out in-scope tickets answered none (tuning.jsonl's: the training rows themselves, and the easy dev
    tickets, the final fit is sure of)."""
    in_scope = ["account", "billing", "technical"]
    kept = TrainingSet(e for e in training.examples if e.label in in_scope)
    strict = train_head(embedder, kept, labels=in_scope, none_label="other", none_reject_budget=0.02)
    loose = train_head(embedder, kept, labels=in_scope, none_label="other", none_reject_budget=0.20)
    assert (strict.max_inscope_reject, loose.max_inscope_reject) == (0.02, 0.20)
    assert 0.0 < strict.oos_threshold_ < loose.oos_threshold_
    held_out = [r["text"] for r in read_jsonl(SUPPORT_TICKETS / "tuning.jsonl") if r["label"] in in_scope]
    X = embedder.embed(held_out)
    rejected = [sum(label == "other" for label in head.predict(X, held_out)) / len(held_out)
                for head in (strict, loose)]
    assert rejected[0] < rejected[1]


def test_the_tasks_none_recall_target_reaches_the_head_and_sets_its_threshold_rule(embedder, training):
    head = train_head(embedder, training, labels=["account", "billing", "technical"], none_label="other",
                      none_recall_target=0.9)
    others = sum(label == "other" for label in training.labels)
    assert head.min_none_recall == 0.9
    assert head.threshold_rule_ == f"none recall >= 0.9 on {others} held-out none rows in 5 fold assignments"
    assert head.cv_metrics_.oos_recall >= 0.9

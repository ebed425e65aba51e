"""train_head: the labels are checked against the task before anything is embedded or fitted."""

from __future__ import annotations

import pytest

from shared.learning.classifier import EmbeddingClassifier
from shared.learning.training import train_head
from shared.learning.training_data import LabelledExample, TrainingSet

LABELS = ["account", "billing", "other", "technical"]


@pytest.fixture(scope="module")
def training(support_tickets):
    return TrainingSet(LabelledExample(text=r["text"], label=r["label"], provenance="gold")
                       for r in support_tickets["train"])


def test_train_head_embeds_with_progress_and_fits_every_label(embedder, training):
    seen = []
    head = train_head(embedder, training, labels=LABELS, progress=lambda done, total: seen.append((done, total)))
    assert list(head.classes_) == LABELS
    assert seen[-1] == (240, 240) and len(seen) == 1  # one batch of 256


def test_a_label_the_task_does_not_have_is_refused(embedder, training):
    with pytest.raises(ValueError, match=r"labels the task does not: \['other'\]"):
        train_head(embedder, training, labels=["account", "billing", "technical"])


def test_a_task_label_without_examples_is_refused(embedder, training):
    with pytest.raises(ValueError, match=r"no examples of: \['sales'\]"):
        train_head(embedder, training, labels=LABELS + ["sales"])


def test_the_classifier_must_use_the_task_none_label(embedder, training):
    with pytest.raises(ValueError, match="none label"):
        train_head(embedder, training, labels=LABELS, none_label="none", classifier=EmbeddingClassifier())

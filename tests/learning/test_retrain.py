"""Champion/challenger retraining for real: MiniLM embeddings, fitted heads, decisions and activations in a store."""

from __future__ import annotations

import json
import random

import pytest

from shared.foundation.tasks import TaskCatalog
from shared.learning.activation import activate, active_head, latest_activation
from shared.learning.artifact import list_versions, save_head
from shared.learning.classifier import EmbeddingClassifier
from shared.learning.retrain import retrain, split_holdout
from shared.learning.stores import LocalFolderStore
from shared.learning.training import train_head
from shared.learning.training_data import LabelledExample, TrainingSet
from tests.conftest import REPO
from tests.learning.conftest import per_label

LABELS = {"billing", "technical", "account", "other"}


@pytest.fixture(scope="module")
def task():
    return TaskCatalog(REPO / "tasks").get("support_ticket").model_copy(update={"trained_head": None})


@pytest.fixture(scope="module")
def examples(support_tickets) -> list[LabelledExample]:
    rows = support_tickets["train"] + support_tickets["dev"]
    return [LabelledExample(text=r["text"], label=r["label"], provenance="gold", source=r["id"]) for r in rows]


def shuffled_labels_fit(embedder, training: TrainingSet, **kwargs):
    """A challenger that learned nothing: the same texts with their labels shuffled."""
    labels = training.labels
    random.Random(0).shuffle(labels)
    noisy = TrainingSet(LabelledExample(text=e.text, label=label, provenance=e.provenance)
                        for e, label in zip(training.examples, labels))
    return train_head(embedder, noisy, **kwargs)


def decisions(store: LocalFolderStore) -> list[dict]:
    return [json.loads(store.read(key)) for key in store.list("support_ticket/decisions/")]


def test_the_held_out_slice_is_the_same_texts_whatever_else_is_in_the_data(examples):
    _, slice_all = split_holdout(TrainingSet(examples))
    _, slice_half = split_holdout(TrainingSet(examples[::2]))
    assert 0.1 <= len(slice_all) / len(examples) <= 0.3  # one text in five, by hash
    assert set(slice_half.texts) == set(slice_all.texts) & {e.text for e in examples[::2]}


def test_a_better_challenger_is_promoted_saved_and_activated(tmp_path, task, examples, embedder, support_tickets):
    store = LocalFolderStore(tmp_path)
    rows = per_label(support_tickets["train"], LABELS, 3)  # a champion trained on three tickets per label
    weak = EmbeddingClassifier().fit(embedder.embed([r["text"] for r in rows]), [r["label"] for r in rows])
    champion = save_head(store, task="support_ticket", classifier=weak, embedder=embedder,
                         training_data=TrainingSet([]).summary())
    activate(store, "support_ticket", champion.version, reason="the first head")

    outcome = retrain(task, examples, embedder=embedder, store=store, task_file_store=store)

    assert outcome.decision.promote and outcome.decision.active_version == champion.version
    assert outcome.decision.candidate.accuracy > outcome.decision.active.accuracy
    assert outcome.activated == outcome.decision.candidate_version
    assert list_versions(store, "support_ticket") == [champion.version, outcome.activated]
    activation = latest_activation(store, "support_ticket")
    assert activation.version == outcome.activated and activation.decision == outcome.decision_key
    assert [d["promote"] for d in decisions(store)] == [True]
    head = json.loads(store.read(f"support_ticket/{outcome.activated}/head.json"))
    assert head["training_data"]["size"] == len(TrainingSet(examples)) - outcome.decision.slice_size


def test_a_challenger_trained_on_shuffled_labels_is_refused_and_the_champion_stays(tmp_path, task, examples,
                                                                                   embedder):
    store = LocalFolderStore(tmp_path)
    first = retrain(task, examples, embedder=embedder, store=store, task_file_store=store)
    assert first.activated and first.decision.reason == "no active head"

    second = retrain(task, examples, embedder=embedder, store=store, task_file_store=store, fit=shuffled_labels_fit)

    assert not second.decision.promote and second.activated is None
    assert second.decision.active_version == first.activated and "accuracy" in second.decision.reason
    assert list_versions(store, "support_ticket") == [first.activated]  # the refused head is not saved
    assert active_head(store, "support_ticket", None, store).version == first.activated
    assert [(d["candidate_version"], d["promote"]) for d in decisions(store)] == [
        (first.activated, True), (second.decision.candidate_version, False)]


def test_too_little_data_trains_nothing_and_says_why(tmp_path, task, examples, embedder):
    store = LocalFolderStore(tmp_path)
    outcome = retrain(task, examples[:60], embedder=embedder, store=store, task_file_store=store)
    assert outcome.decision is None and "held-out slice" in outcome.not_trained
    assert store.list("") == []

"""Head artifacts: save, list and load on a local folder (and on Azurite when it is installed), and every refusal."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest

from shared.learning.artifact import (
    EmbedderRef,
    HeadExpectation,
    HeadMismatchError,
    latest_version,
    list_versions,
    load_head,
    new_version,
    save_head,
)
from shared.learning.stores import ArtifactExistsError, ArtifactNotFoundError, LocalFolderStore
from shared.learning.training_data import LabelledExample, TrainingSet

LABELS = ["account", "billing", "other", "technical"]


@pytest.fixture
def store(tmp_path):
    return LocalFolderStore(tmp_path / "models")


@pytest.fixture(scope="module")
def summary(support_tickets):
    rows = support_tickets["train"]
    return TrainingSet(LabelledExample(text=r["text"], label=r["label"], provenance="gold") for r in rows).summary()


@pytest.fixture
def expect(embedder):
    return HeadExpectation.of(embedder, LABELS)


def save(store, head, embedder, summary, version=None):
    return save_head(store, task="support_ticket", classifier=head, embedder=embedder, training_data=summary,
                     version=version)


def test_round_trip_gives_identical_predictions_and_probabilities(store, support_head, embedder, summary, expect,
                                                                   support_data):
    _, _, X_dev, _ = support_data
    artifact = save(store, support_head, embedder, summary)
    loaded = load_head(store, "support_ticket", artifact.version, expect)
    assert loaded.classifier.predict(X_dev) == support_head.predict(X_dev)
    assert np.array_equal(loaded.classifier.predict_proba(X_dev), support_head.predict_proba(X_dev))
    assert loaded.artifact == artifact


def test_the_artifact_records_what_the_head_is_and_how_it_was_made(store, support_head, embedder, summary,
                                                                   support_tickets):
    artifact = save(store, support_head, embedder, summary)
    head = json.loads((store.root / "support_ticket" / artifact.version / "head.json").read_text())
    assert head["embedder"] == {"id": embedder.id, "model_hash": embedder.model_hash, "dimension": 384}
    assert head["labels"] == LABELS and head["classes"] == LABELS and head["none_label"] is None
    assert head["temperature"] == pytest.approx(support_head.temperature_)
    rows = len({r["text"] for r in support_tickets["train"]})  # the training file's texts, each once
    assert head["training_data"]["size"] == rows and len(head["training_data"]["sha256"]) == 64
    assert head["training_data"]["by_provenance"] == {"gold": rows}
    assert set(head["cv_metrics"]) >= {"accuracy", "macro_f1", "ece", "selective_accuracy_80"}
    assert datetime.fromisoformat(head["created_at"]).tzinfo is not None


def test_versions_sort_in_time_order_and_the_latest_is_last(store, support_head, embedder, summary):
    times = [datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc), datetime(2024, 12, 31, tzinfo=timezone.utc),
             datetime(2025, 1, 2, 3, 4, 5, 7, tzinfo=timezone.utc)]
    for moment in times:
        save(store, support_head, embedder, summary, version=new_version(moment))
    assert list_versions(store, "support_ticket") == [new_version(t) for t in sorted(times)]
    assert latest_version(store, "support_ticket") == new_version(times[2])
    assert latest_version(store, "another_task") is None


def test_a_version_without_head_json_is_incomplete_and_not_listed(store, support_head, embedder, summary):
    version = save(store, support_head, embedder, summary).version
    (store.root / "support_ticket" / version / "head.json").unlink()
    assert list_versions(store, "support_ticket") == []


def test_a_saved_version_is_never_overwritten(store, support_head, embedder, summary):
    version = save(store, support_head, embedder, summary).version
    with pytest.raises(ArtifactExistsError):
        save(store, support_head, embedder, summary, version=version)


@pytest.mark.parametrize("change, message", [
    ({"id": "azure-openai/text-embedding-3-small"}, "trained on embedder"),
    ({"model_hash": "f" * 64}, "trained on embedder"),
    ({"dimension": 1536}, "384-dimensional head for a 1536-dimensional embedder"),
])
def test_a_head_for_another_embedder_or_dimension_is_refused(store, support_head, embedder, summary, change, message):
    version = save(store, support_head, embedder, summary).version
    ref = EmbedderRef(id=embedder.id, model_hash=embedder.model_hash, dimension=embedder.dimension)
    expect = HeadExpectation(ref.model_copy(update=change), frozenset(LABELS), None)
    with pytest.raises(HeadMismatchError, match=message):
        load_head(store, "support_ticket", version, expect)


def test_a_head_with_another_label_set_is_refused(store, support_head, embedder, summary):
    version = save(store, support_head, embedder, summary).version
    expect = HeadExpectation.of(embedder, ["account", "billing", "technical", "sales"])
    with pytest.raises(HeadMismatchError, match=r"missing \['sales'\], extra \['other'\]"):
        load_head(store, "support_ticket", version, expect)


def test_a_head_with_another_none_label_is_refused(store, support_head, embedder, summary):
    version = save(store, support_head, embedder, summary).version
    with pytest.raises(HeadMismatchError, match="none label None"):
        load_head(store, "support_ticket", version, HeadExpectation.of(embedder, LABELS, none_label="none"))


def test_damaged_weights_are_refused(store, support_head, embedder, summary, expect):
    version = save(store, support_head, embedder, summary).version
    weights = store.root / "support_ticket" / version / "weights.npz"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside the coefficients
    weights.write_bytes(bytes(data))
    with pytest.raises(HeadMismatchError, match="does not match the SHA-256"):
        load_head(store, "support_ticket", version, expect)


def test_a_missing_version_and_a_malformed_one_are_clear_errors(store, expect):
    with pytest.raises(ArtifactNotFoundError):
        load_head(store, "support_ticket", new_version(), expect)
    with pytest.raises(ValueError, match="invalid head version"):
        load_head(store, "support_ticket", "../../etc", expect)


def test_store_keys_cannot_leave_the_root(store):
    for key in ("../outside", "/abs/path", "a//b", "a/../../b"):
        with pytest.raises(ValueError, match="invalid artifact key"):
            store.write(key, b"x")


def test_a_cut_short_head_json_is_refused_naming_the_file(store, support_head, embedder, summary, expect):
    version = save(store, support_head, embedder, summary).version
    head = store.root / "support_ticket" / version / "head.json"
    head.write_bytes(head.read_bytes()[:100])  # a copy or sync cut short
    with pytest.raises(HeadMismatchError, match=f"{head}: not a classification head: .*EOF"):
        load_head(store, "support_ticket", version, expect)


def test_the_newest_readable_activation_stands_and_other_files_beside_them_are_not_activations(store):
    from shared.learning.activation import activate, latest_activation

    activate(store, "support_ticket", new_version(datetime(2025, 1, 1, tzinfo=timezone.utc)), reason="first")
    folder = store.root / "support_ticket" / "activations"
    (folder / f"{new_version()}.json").write_text('{"task": "support_ticket", "vers')  # a write cut short
    (folder / "README.txt").write_text("notes")  # sorts after the records
    (folder / f"{new_version()}.json~").write_text("an editor's backup")
    assert latest_activation(store, "support_ticket").reason == "first"


def test_a_write_leaves_no_file_under_another_name_and_hidden_files_are_not_keys(store):
    store.write("support_ticket/x/a.json", b"{}")
    assert [p.name for p in (store.root / "support_ticket" / "x").iterdir()] == ["a.json"]
    (store.root / "support_ticket" / "x" / ".b.json.partial").write_bytes(b"{")  # a write under way elsewhere
    assert store.list("support_ticket/") == ["support_ticket/x/a.json"]

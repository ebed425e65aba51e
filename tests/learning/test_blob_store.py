"""The blob artifact store against a real Azurite on 127.0.0.1."""

from __future__ import annotations

import numpy as np
import pytest

from localdev.azurite import Azurite
from shared.learning.artifact import HeadExpectation, list_versions, load_head, save_head
from shared.learning.stores import ArtifactExistsError, ArtifactNotFoundError, BlobArtifactStore

pytestmark = pytest.mark.azurite


@pytest.fixture(scope="module")
def blob_endpoint():
    with Azurite() as emulator:
        yield emulator.connection_string


@pytest.fixture
def store(blob_endpoint, request):
    from azure.storage.blob import ContainerClient

    name = f"heads-{len(request.node.name)}-{abs(hash(request.node.name)) % 10**6}"
    container = ContainerClient.from_connection_string(blob_endpoint, container_name=name)
    container.create_container()
    yield BlobArtifactStore(container)
    container.close()


def test_a_head_round_trips_through_blob_storage_under_models_task_version(store, support_head, embedder,
                                                                           support_data, support_tickets):
    from shared.learning.training_data import LabelledExample, TrainingSet

    summary = TrainingSet(LabelledExample(text=r["text"], label=r["label"], provenance="gold")
                          for r in support_tickets["train"]).summary()
    artifact = save_head(store, task="support_ticket", classifier=support_head, embedder=embedder,
                         training_data=summary)
    names = sorted(store.container.list_blob_names())
    assert names == [f"models/support_ticket/{artifact.version}/head.json",
                     f"models/support_ticket/{artifact.version}/weights.npz"]
    assert list_versions(store, "support_ticket") == [artifact.version]
    expect = HeadExpectation.of(embedder, ["account", "billing", "other", "technical"])
    loaded = load_head(store, "support_ticket", artifact.version, expect)
    _, _, X_dev, _ = support_data
    assert np.array_equal(loaded.classifier.predict_proba(X_dev), support_head.predict_proba(X_dev))


def test_blob_store_refuses_overwrites_and_reports_missing_keys(store):
    store.write("task/v/file.bin", b"one")
    with pytest.raises(ArtifactExistsError):
        store.write("task/v/file.bin", b"two")
    assert store.read("task/v/file.bin") == b"one"
    with pytest.raises(ArtifactNotFoundError, match="models/task/v/missing.bin"):
        store.read("task/v/missing.bin")
    assert store.list("task/") == ["task/v/file.bin"]

"""The blob artifact store against a real Azurite (node_modules/.bin/azurite, from `npm ci`) on 127.0.0.1."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from shared.learning.artifact import HeadExpectation, list_versions, load_head, save_head
from shared.learning.stores import ArtifactExistsError, ArtifactNotFoundError, BlobArtifactStore
from tests.learning.conftest import REPO

pytestmark = pytest.mark.azurite
AZURITE = REPO / "node_modules" / ".bin" / "azurite"
# Azurite's well-known development account and key (public, documented; not a secret).
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def blob_endpoint(tmp_path_factory):
    if not AZURITE.exists() or shutil.which("node") is None:
        pytest.skip(f"{AZURITE} is missing: run `npm ci`")
    port = free_port()
    process = subprocess.Popen(
        [str(AZURITE), "--silent", "--skipApiVersionCheck", "--loose", "--location",
         str(tmp_path_factory.mktemp("azurite")), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--queuePort", str(free_port()), "--tablePort", str(free_port())],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not listening(port):
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail("azurite did not start")
            time.sleep(0.1)
        yield (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
               f"BlobEndpoint=http://127.0.0.1:{port}/{ACCOUNT};")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=3)
        except subprocess.TimeoutExpired:  # it waits for idle keep-alive connections; its data is throwaway
            process.kill()
            process.wait()


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

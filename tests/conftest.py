from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from shared.core.config import Settings
from shared.foundation.tasks import TaskCatalog
from shared.core.tiers.embedded import EmbeddedTier
from tests.azure_wire import AzureWireServer

REPO = Path(__file__).resolve().parents[1]
DATASETS = REPO.parent / "shared" / "datasets"


def dataset_rows(name: str, split: str = "dev", limit: int | None = None, stride: int = 1) -> list[dict]:
    rows = [json.loads(line) for line in (DATASETS / name / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()]
    rows = rows[::stride]
    return rows[:limit] if limit else rows


TICKET_TASK = """\
kind: classification
description: support tickets routed to one OpenAI-compatible tier (tests of the pipeline, not of the models)
instruction: Route the customer support ticket to the team that should handle it.
threshold: 0.5
tiers: [small]
labels: [{name: billing}, {name: technical}, {name: account}, {name: other}]
"""


def write_ticket_task(tasks_dir: Path) -> Path:
    """A tasks folder with `ticket`: the support-ticket labels, answered by the `small` tier alone."""
    tasks_dir.mkdir(parents=True, exist_ok=True)
    (tasks_dir / "ticket.yaml").write_text(TICKET_TASK)
    return tasks_dir


@pytest.fixture(scope="session")
def catalog() -> TaskCatalog:
    return TaskCatalog(REPO / "tasks")


@pytest.fixture(scope="session")
def embedded() -> EmbeddedTier:
    """One real llama.cpp SmolLM2 model for the whole session (loading is the slow part).

    Only the thread count is taken from the environment, so a configured remote small tier cannot leak in.
    """
    threads = {k: v for k, v in os.environ.items() if k == "SMALLFIRST_SMALL_N_THREADS"}
    return EmbeddedTier(Settings.from_env(threads).tiers["small"])


@pytest.fixture
def wire():
    with AzureWireServer() as server:
        yield server


@pytest.fixture(scope="module")
def emulator():
    """Azurite for one test module."""
    from localdev.azurite import Azurite

    with Azurite() as running:
        yield running


@pytest.fixture(scope="module")
def storage(emulator):
    """The data account's blob store in that Azurite, with every container the pipeline uses."""
    from azure.storage.blob import BlobServiceClient

    from shared.pipeline.blob_names import Containers
    from shared.pipeline.storage import BlobStore

    store = BlobStore(BlobServiceClient.from_connection_string(emulator.connection_string))
    store.ensure_containers(Containers().all())
    return store


class CountingReads:
    """A blob store that counts its whole-blob reads (downloads) of one container, and otherwise is the store."""

    def __init__(self, store, container: str) -> None:
        self.store, self.container, self.reads = store, container, 0

    def read(self, container, name, **kwargs):
        self.reads += container == self.container
        return self.store.read(container, name, **kwargs)

    def __getattr__(self, name):
        return getattr(self.store, name)

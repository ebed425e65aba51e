"""`smallfirst-host` alone on a fresh Azurite, started as the README says: it creates the containers and queues the
app uses, and two uploads get their outcomes (issue 27: before, every blob ended in ContainerNotFound)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient

from localdev.azurite import free_port
from shared.errors import InputError
from shared.pipeline.blob_names import Containers, InputBlob
from shared.pipeline.parsing import loads
from tests.conftest import REPO

pytestmark = pytest.mark.azurite
GOOD = InputBlob("support_ticket", "double-charge.txt")
NESTED = InputBlob("support_ticket", "nested.json")
NESTING = 100_000  # far past what the parser reads (Python's recursion limit)


def local_settings(path: Path, connection_string: str) -> Path:
    """local.settings.sample.json copied as the README says, its storage pointed at this test's Azurite."""
    settings = json.loads((REPO / "local.settings.sample.json").read_text())
    settings["Values"].update({"DataStorage": connection_string, "SMALLFIRST_LOCAL_PROFILE": "trained"})
    path.write_text(json.dumps(settings))
    return path


def wait_until_serving(host: subprocess.Popen, url: str, log: Path, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert host.poll() is None, f"smallfirst-host exited {host.returncode}:\n{log.read_text()[-3000:]}"
        try:
            urllib.request.urlopen(url, timeout=5)
            return
        except urllib.error.HTTPError:  # any HTTP answer: it serves
            return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"smallfirst-host did not serve {url} within {timeout_s:.0f}s:\n{log.read_text()[-3000:]}")


def wait_for_blob(blobs: BlobServiceClient, container: str, name: str, timeout_s: float = 180.0) -> bytes | None:
    client = blobs.get_blob_client(container, name)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.exists():
            return client.download_blob().readall()
        time.sleep(0.3)
    return None


@pytest.fixture
def host_on_fresh_azurite(emulator, tmp_path):
    """The host as its own process, like `.venv/bin/smallfirst-host` in a shell, on an Azurite where nothing was
    created."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLFIRST_") and k != "DataStorage"}
    log = tmp_path / "host.log"
    with log.open("w") as out:
        host = subprocess.Popen([str(REPO / ".venv" / "bin" / "smallfirst-host"), "--port", str(port), "--settings",
                                 str(local_settings(tmp_path / "local.settings.json", emulator.connection_string))],
                                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_until_serving(host, f"http://127.0.0.1:{port}/api/tasks", log)
        yield log
    finally:
        host.terminate()
        host.wait(timeout=30)


def test_fresh_azurite_has_no_containers_until_the_host_creates_them(emulator):
    blobs = BlobServiceClient.from_connection_string(emulator.connection_string)
    assert [c.name for c in blobs.list_containers()] == []


def test_host_alone_on_fresh_azurite_gives_a_result_for_a_txt_and_a_dead_letter_for_a_too_nested_json(
        emulator, host_on_fresh_azurite):
    blobs = BlobServiceClient.from_connection_string(emulator.connection_string)
    queues = QueueServiceClient.from_connection_string(emulator.connection_string)
    assert set(Containers().all()) <= {c.name for c in blobs.list_containers()}
    assert {"smallfirst-work", "smallfirst-work-poison", "smallfirst-shadow", "smallfirst-shadow-poison"} <= \
        {q.name for q in queues.list_queues()}

    nested = b"[" * NESTING + b"]" * NESTING
    with pytest.raises(InputError, match="nested too deeply"):
        loads(nested.decode(), NESTED.name)  # beyond what the parser accepts, as uploaded
    text = (REPO / "samples" / "support_ticket" / "double-charge.txt").read_bytes()
    blobs.get_blob_client("incoming", GOOD.incoming_path).upload_blob(text)
    blobs.get_blob_client("incoming", NESTED.incoming_path).upload_blob(nested)

    result = wait_for_blob(blobs, "results", GOOD.result_single)
    letter = wait_for_blob(blobs, "deadletter", NESTED.deadletter)
    log = host_on_fresh_azurite.read_text()[-3000:]
    assert result is not None, f"no results/{GOOD.result_single}; host log:\n{log}"
    assert letter is not None, f"no deadletter/{NESTED.deadletter}; host log:\n{log}"
    record = json.loads(result)
    assert record["id"] == "double-charge" and record["answer"] == "billing"
    assert json.loads(letter)["reason"] == "too_deeply_nested"


def test_create_storage_makes_the_containers_and_queues_and_exits_without_serving(tmp_path):
    """The step before `func start` (Core Tools creates none of them): idempotent, so it may run every time."""
    from localdev.azurite import Azurite

    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLFIRST_") and k != "DataStorage"}
    with Azurite() as fresh:
        settings = local_settings(tmp_path / "local.settings.json", fresh.connection_string)
        command = [str(REPO / ".venv" / "bin" / "smallfirst-host"), "--create-storage", "--settings", str(settings)]
        for _ in range(2):
            done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stderr
        blobs = BlobServiceClient.from_connection_string(fresh.connection_string)
        queues = QueueServiceClient.from_connection_string(fresh.connection_string)
        assert {c.name for c in blobs.list_containers()} == set(Containers().all())
        assert {q.name for q in queues.list_queues()} == {"smallfirst-work", "smallfirst-work-poison",
                                                          "smallfirst-shadow", "smallfirst-shadow-poison"}
    assert "DataStorage: containers claims, corrections, deadletter, incoming, models" in done.stdout


def test_storage_of_an_app_comes_from_its_bindings_and_the_data_containers_only_for_the_data_connection():
    import azure.functions as func

    from localdev.host import app_storage

    probe = func.FunctionApp()

    @probe.queue_trigger(arg_name="message", queue_name="elsewhere-in", connection="OtherStorage")
    @probe.blob_output(arg_name="out", path="archive/{rand-guid}.json", connection="OtherStorage")
    def forward(message: func.QueueMessage, out: func.Out[str]) -> None:
        out.set(message.get_body().decode())

    needs = app_storage(probe)
    assert list(needs) == ["OtherStorage"]
    assert needs["OtherStorage"].containers == {"archive"} and needs["OtherStorage"].queues == {"elsewhere-in"}


def test_host_says_in_one_line_that_it_cannot_create_storage_without_a_connection(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLFIRST_") and k != "DataStorage"}
    done = subprocess.run([str(REPO / ".venv" / "bin" / "smallfirst-host"), "--create-storage", "--settings",
                           str(tmp_path / "none.json")], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "smallfirst-host: cannot create the app's containers and queues: storage connection 'DataStorage': "
        "set DataStorage or DataStorage__blobServiceUri")

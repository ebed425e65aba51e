"""`smallfirst smoke`: the command against the local host on Azurite, and its ARM `listKeys` step against a loopback
ARM that records what it was sent."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time

import pytest
from azure.core.credentials import AccessToken
from azure.storage.blob import BlobServiceClient

from localdev.azurite import free_port
from shared.monitoring.smoke import ARM_SCOPE, FunctionKeys, Smoke, StackOutputs, read_stack_outputs
from shared.pipeline.blob_names import HASH_KEY, InputBlob
from tests.azure_wire import Scripted
from tests.conftest import REPO

pytestmark = pytest.mark.azurite
SAMPLE = REPO / "samples" / "support_ticket" / "double-charge.txt"
OUTPUTS = StackOutputs(subscription_id="00000000-0000-0000-0000-000000000001", resource_group="rg-smoke",
                       function_app_name="func-smoke", function_app_url="https://func-smoke.azurewebsites.net",
                       data_blob_endpoint="https://datasmoke.blob.core.windows.net/")
LIST_KEYS_PATH = ("/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-smoke/providers/Microsoft.Web"
                  "/sites/func-smoke/host/default/listkeys")


class StaticToken:
    """A credential that hands out one token and records the scopes asked for."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken("static-token", int(time.time()) + 3600)


@pytest.fixture(scope="module")
def local_host(emulator):
    """The local host on the module's Azurite with the local default profile (the trained tier)."""
    from function_app import app
    from functions import services
    from localdev.host import LocalHost

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DataStorage", emulator.connection_string)
        env.setenv("SMALLFIRST_LOCAL_PROFILE", "trained")
        for key in [k for k in os.environ if k.startswith("SMALLFIRST_") and k != "SMALLFIRST_LOCAL_PROFILE"]:
            env.delenv(key)
        services.reset()
        host = LocalHost(app, port=0, poll_s=0.2).start()
        try:
            yield f"http://127.0.0.1:{host.port}"
        finally:
            host.stop()
            services.reset()


def smoke_command(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLFIRST_") and k != "DataStorage"}
    return subprocess.run([str(REPO / ".venv" / "bin" / "smallfirst"), "smoke", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)


def test_smoke_local_passes_every_step_and_finds_the_result_of_the_sample_it_uploaded(emulator, local_host):
    done = smoke_command("--local", "--connection-string", emulator.connection_string, "--url", local_host,
                         "--timeout", "120", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert [(s["name"], s["status"]) for s in report["steps"]] == [
        ("upload", "passed"), ("result", "passed"), ("function key", "skipped"), ("health", "passed"),
        ("classify", "passed")]
    assert all(s["seconds"] >= 0 for s in report["steps"])
    container, _, path = report["uploaded"].partition("/")
    uploaded = InputBlob.from_path(path)
    assert container == "incoming" and uploaded.task == "support_ticket"
    assert uploaded.name.startswith("smoke-") and uploaded.name.endswith(".txt")
    assert report["result"]["id"] == uploaded.name.removesuffix(".txt")
    assert report["result"]["answer"] == "billing"
    blobs = BlobServiceClient.from_connection_string(emulator.connection_string)
    result = blobs.get_blob_client("results", uploaded.result_single).get_blob_properties()
    assert result.metadata[HASH_KEY] == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()  # made from the sample
    classify = report["steps"][-1]["detail"]
    assert classify.startswith("'billing' by trained")


def test_smoke_names_each_failed_step_and_exits_1_without_a_traceback():
    from localdev.azurite import Azurite

    nothing_there = f"http://127.0.0.1:{free_port()}"  # no host: nothing processes the upload or answers
    with Azurite() as storage:  # not the module's, which its host watches
        BlobServiceClient.from_connection_string(storage.connection_string).create_container("incoming")
        done = smoke_command("--local", "--connection-string", storage.connection_string, "--url", nothing_there,
                             "--timeout", "1")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr + done.stdout
    assert done.stderr.strip().splitlines()[-1] == "smoke failed: result, health, classify"
    assert "no results/support_ticket/smoke-" in done.stdout


def test_list_keys_posts_to_the_sites_host_keys_with_the_api_version_and_the_users_bearer_token(wire):
    wire.default = Scripted(body={"masterKey": "master", "functionKeys": {"default": "function-key"},
                                  "systemKeys": {}})
    credential = StaticToken()
    assert FunctionKeys(OUTPUTS, credential, arm_url=wire.url).default_key() == "function-key"
    (request,) = wire.requests
    assert request.method == "POST" and request.path == LIST_KEYS_PATH
    assert request.query == {"api-version": ["2025-05-01"]}
    assert request.headers["authorization"] == "Bearer static-token"
    assert credential.scopes == [(ARM_SCOPE,)]


def test_a_403_from_arm_is_the_key_steps_failure_with_its_reason_and_the_api_steps_are_skipped(
        wire, emulator, local_host):
    denied = "The client 'me' does not have authorization to perform action 'Microsoft.Web/sites/host/listkeys/action'"
    wire.default = Scripted(403, {"error": {"code": "AuthorizationFailed", "message": denied}})
    keys = FunctionKeys(OUTPUTS, StaticToken(), arm_url=wire.url)
    report = Smoke(BlobServiceClient.from_connection_string(emulator.connection_string), local_host, SAMPLE, keys,
                   timeout_s=120, poll_s=0.2).run()
    steps = {step.name: step for step in report.steps}
    assert [s.status for s in report.steps] == ["passed", "passed", "failed", "skipped", "skipped"]
    assert steps["function key"].detail == f"ARM listKeys on func-smoke answered 403: AuthorizationFailed: {denied}"
    assert steps["health"].detail == "no function key"
    assert report.failed == ["function key"]
    assert len(wire.requests) == 1  # a 403 is not retried


def test_stack_outputs_missing_a_key_is_one_error_naming_it(tmp_path):
    from shared.errors import ConfigError

    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps({**OUTPUTS.model_dump(exclude={"function_app_name"}), "data_account": "x"}))
    with pytest.raises(ConfigError, match="function_app_name: Field required"):
        read_stack_outputs(outputs, tmp_path)
    outputs.write_text(json.dumps(OUTPUTS.model_dump()))
    assert read_stack_outputs(outputs, tmp_path) == OUTPUTS

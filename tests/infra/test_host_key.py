"""The blobs_extension key write: retried against a host that refuses it, on a loopback stand-in for ARM."""

from __future__ import annotations

import json
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from smallfirst_infra.host_key import HostKeyWriter
from tests.infra.loopback import RecordingServer

PROPS = {"subscription_id": "sub-1", "resource_group": "rg-1", "site_name": "smallfirst-func-abc123",
         "key_name": "blobs_extension", "key_value": "k" * 48}
KEY_PATH = ("/subscriptions/sub-1/resourceGroups/rg-1/providers/Microsoft.Web/sites/smallfirst-func-abc123"
            "/host/default/systemkeys/blobs_extension")


class RefusingHost:
    """ARM relaying to a Flex host that is not ready: refuses `refusals` writes (None: every one), then takes it."""

    def __init__(self, refusals: int | None) -> None:
        self.refusals = refusals

    def __call__(self, request, all_requests):
        if self.refusals is None or len(all_requests) <= self.refusals:
            body = {"error": {"code": "BadRequest", "message": "Encountered an error (ServiceUnavailable) from host runtime."}}
            return 400, "application/json", json.dumps(body).encode()
        return 200, "application/json", json.dumps({"properties": {"name": "blobs_extension", "value": "k"}}).encode()


def writer(server: RecordingServer, waits: list[float], attempts: int = 6) -> HostKeyWriter:
    return HostKeyWriter(token_source=lambda: "arm-token", arm_endpoint=server.url, attempts=attempts,
                         first_delay_s=1.0, max_delay_s=4.0, sleep=waits.append)


def test_key_write_retries_with_growing_bounded_waits_until_the_host_accepts_it():
    waits: list[float] = []
    with RecordingServer(RefusingHost(refusals=4)) as server:
        result = writer(server, waits).create(PROPS)
    assert len(server.requests) == 5
    assert waits == [1.0, 2.0, 4.0, 4.0]  # doubling, capped at max_delay_s
    for request in server.requests:
        assert request.method == "PUT" and urlsplit(request.path).path == KEY_PATH
        assert parse_qs(urlsplit(request.path).query)["api-version"] == ["2024-04-01"]
        assert request.headers["Authorization"] == "Bearer arm-token"
        assert json.loads(request.body) == {"properties": {"name": "blobs_extension", "value": "k" * 48}}
    assert result.id == KEY_PATH


def test_key_write_that_the_host_never_accepts_fails_naming_the_step_and_the_last_answer():
    waits: list[float] = []
    with RecordingServer(RefusingHost(refusals=None)) as server:
        with pytest.raises(RuntimeError) as raised:
            writer(server, waits, attempts=3).create(PROPS)
    assert len(server.requests) == 3 and len(waits) == 2  # no wait after the last attempt
    message = str(raised.value)
    assert "writing the Functions host's blobs_extension system key (after publishing the code) failed" in message
    assert "refused it 3 times" in message and "400" in message and "ServiceUnavailable" in message
    assert "run `pulumi up` again" in message


def test_key_write_accepted_at_once_does_not_wait():
    waits: list[float] = []
    with RecordingServer(RefusingHost(refusals=0)) as server:
        writer(server, waits).create(PROPS)
    assert len(server.requests) == 1 and waits == []


def test_key_is_rewritten_only_when_the_key_or_its_app_changes():
    provider = HostKeyWriter(token_source=lambda: "t")
    assert provider.diff("id", PROPS, dict(PROPS)).changes is False
    assert provider.diff("id", PROPS, {**PROPS, "key_value": "other"}).changes is True
    assert provider.diff("id", PROPS, {**PROPS, "site_name": "other-app"}).changes is True


def test_key_writer_loads_in_a_process_that_cannot_import_the_infra_package(tmp_path):
    """Pulumi runs dynamic providers from the pickled state, in a separate process."""
    script = ("import base64, sys, dill\n"
              "provider = dill.loads(base64.b64decode(sys.argv[1]))\n"
              "print(type(provider).__name__, provider.attempts, provider.key_path(" + repr(PROPS) + "))\n")
    result = subprocess.run([sys.executable, "-I", "-c", script, serialize_provider(HostKeyWriter())], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["HostKeyWriter", "10", KEY_PATH]

"""The embedded tier as a process: a native crash is one failing test naming the signal, not a dead suite;
a worker killed mid-item leaves the item to be processed when a worker starts again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from azure.storage.blob import BlobServiceClient

from localdev.azurite import Azurite, free_port
from shared.pipeline.blob_names import Containers
from tests.azure_wire import AzureWireServer, Scripted, chat_completion
from tests.conftest import REPO, write_ticket_task

LABEL_TOKENS = [('{"label":"', -0.01), ("billing", -0.01), ('"}', -0.01)]


def run_child(code: str, env: dict[str, str] | None = None, timeout_s: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout_s,
                          env={**os.environ, **(env or {})})


def assert_not_killed(done: subprocess.CompletedProcess, what: str) -> None:
    if done.returncode < 0:
        pytest.fail(f"{what}: the process was killed by {signal.Signals(-done.returncode).name}; "
                    f"stderr tail:\n{done.stderr[-2000:]}", pytrace=False)
    assert done.returncode == 0, done.stderr[-2000:]


def test_batched_decode_of_the_embedded_tier_does_not_kill_its_process():
    code = """
import json
from shared.core.config import Settings
from shared.foundation.tasks import TaskCatalog
from shared.core.tiers.embedded import EmbeddedTier
from tests.conftest import REPO, write_ticket_task
import os
threads = {k: v for k, v in os.environ.items() if k == "SMALLFIRST_SMALL_N_THREADS"}
tier = EmbeddedTier(Settings.from_env(threads).tiers["small"])
answer = tier.classify(TaskCatalog(REPO / "tasks").get("support_ticket"), "I was charged twice for my plan")
print(json.dumps({"label": answer.value, "tokens_in": answer.tokens_in, "evaluated": tier.evaluated_tokens}))
"""
    done = run_child(code)
    assert_not_killed(done, "batched llama.cpp decode (prompt and label tree)")
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["label"] in {"billing", "technical", "account", "other"}
    assert result["evaluated"] >= result["tokens_in"] > 2  # the prompt went through decode in batches of many tokens


def test_extra_buffer_types_follow_the_setting_and_the_default_is_restored(embedded):
    from llama_cpp import llama_cpp as lib

    from shared.core.tiers.llama_session import LlamaSession, extra_buffer_types_safe

    assert embedded.session.extra_buffer_types is extra_buffer_types_safe()  # unset: decided by the build
    off = LlamaSession(embedded.model_path, n_ctx=512, n_threads=1, extra_buffer_types=False)
    assert off.llm.model_params.use_extra_bufts is False
    assert lib.llama_model_default_params().use_extra_bufts is True  # the wrap lasted only while loading


def test_a_build_with_amx_loads_without_extra_buffer_types(monkeypatch):
    from shared.core.tiers import llama_session

    amx_build = {"llama_cpp_python": "0.3.36", "cpu_features": ["AMX_INT8", "AVX2", "AVX512"]}
    monkeypatch.setattr(llama_session, "build_info", lambda: amx_build)
    assert llama_session.extra_buffer_types_safe() is False
    monkeypatch.setattr(llama_session, "build_info", lambda: {**amx_build, "cpu_features": ["AVX2", "FMA"]})
    assert llama_session.extra_buffer_types_safe() is True


def test_health_reports_version_cpu_features_and_extra_buffer_types():
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMALLFIRST_")}
    done = subprocess.run([str(REPO / ".venv" / "bin" / "smallfirst"), "health"], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env=env)
    assert_not_killed(done, "smallfirst health")
    assert "llama-cpp-python 0.3.36" in done.stderr
    from shared.core.tiers.llama_session import extra_buffer_types_safe

    assert "CPU features" in done.stderr and "AVX2" in done.stderr
    assert f"extra buffer types {'on' if extra_buffer_types_safe() else 'off'}" in done.stderr


@pytest.mark.azurite
def test_item_in_flight_when_its_worker_is_killed_is_processed_after_restart(tmp_path):
    """The host is SIGKILLed while the tier call for a blob's work is in flight; a new host finishes it once."""
    with Azurite() as storage, AzureWireServer() as tier:
        blobs = BlobServiceClient.from_connection_string(storage.connection_string)
        for container in Containers().all():
            blobs.create_container(container)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("SMALLFIRST_")},
               "DataStorage": storage.connection_string, "SMALLFIRST_SMALL_BACKEND": "openai_compatible",
               "SMALLFIRST_SMALL_ENDPOINT": tier.url, "SMALLFIRST_SMALL_LOGPROBS": "true",
               "SMALLFIRST_SMALL_TIMEOUT_S": "120", "SMALLFIRST_CLAIM_TTL_S": "3",
               "SMALLFIRST_TASKS_DIR": str(write_ticket_task(tmp_path / "tasks"))}
        host_cmd = [str(REPO / ".venv" / "bin" / "smallfirst-host"), "--settings", str(tmp_path / "none.json")]

        def start_host() -> subprocess.Popen:
            return subprocess.Popen([*host_cmd, "--port", str(free_port())], cwd=tmp_path, env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        tier.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS), delay_s=60)
        first = start_host()
        try:
            blobs.get_blob_client("incoming", "ticket/killed.txt").upload_blob(b"I was charged twice")
            deadline = time.monotonic() + 60
            while not tier.requests and time.monotonic() < deadline:
                time.sleep(0.1)
            assert tier.requests, "the first host never called the tier"
            first.send_signal(signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL
        finally:
            first.kill()
        result = blobs.get_blob_client("results", "ticket/killed.txt.json")
        assert not result.exists()  # the killed worker wrote nothing

        tier.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
        second = start_host()
        try:  # the work's message reappears once its visibility (30 s) runs out; the dead claim is expired by then
            deadline = time.monotonic() + 120
            while not result.exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            record = json.loads(result.download_blob().readall())
        finally:
            second.terminate()
            second.wait(timeout=10)
        assert record["answer"] == "billing" and record["status"] == "accepted"
        assert [b.name for b in blobs.get_container_client("results").list_blobs()] == ["ticket/killed.txt.json"]

"""The async tier path at the wire level: a real HTTP server speaking Azure's chat-completions shapes, the
SDKs' async clients (AsyncOpenAI over its aiohttp transport; the legacy backend's azure.ai.inference.aio), and the
same answers as the blocking path."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path

import pytest

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item
from shared.core.run_tier import arun_tier, run_tier
from tests.azure_wire import Recorded, Scripted, chat_completion, chat_completion_choices

LABELS = ["billing", "technical", "account", "other"]
TASK = """\
kind: classification
instruction: Route the customer support ticket to the team that should handle it.
threshold: {threshold}
tiers: [{tier}]
labels: [{{name: billing}}, {{name: technical}}, {{name: account}}, {{name: other}}]
"""
BACKENDS = {
    "azure_openai": lambda url: {"backend": "azure_openai", "endpoint": url, "model": "gpt-4o"},
    "foundry": lambda url: {"backend": "foundry", "endpoint": url + "/openai/v1/", "model": "Phi-4"},
    "foundry_inference": lambda url: {"backend": "foundry_inference", "endpoint": url, "model": "Phi-4"},
}


def cascade_for(tmp_path: Path, wire, backend: str, threshold: float = 0.5, **tier_fields) -> Cascade:
    """A cascade whose one tier (`small`) is the wire server behind `backend`; its task is `ticket`."""
    tasks = tmp_path / "tasks"
    tasks.mkdir(exist_ok=True)
    (tasks / "ticket.yaml").write_text(TASK.format(threshold=threshold, tier="small"))
    fields = {**BACKENDS[backend](wire.url), "api_key": "sekret", "timeout_s": 5, **tier_fields}
    env = {f"SMALLFIRST_SMALL_{key.upper()}": str(value) for key, value in fields.items()}
    return Cascade(Settings.from_env({**env, "SMALLFIRST_TASKS_DIR": str(tasks)}))


def label_of_item(request: Recorded) -> str:
    """The label an item asks for: its text is the label (the last message is the item)."""
    return request.body["messages"][-1]["content"]


def answer_with_item_label(request: Recorded) -> Scripted:
    """A sure answer (token logprobs near 0) naming the item's label."""
    label = label_of_item(request)
    return Scripted(body=chat_completion(f'{{"label":"{label}"}}',
                                         tokens=[('{"label":"', -0.01), (label, -0.01), ('"}', -0.01)]))


class Overlap:
    """Holds every request until `expected` are in flight at once (or `wait_s` passes), and records the
    most seen in flight: requests sent one after another could never make it past one."""

    def __init__(self, expected: int, wait_s: float = 5.0) -> None:
        self.expected, self.wait_s = expected, wait_s
        self.in_flight = self.most_in_flight = 0
        self._changed = threading.Condition()

    def __call__(self, request: Recorded) -> Scripted:
        with self._changed:
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            self._changed.notify_all()
            self._changed.wait_for(lambda: self.most_in_flight >= self.expected, timeout=self.wait_s)
            self.in_flight -= 1
        return answer_with_item_label(request)


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_batch_runs_items_concurrently_and_keeps_input_order(tmp_path, wire, backend):
    cascade = cascade_for(tmp_path, wire, backend, logprobs="true")
    overlap = Overlap(expected=8)
    wire.default = overlap
    items = [Item(id=f"i{n}", text=LABELS[n % 4]) for n in range(12)]
    records = cascade.run_batch(cascade.tasks.get("ticket"), items, concurrency=8)
    assert overlap.most_in_flight == 8
    assert [r.id for r in records] == [i.id for i in items]
    assert [r.answer for r in records] == [i.text for i in items]
    assert {r.status for r in records} == {"accepted"}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("failure", [
    Scripted(429, {"error": {"code": "429", "message": "slow down"}}, headers={"retry-after-ms": "10"}),
    Scripted(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}}),
], ids=["429", "503"])
def test_async_path_retries_transient_errors_like_the_blocking_path(tmp_path, wire, backend, failure):
    cascade = cascade_for(tmp_path, wire, backend, logprobs="true", max_attempts=3)
    tier, task, item = cascade.tiers.get("small"), cascade.tasks.get("ticket"), Item(id="a", text="billing")
    attempts = []
    for run in (lambda: run_tier(tier, task, item), lambda: cascade.run_on_own_loop(arun_tier(tier, task, item))):
        wire.requests.clear()
        wire.script += [failure, failure, answer_with_item_label]
        attempts.append(run())
        assert len(wire.requests) == 3
    blocking, awaited = attempts
    assert awaited.outcome == blocking.outcome == "answered"
    assert awaited.model_dump(exclude={"latency_ms"}) == blocking.model_dump(exclude={"latency_ms"})


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_path_gives_up_after_max_attempts_with_an_error_outcome(tmp_path, wire, backend):
    cascade = cascade_for(tmp_path, wire, backend, logprobs="true", max_attempts=2)
    wire.default = Scripted(500, {"error": {"code": "InternalServerError", "message": "down"}})
    record = cascade.run_batch(cascade.tasks.get("ticket"), [Item(id="a", text="billing")])[0]
    assert len(wire.requests) == 2
    assert record.status == "failed" and record.attempts[0].outcome == "error"


@pytest.mark.parametrize("backend", BACKENDS)
def test_async_sampling_with_n_asks_once_and_agrees_with_the_blocking_path(tmp_path, wire, backend):
    cascade = cascade_for(tmp_path, wire, backend, logprobs="false", samples=5, samples_per_request=5)
    body = chat_completion_choices([json.dumps({"label": r}) for r in
                                    ["billing", "billing", "technical", "billing", "nonsense"]])
    wire.default = Scripted(body=body)
    task, item = cascade.tasks.get("ticket"), Item(id="a", text="charged twice")
    blocking = cascade.process(task, item)
    assert len(wire.requests) == 1
    awaited = cascade.run_on_own_loop(cascade.aprocess(task, item))
    assert len(wire.requests) == 2
    assert wire.requests[1].body["n"] == 5
    assert (awaited.answer, awaited.confidence, awaited.attempts[0].tokens_in) == ("billing", 0.6, 42)
    assert awaited.model_dump(exclude={"latency_ms", "finished_at", "attempts"}) == \
        blocking.model_dump(exclude={"latency_ms", "finished_at", "attempts"})


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("replies, requests_made, status", [
    # threshold 0.8 of k=5: a first round of four; four agreeing settle it, two disagreeing too (escalated)
    (["billing"] * 5, 4, "accepted"),
    (["billing", "technical", "account", "billing", "billing"], 4, "needs_review"),
    (["billing", "billing", "technical", "billing", "billing"], 5, "accepted"),  # 3 of 4: one more decides
])
def test_async_sequential_sampling_stops_where_the_blocking_path_stops(tmp_path, wire, backend, replies,
                                                                        requests_made, status):
    cascade = cascade_for(tmp_path, wire, backend, threshold=0.8, logprobs="false", samples=5)
    task, item = cascade.tasks.get("ticket"), Item(id="a", text="charged twice")
    records = []
    for run in (lambda: cascade.process(task, item), lambda: cascade.run_on_own_loop(cascade.aprocess(task, item))):
        wire.requests.clear()
        wire.script += [Scripted(body=chat_completion(json.dumps({"label": r}))) for r in replies]
        records.append(run())
        wire.script.clear()
        assert len(wire.requests) == requests_made
    blocking, awaited = records
    assert awaited.status == blocking.status == status
    assert awaited.attempts[0].model_dump(exclude={"latency_ms"}) == blocking.attempts[0].model_dump(exclude={"latency_ms"})


def answer_with_logprob_in_item(request: Recorded) -> Scripted:
    """`billing`, with the log-probability the item's text names for every token ("nan", "inf", "1e-9", ...)."""
    value = float(label_of_item(request))
    return Scripted(body=chat_completion('{"label":"billing"}', tokens=[('{"label":"', value), ("billing", value),
                                                                       ('"}', value)]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_logprobs_that_are_not_log_probabilities_fail_only_their_item_as_invalid_output_on_both_paths(
        tmp_path, wire, backend):
    """A hair above 0 is an endpoint's rounding (probability 1) and -inf is probability 0; above 0 or NaN no
    distribution gives: that item's answer is unusable (escalates, its tokens paid), and its batch goes on."""
    cascade = cascade_for(tmp_path, wire, backend, threshold=0.9, logprobs="true")
    wire.default = answer_with_logprob_in_item
    task = cascade.tasks.get("ticket")
    texts = ["-0.01", "1e-9", "-inf", "0.5", "nan", "inf"]
    records = cascade.run_batch(task, [Item(id=t, text=t) for t in texts])
    blocking = [cascade.process(task, Item(id=t, text=t)) for t in texts]
    for batch in (records, blocking):
        assert [r.id for r in batch] == texts
        assert [r.status for r in batch] == ["accepted", "accepted"] + ["needs_review"] * 4
        assert batch[1].confidence == 1.0
        assert (batch[2].attempts[0].outcome, batch[2].confidence) == ("low_confidence", 0.0)
        bad = [r.attempts[0] for r in batch[3:]]
        assert all(a.outcome == "invalid_output" and "not a log-probability" in a.reason for a in bad), bad
        assert all(a.tokens_out == 7 for a in bad)  # what the endpoint reported: billed


def test_one_async_client_per_event_loop_reused_within_it_and_closable_before_the_loop_ends(tmp_path, wire):
    cascade = cascade_for(tmp_path, wire, "azure_openai", logprobs="true")
    wire.default = answer_with_item_label
    tier, task = cascade.tiers.get("small"), cascade.tasks.get("ticket")

    async def two_items() -> tuple[object, object]:
        await cascade.aprocess(task, Item(id="a", text="billing"))
        first = tier.async_client()
        await cascade.aprocess(task, Item(id="b", text="other"))
        return first, tier.async_client()

    loop = asyncio.new_event_loop()
    try:
        first, second = loop.run_until_complete(two_items())
        assert first is second
        assert cascade.run_on_own_loop(_client_of(tier)) is not first  # another loop, another client
        assert list(tier._async_clients) == [loop]  # run_on_own_loop closed and dropped its own
        loop.run_until_complete(cascade.tiers.aclose_async_clients())
        assert tier._async_clients == {}
    finally:
        loop.close()


async def _client_of(tier):
    return tier.async_client()


def test_http_batch_endpoint_runs_its_items_concurrently(tmp_path, wire, monkeypatch):
    from function_app import app
    from functions import services
    from localdev.host import LocalHost

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "ticket.yaml").write_text(TASK.format(threshold=0.5, tier="frontier"))
    for key, value in {"TASKS_DIR": tasks, "CONCURRENCY": 6, "FRONTIER_BACKEND": "azure_openai",
                       "FRONTIER_ENDPOINT": wire.url, "FRONTIER_MODEL": "gpt-4o", "FRONTIER_API_KEY": "sekret",
                       "FRONTIER_LOGPROBS": "true"}.items():
        monkeypatch.setenv(f"SMALLFIRST_{key}", str(value))
    services.reset()
    host = LocalHost(app, port=0)
    try:
        overlap = Overlap(expected=6)
        wire.default = overlap
        items = [{"id": f"i{n}", "text": LABELS[n % 4]} for n in range(9)]
        for _ in range(2):  # the second request reuses the worker loop's client
            response = host.handle_http("POST", "/api/tasks/ticket", {"content-type": "application/json"},
                                        json.dumps({"items": items}).encode())
            assert response.status_code == 200
            results = json.loads(response.get_body())["results"]
            assert [(r["id"], r["answer"]) for r in results] == [(i["id"], i["text"]) for i in items]
        assert overlap.most_in_flight == 6
        assert len(services.cascade().tiers.get("frontier")._async_clients) == 1
        host.worker_loop.call(services.cascade().tiers.aclose_async_clients)
    finally:
        host.stop()
        services.reset()


def test_smallfirst_run_sends_a_files_items_concurrently_and_writes_them_in_input_order(tmp_path, wire, monkeypatch):
    import importlib

    from typer.testing import CliRunner

    from shared.cli import app

    cli_module = importlib.import_module("shared.cli.run")  # the module of `smallfirst run`

    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "ticket.yaml").write_text(TASK.format(threshold=0.5, tier="small"))
    for key, value in {"TASKS_DIR": tasks, "CONCURRENCY": 4, "SMALL_BACKEND": "openai_compatible",
                       "SMALL_ENDPOINT": wire.url, "SMALL_LOGPROBS": "true"}.items():
        monkeypatch.setenv(f"SMALLFIRST_{key}", str(value))
    monkeypatch.setattr(cli_module, "RUN_CHUNK_ITEMS", 6)  # 10 items: two chunks, the second of 4
    overlap = Overlap(expected=4)
    wire.default = overlap
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"id": f"t{n}", "text": LABELS[n % 4]}) + "\n" for n in range(10)))
    out = tmp_path / "results.jsonl"
    ran = CliRunner().invoke(app, ["run", "ticket", "--input", str(items), "--output", str(out)],
                             catch_exceptions=False)
    assert ran.exit_code == 0, ran.output
    assert overlap.most_in_flight == 4
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["answer"]) for r in records] == [(f"t{n}", LABELS[n % 4]) for n in range(10)]
    assert "10 items" in ran.output and "10 accepted" in ran.output


def test_the_async_client_is_the_openai_sdks_own_on_its_aiohttp_transport(tmp_path, wire):
    import openai

    cascade = cascade_for(tmp_path, wire, "azure_openai", logprobs="true")
    tier = cascade.tiers.get("small")

    async def client_of_this_loop():
        try:
            return tier.async_client()
        finally:
            await tier.aclose_async_client()

    client = asyncio.run(client_of_this_loop())
    assert isinstance(client, openai.AsyncOpenAI)
    assert isinstance(client._client, openai.DefaultAioHttpClient)  # the SDK's http client, over aiohttp
    assert client.max_retries == 0  # retries are ours

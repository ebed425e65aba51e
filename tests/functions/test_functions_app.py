"""The Functions app end to end: real Azurite, the local host calling the registered functions, real HTTP."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest
from azure.storage.blob import BlobServiceClient

from localdev.azurite import Azurite
from localdev.host import LocalHost, max_polling_interval_s
from shared.pipeline.blob_names import Containers
from shared.foundation.storage_connections import queue_service
from shared.pipeline.storage import ensure_queue, queue_client
from tests.conftest import REPO, dataset_rows

pytestmark = pytest.mark.azurite
MAX_BLOB_BYTES = 50_000


@pytest.fixture(scope="module")
def azurite(tmp_path_factory):
    tasks_dir = tmp_path_factory.mktemp("tasks")
    shutil.copytree(REPO / "tasks", tasks_dir, dirs_exist_ok=True)
    small_only = (tasks_dir / "support_ticket.yaml").read_text().replace("tiers:\n- trained\n", "tiers:\n")
    (tasks_dir / "ticket_small.yaml").write_text(small_only.replace("name: support_ticket", "name: ticket_small"))
    (tasks_dir / "frontier_only.yaml").write_text(
        "kind: classification\ninstruction: route\ntiers: [frontier]\nlabels: [{name: a}, {name: b}]\n")
    (tasks_dir / "broken.yaml").write_text(  # an operator's mistake: a $ref that resolves nowhere
        "kind: extraction\ninstruction: x\nschema: {type: object, properties: {a: {$ref: '#/$defs/gone'}}}\n")
    with Azurite() as emulator:
        env = {"DataStorage": emulator.connection_string, "SMALLFIRST_TASKS_DIR": str(tasks_dir),
               "SMALLFIRST_CHUNK_ITEMS": "3", "SMALLFIRST_MAX_BLOB_BYTES": str(MAX_BLOB_BYTES)}
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        from functions import services
        services.reset()
        services.blob_store().ensure_containers(Containers().all())
        yield emulator
        services.reset()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def host(azurite):
    from function_app import app

    local = LocalHost(app, port=0, poll_s=0.2).start()  # host.json's maxDequeueCount, as the runtime
    yield local
    local.stop()


@pytest.fixture(scope="module")
def blobs(azurite) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(azurite.connection_string)


def upload(blobs, path: str, data: bytes) -> str:
    client = blobs.get_blob_client("incoming", path)
    client.upload_blob(data, overwrite=True)
    return client.get_blob_properties().etag


def wait_for(blobs, container: str, name: str, timeout_s: float = 120.0) -> bytes:
    client = blobs.get_blob_client(container, name)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if client.exists():
            return client.download_blob().readall()
        time.sleep(0.2)
    raise AssertionError(f"{container}/{name} did not appear within {timeout_s}s")


def http(host, method: str, path: str, body: bytes | None = None) -> tuple[int, str, dict]:
    request = urllib.request.Request(f"http://127.0.0.1:{host.port}{path}", data=body, method=method,
                                     headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.headers["content-type"], json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, err.headers["content-type"], json.loads(err.read())


def test_app_indexes_its_functions_without_heavy_imports():
    code = ("import sys, json, function_app; "
            "print(json.dumps({'functions': {f.get_function_name(): f.get_trigger().get_binding_name() "
            "for f in function_app.app.get_functions()}, 'heavy': [m for m in ('llama_cpp', 'openai', "
            "'azure.ai.inference', 'numpy', 'shared.core.cascade', 'matplotlib', 'azure.monitor.opentelemetry', "
            "'opentelemetry.sdk') if m in sys.modules]}))")
    out = json.loads(subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout)
    assert out["functions"] == {
        "process_incoming_blob": "blobTrigger", "process_work": "queueTrigger",
        "deadletter_poison_work": "queueTrigger", "run_task": "httpTrigger", "list_tasks": "httpTrigger",
        "health": "httpTrigger", "retrain_heads": "timerTrigger", "shadow_accepted_item": "queueTrigger",
        "deadletter_poison_shadow": "queueTrigger", "list_review": "httpTrigger", "decide_review": "httpTrigger",
    }
    assert out["heavy"] == []


def test_idle_host_backs_off_its_polling_and_an_invocation_wakes_it(azurite):
    """Idle polls are storage calls and CPU taken from the functions: while nothing is found the wait doubles up
    to max_poll_s (the runtime's queue listener does the same up to maxPollingInterval); an invocation that
    ends may have queued work, so it makes the host poll at once."""
    from function_app import app

    idle = LocalHost(app, port=0, poll_s=0.05, max_poll_s=5.0, poll_blobs=False).start()
    try:
        time.sleep(3.0)  # 0.05 + 0.1 + 0.2 + ... reaches the 5 s cap within about 3 s
        before = idle.polls
        time.sleep(4.0)
        assert idle.polls - before <= 2  # without the back-off: 80 polls in these 4 s
        before, deadline = idle.polls, time.monotonic() + 10.0
        while idle.polls == before and time.monotonic() < deadline:  # a poll has just been made: the next is 5 s away
            time.sleep(0.01)
        before = idle.polls
        assert http(idle, "GET", "/api/tasks")[0] == 200
        deadline = time.monotonic() + 1.0
        while idle.polls == before and time.monotonic() < deadline:
            time.sleep(0.02)
        assert idle.polls > before  # well before the 5 s wait would have ended
    finally:
        idle.stop()


def test_host_with_queue_polling_off_receives_no_message_until_it_is_turned_on(azurite):
    """The benchmark's HTTP batch runs with queue polling off (in Azure the Functions host polls from its own
    process): off, a waiting message stays in its queue, untouched; on, it is delivered to its function."""
    import azure.functions as func

    received: list[str] = []
    probe = func.FunctionApp()

    @probe.queue_trigger(arg_name="message", queue_name="probe-polling", connection="DataStorage")
    def take(message: func.QueueMessage) -> None:
        received.append(message.get_body().decode())

    queue = queue_client(queue_service("DataStorage"), "probe-polling")
    queue.create_queue()
    queue.send_message("waiting")
    local = LocalHost(probe, port=0, poll_s=0.05, max_poll_s=0.05, poll_queues=False).start()
    try:
        time.sleep(0.5)
        assert local.polls >= 3 and received == []
        assert [m.content for m in queue.peek_messages()] == ["waiting"]  # not even received and hidden
        local.poll_queues = True
        deadline = time.monotonic() + 10.0
        while not received and time.monotonic() < deadline:
            time.sleep(0.05)
        assert received == ["waiting"]
    finally:
        local.stop()
        queue.delete_queue()


def test_polling_interval_is_read_from_host_json(tmp_path):
    (tmp_path / "host.json").write_text('{"extensions": {"queues": {"maxPollingInterval": "00:01:30"}}}')
    assert max_polling_interval_s(tmp_path / "host.json") == 90.0
    (tmp_path / "host.json").write_text('{"extensions": {"queues": {"maxPollingInterval": "1.00:00:00.5"}}}')
    assert max_polling_interval_s(tmp_path / "host.json") == 86400.5
    (tmp_path / "host.json").write_text('{"version": "2.0"}')
    assert max_polling_interval_s(tmp_path / "host.json") == 60.0  # the runtime's default
    assert max_polling_interval_s() == 2.0  # this app's host.json


def test_text_blob_gives_a_result_record_and_stays_untouched(host, blobs):
    data = b"I was billed twice for the same invoice this month."
    etag = upload(blobs, "support_ticket/ticket-1.txt", data)
    record = json.loads(wait_for(blobs, "results", "support_ticket/ticket-1.txt.json"))
    assert record["id"] == "ticket-1" and record["task"] == "support_ticket"
    assert record["tier"] == "trained" and record["answer"] == "billing" and 0 <= record["confidence"] <= 1
    assert record["status"] in {"accepted", "needs_review"}  # no frontier configured
    source = blobs.get_blob_client("incoming", "support_ticket/ticket-1.txt")
    assert source.download_blob().readall() == data and source.get_blob_properties().etag == etag
    meta = blobs.get_blob_client("results", "support_ticket/ticket-1.txt.json").get_blob_properties().metadata
    assert meta["source"] == "incoming/support_ticket/ticket-1.txt" and len(meta["source_sha256"]) == 64


def test_jsonl_results_in_order_and_bad_lines_dead_lettered(host, blobs):
    rows = dataset_rows("banking77", limit=3, stride=300)
    lines = [json.dumps({"id": r["id"], "text": r["text"]}) for r in rows] + ["{not json"]
    upload(blobs, "support_ticket/batch.jsonl", "\n".join(lines).encode())
    results = wait_for(blobs, "results", "support_ticket/batch.jsonl.jsonl").decode().splitlines()
    assert [json.loads(line)["id"] for line in results] == [r["id"] for r in rows]
    dead = json.loads(wait_for(blobs, "deadletter", "support_ticket/batch.jsonl.json"))
    assert dead["reason"] == "invalid_lines" and dead["lines"][0]["line"] == 4


def test_large_jsonl_fans_out_to_parts_and_completes(host, blobs):
    rows = dataset_rows("banking77", limit=7, stride=200)
    upload(blobs, "support_ticket/big.jsonl", "\n".join(json.dumps({"id": r["id"], "text": r["text"]}) for r in rows).encode())
    deadline = time.monotonic() + 180
    manifest = {}
    while time.monotonic() < deadline and not manifest.get("complete"):
        time.sleep(0.5)
        client = blobs.get_blob_client("results", "support_ticket/big.jsonl/manifest.json")
        manifest = json.loads(client.download_blob().readall()) if client.exists() else {}
    assert manifest.get("complete") is True and manifest["parts"] == 3
    ids = []
    for part in range(3):
        ids += [json.loads(line)["id"] for line in
                wait_for(blobs, "results", f"support_ticket/big.jsonl/part-{part:05d}.jsonl").decode().splitlines()]
    assert ids == [r["id"] for r in rows]


def test_duplicate_delivery_is_not_processed_or_paid_again(host, blobs):
    from functions import services

    upload(blobs, "ticket_small/dup.txt", b"My password reset email never arrives")
    assert json.loads(wait_for(blobs, "results", "ticket_small/dup.txt.json"))["tier"] == "small"
    result = blobs.get_blob_client("results", "ticket_small/dup.txt.json")
    written = result.get_blob_properties().last_modified
    tier = services.cascade().tiers.get("small")
    before = tier.evaluated_tokens
    source = blobs.get_blob_client("incoming", "ticket_small/dup.txt")
    redelivered = services.ingestor().handle_blob(source)  # the same event delivered again
    assert redelivered.disposition == "duplicate"
    finished = host.finished_invocations
    upload(blobs, "ticket_small/dup.txt", b"My password reset email never arrives")  # re-upload, new etag
    deadline = time.monotonic() + 30
    while host.finished_invocations == finished and time.monotonic() < deadline:
        time.sleep(0.1)
    assert host.finished_invocations > finished, "the host never handled the re-upload"
    assert tier.evaluated_tokens == before
    assert result.get_blob_properties().last_modified == written


@pytest.mark.parametrize("path,data,reason", [
    ("no_such_task/a.txt", b"hello", "unknown_task"),
    ("broken/a.txt", b"hello", "invalid_task"),
    ("support_ticket/bad.txt", b"\xfa\xfb\x00bad", "invalid_utf8"),
    ("support_ticket/empty.txt", b"", "empty"),
    ("support_ticket/huge.txt", b"x" * (MAX_BLOB_BYTES + 1), "too_large"),
    ("support_ticket/x.pdf", b"%PDF-1.4", "unsupported_format"),
])
def test_bad_blobs_are_dead_lettered_with_reasons(host, blobs, path, data, reason):
    upload(blobs, path, data)
    task, name = path.split("/", 1)
    dead = json.loads(wait_for(blobs, "deadletter", f"{task}/{name}.json"))
    assert dead["reason"] == reason and dead["source"] == f"incoming/{path}"
    assert blobs.get_blob_client("incoming", path).download_blob().readall() == data


@pytest.mark.parametrize("raw", ["not base64 !!!", "/+/6"], ids=["not-base64", "base64-of-bytes-not-utf8"])
def test_a_work_message_the_trigger_cannot_decode_goes_to_the_poison_queue_at_once_and_becomes_a_dead_letter(
        host, azurite, blobs, raw):
    ensure_queue(queue_service("DataStorage").get_queue_client("smallfirst-work")).send_message(raw)  # not base64
    digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
    dead = json.loads(wait_for(blobs, "deadletter", f"_/poison-{digest}.json", timeout_s=90))  # polls back off
    assert (dead["reason"], dead["message"]) == ("poison_message", raw)


def test_a_message_on_the_work_queue_that_is_not_work_is_dead_lettered_at_once_with_why(host, azurite, blobs):
    text = "{not a work message"  # no try could use it: not retried up to the poison queue
    queue_client(queue_service("DataStorage"), "smallfirst-work").send_message(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    dead = json.loads(wait_for(blobs, "deadletter", f"_/invalid-{digest}.json", timeout_s=90))
    assert (dead["reason"], dead["message"]) == ("invalid_message", text) and "Invalid JSON" in dead["error"]


def test_a_shadow_message_that_is_not_a_shadow_request_is_dead_lettered_at_once_with_why(host, azurite, blobs):
    text = "{not a shadow request"  # no try could use it: not retried up to the poison queue
    queue_client(queue_service("DataStorage"), "smallfirst-shadow").send_message(text)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    dead = json.loads(wait_for(blobs, "deadletter", f"_/shadow-invalid-{digest}.json", timeout_s=90))
    assert (dead["reason"], dead["message"]) == ("invalid_shadow_message", text)


def test_a_shadow_message_the_trigger_cannot_decode_goes_to_the_poison_queue_and_becomes_a_dead_letter_with_the_count(
        host, azurite, blobs):
    raw = "not base64 !!!"
    ensure_queue(queue_service("DataStorage").get_queue_client("smallfirst-shadow")).send_message(raw)
    digest = hashlib.sha256(raw.encode()).hexdigest()[:16]
    dead = json.loads(wait_for(blobs, "deadletter", f"_/shadow-poison-{digest}.json", timeout_s=90))
    # 5: host.json's maxDequeueCount, which the poison handler reports
    assert (dead["reason"], dead["message"], dead["error"]) == (
        "poison_shadow_message", raw, "not a shadow request; failed 5 times")


def test_http_single_item_items_object_and_bare_array(host):
    status, ctype, body = http(host, "POST", "/api/tasks/support_ticket", json.dumps({"id": "a", "text": "refund me"}).encode())
    assert status == 200 and ctype == "application/json" and body["id"] == "a" and body["task"] == "support_ticket"
    items = [{"id": f"i{n}", "text": t} for n, t in enumerate(["app crashes", "refund", "new password", "hello"])]
    status, _, body = http(host, "POST", "/api/tasks/support_ticket", json.dumps({"items": items}).encode())
    assert status == 200 and [r["id"] for r in body["results"]] == ["i0", "i1", "i2", "i3"]
    status, _, body = http(host, "POST", "/api/tasks/support_ticket", json.dumps([{"id": 9, "text": "refund"}]).encode())
    assert status == 200 and [r["id"] for r in body["results"]] == ["9"]  # a bare array is a batch; ids as text


def test_route_values_reach_the_function_percent_decoded_as_in_azure(host):
    status, _, body = http(host, "POST", "/api/tasks/support%5Fticket", json.dumps({"id": "a", "text": "refund"}).encode())
    assert status == 200 and body["task"] == "support_ticket"
    status, _, body = http(host, "POST", "/api/tasks/no%2Fsuch", b'{"text": "x"}')  # an encoded / stays encoded,
    assert status == 404 and "no%2Fsuch" in body["detail"]  # as ASP.NET Core keeps it


@pytest.mark.parametrize("length", ["abc", "-1", "99999999999999999999"])
def test_a_request_whose_content_length_is_not_a_length_is_a_400_not_a_hang(host, length):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
    connection.putrequest("POST", "/api/tasks/support_ticket")
    connection.putheader("Content-Length", length)
    connection.endheaders(b'{"text": "x"}')
    response = connection.getresponse()
    assert response.status == 400 and "is not a length" in json.loads(response.read())["detail"]
    connection.close()


def test_head_and_options_get_a_problem_reply_and_the_connection_stays_usable(host):
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    for method in ("HEAD", "OPTIONS"):  # no function serves them: a 404 problem, not the server's 501 page
        connection.request(method, "/api/health")
        response = connection.getresponse()
        body = response.read()
        assert (response.status, response.headers["content-type"]) == (404, "application/problem+json")
        if method == "HEAD":
            assert body == b""
        else:
            assert json.loads(body)["status"] == 404
    connection.request("GET", "/api/health")  # on the same connection: a HEAD reply left no body behind
    response = connection.getresponse()
    assert response.status == 200 and json.loads(response.read())["status"] == "ok"
    connection.close()


def test_http_catalogue_and_health(host):
    status, _, body = http(host, "GET", "/api/tasks")
    names = {t["name"]: t for t in body["tasks"]}
    assert status == 200 and {"support_ticket", "banking77", "clinc150", "receipt"} <= set(names)
    assert names["receipt"]["schema"]["required"] == ["company", "date", "address", "total"]
    assert [label["name"] for label in names["support_ticket"]["labels"]] == ["billing", "technical", "account", "other"]
    assert "does not resolve" in names["broken"]["error"]  # listed with its problem, hiding no other task
    status, _, body = http(host, "GET", "/api/health")
    assert status == 200 and body["tiers"]["small"]["ok"] is True


@pytest.mark.parametrize("method,path,body,status", [
    ("POST", "/api/tasks/support_ticket", b"{broken", 400),
    ("POST", "/api/tasks/nope", b'{"text": "x"}', 404),
    ("POST", "/api/tasks/broken", b'{"text": "x"}', 500),
    ("GET", "/api/review/broken", None, 401),  # no reviewer's principal (tests/security has the rest)
    ("POST", "/api/review/broken/a", json.dumps({"decision": "accept", "source": "broken/a"}).encode(), 401),
    ("POST", "/api/tasks/support_ticket", json.dumps({"items": [{"text": "x"}] * 101}).encode(), 413),
    ("POST", "/api/tasks/support_ticket", json.dumps({"text": "x" * 9000}).encode(), 413),
    ("POST", "/api/tasks/support_ticket", json.dumps({"id": "a"}).encode(), 422),
    ("POST", "/api/tasks/support_ticket", json.dumps({"items": []}).encode(), 422),
    ("POST", "/api/tasks/frontier_only", json.dumps({"text": "x"}).encode(), 503),
    ("GET", "/api/nowhere", None, 404),
    ("POST", "/api/tasks/" + "a" * 300, b'{"text": "x"}', 404),  # longer than a file name may be
    ("GET", "/api/review/" + "a" * 300, None, 401),
    ("POST", "/api/tasks/support_ticket", json.dumps({"text": "x"}).encode() + b" " * (1024 * 1024), 413),
])
def test_http_errors_are_problem_json(host, method, path, body, status):
    got, ctype, problem = http(host, method, path, body)
    assert got == status and ctype == "application/problem+json"
    assert problem["status"] == status and problem["title"] and problem["detail"]


@pytest.mark.parametrize("body,status,reason", [
    (b"[" * 100_000 + b"]" * 100_000, 400, "too_deeply_nested"),
    (json.dumps({"id": "a", "text": "   "}).encode(), 422, "empty_text"),
    (json.dumps({"items": [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]}).encode(), 422, "duplicate_id"),
])
def test_http_rejects_what_the_blob_path_dead_letters(host, body, status, reason):
    got, ctype, problem = http(host, "POST", "/api/tasks/support_ticket", body)
    assert (got, ctype, problem["reason"]) == (status, "application/problem+json", reason)

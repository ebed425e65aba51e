"""Hostile requests against the local host on Azurite (issue 31): each is refused with its status and problem code,
and nothing is written. Review items are seeded as the pipeline leaves them; no model is called."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import time

import pytest

from azure.storage.queue import TextBase64EncodePolicy

from localdev.azurite import Azurite
from localdev.host import LocalHost
from shared.foundation.principal import (AUTH_ENABLED_SETTING, PRINCIPAL_HEADER, TRUST_PRINCIPAL_SETTING,
                                         ClientPrincipal, PrincipalClaim, encode_principal)
from shared.foundation.rate_limit import CallerRateLimit
from shared.foundation.records import CorrectionRecord, ResultRecord
from shared.foundation.storage_connections import queue_service
from shared.pipeline.blob_names import HASH_KEY, Containers, InputBlob, correction
from shared.pipeline.review import ReviewQueue
from shared.pipeline.storage import BlobStore

pytestmark = pytest.mark.azurite
TASK = "sectask"
TASK_YAML = "kind: classification\ninstruction: route\ntiers: [small]\nlabels: [{name: billing}, {name: other}]\n"


def principal(*roles: str, name: str = "Rev Iewer", oid: str = "oid-rev") -> str:
    claims = [PrincipalClaim(typ="name", val=name), PrincipalClaim(typ="oid", val=oid)]
    return encode_principal(ClientPrincipal(auth_typ="aad", name_typ="name", role_typ="roles",
                                            claims=claims + [PrincipalClaim(typ="roles", val=r) for r in roles]))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tasks_dir = tmp_path_factory.mktemp("tasks")
    (tasks_dir / f"{TASK}.yaml").write_text(TASK_YAML)
    with Azurite() as emulator:
        # The requests imitate App Service Authentication's principal header, so the app is told to believe it;
        # tests of the header ignored take the setting away.
        values = {"DataStorage": emulator.connection_string, "SMALLFIRST_TASKS_DIR": str(tasks_dir),
                  "SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": "http://127.0.0.1:9/",
                  TRUST_PRINCIPAL_SETTING: "trust"}
        saved = {k: os.environ.get(k) for k in [*values, AUTH_ENABLED_SETTING]}
        os.environ.pop(AUTH_ENABLED_SETTING, None)
        os.environ.update(values)
        from functions import services

        services.reset()
        services.blob_store().ensure_containers(Containers().all())
        yield services.blob_store()
        services.reset()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


def start_host(**kwargs) -> LocalHost:
    from function_app import app

    return LocalHost(app, port=0, poll_s=0.2, poll_blobs=False, **kwargs).start()


@pytest.fixture(scope="module")
def platform(env):
    """The local host; with the module's trust setting the app believes X-MS-CLIENT-PRINCIPAL, as behind App
    Service Authentication."""
    host = start_host()
    yield host
    host.stop()


def seed(store: BlobStore, name: str, ids: list[str]) -> str:
    """An input whose items wait in review, as the pipeline leaves them; returns its source."""
    source = InputBlob(TASK, f"{name}.jsonl")
    data = "".join(json.dumps({"id": i, "text": f"text of {i}"}) + "\n" for i in ids)
    sha = hashlib.sha256(data.encode()).hexdigest()
    store.write("incoming", source.incoming_path, data, content_type="application/x-ndjson", metadata={})
    records = "".join(ResultRecord(id=i, task=TASK, status="needs_review", answer="billing").model_dump_json() + "\n"
                      for i in ids)
    for container in ("results", "review"):
        store.write(container, source.review, records, content_type="application/x-ndjson", metadata={HASH_KEY: sha})
    return source.path


def send(host: LocalHost, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         send_body: bool = True) -> tuple[int, dict[str, str], dict]:
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=60)
    connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
    merged = {"Host": f"127.0.0.1:{host.port}", "Content-Type": "application/json",
              "Content-Length": str(len(body)), **(headers or {})}
    for key, value in merged.items():
        connection.putheader(key, value)
    connection.endheaders(body if send_body else None)
    response = connection.getresponse()
    payload = response.read()
    connection.close()
    return response.status, {k.lower(): v for k, v in response.headers.items()}, json.loads(payload) if payload else {}


def decision(source: str, **extra) -> bytes:
    return json.dumps({"decision": "accept", "source": source, **extra}).encode()


def untouched(store: BlobStore, source: str, item_id: str) -> bool:
    """No correction written, the item still waiting and its result not reviewed."""
    blob = InputBlob.from_path(source)
    results = [ResultRecord.model_validate_json(line) for line in store.read("results", blob.review).splitlines()]
    return (store.state("corrections", correction(TASK, source, item_id)) is None
            and any(p.record.id == item_id for p in ReviewQueue(store, _tasks()).pending(TASK))
            and all(r.status == "needs_review" for r in results))


def _tasks():
    from functions import services

    return services.cascade().tasks


@pytest.mark.parametrize("headers,status,code", [
    ({}, 401, "not_authenticated"),
    ({PRINCIPAL_HEADER: principal("Caller")}, 403, "forbidden"),
    ({PRINCIPAL_HEADER: "not base64 !"}, 401, "invalid_principal"),
], ids=["no-principal", "caller-role-only", "malformed-principal"])
def test_a_review_decision_without_the_reviewer_role_is_refused_and_writes_nothing(env, platform, headers, status,
                                                                                   code):
    source = seed(env, f"norole-{code}", ["a"])
    got, _, problem = send(platform, "POST", f"/api/review/{TASK}/a", decision(source), headers)
    assert (got, problem["code"]) == (status, code)
    assert untouched(env, source, "a")
    listed, _, problem = send(platform, "GET", f"/api/review/{TASK}", headers=headers)  # nor can it read the texts
    assert (listed, problem["code"]) == (status, code) and "items" not in problem


def test_a_reviewers_decision_is_stored_under_the_principal_and_the_bodys_by_is_ignored(env, platform):
    source = seed(env, "byignored", ["a"])
    got, _, body = send(platform, "POST", f"/api/review/{TASK}/a", decision(source, by="mallory"),
                        {PRINCIPAL_HEADER: principal("Reviewer", name="Ana Reviewer", oid="oid-ana")})
    assert got == 200 and body["by"] == "Ana Reviewer (oid-ana)"
    stored = CorrectionRecord.model_validate_json(env.read("corrections", correction(TASK, source, "a")))
    assert stored.by == "Ana Reviewer (oid-ana)" and "mallory" not in env.read("results", InputBlob.from_path(
        source).review).decode()


@pytest.mark.parametrize("auth_enabled", [None, "False"], ids=["core-tools", "easy-auth-off"])
def test_a_client_sent_principal_is_ignored_without_app_service_authentication_or_the_trust_setting(
        env, platform, monkeypatch, auth_enabled):
    monkeypatch.delenv(TRUST_PRINCIPAL_SETTING)
    if auth_enabled is not None:
        monkeypatch.setenv(AUTH_ENABLED_SETTING, auth_enabled)
    source = seed(env, f"forged-{auth_enabled}", ["a"])
    headers = {PRINCIPAL_HEADER: principal("Reviewer")}
    got, _, problem = send(platform, "POST", f"/api/review/{TASK}/a", decision(source), headers)
    assert (got, problem["code"]) == (401, "not_authenticated") and untouched(env, source, "a")
    listed, _, problem = send(platform, "GET", f"/api/review/{TASK}", headers=headers)
    assert (listed, problem["code"]) == (401, "not_authenticated") and "items" not in problem


def test_the_principal_header_is_honoured_where_app_service_authentication_is_on(env, platform, monkeypatch):
    monkeypatch.delenv(TRUST_PRINCIPAL_SETTING)
    monkeypatch.setenv(AUTH_ENABLED_SETTING, "True")  # what the platform injects when it is on
    source = seed(env, "easyauth", ["a"])
    got, _, body = send(platform, "POST", f"/api/review/{TASK}/a", decision(source),
                        {PRINCIPAL_HEADER: principal("Reviewer", name="Bo Reviewer", oid="oid-bo")})
    assert (got, body["by"]) == (200, "Bo Reviewer (oid-bo)")
    assert env.state("corrections", correction(TASK, source, "a")) is not None


@pytest.mark.parametrize("headers,status,code", [
    ({}, 401, "not_authenticated"),
    ({"x-functions-key": "the-inference-key"}, 401, "not_authenticated"),  # a key alone is not enough in this mode
    ({PRINCIPAL_HEADER: principal("Reviewer")}, 403, "forbidden"),
    ({PRINCIPAL_HEADER: "not base64 !"}, 401, "invalid_principal"),
], ids=["no-principal", "function-key-only", "reviewer-role-only", "malformed-principal"])
def test_with_caller_auth_entra_an_inference_request_without_the_caller_role_is_refused(env, platform, monkeypatch,
                                                                                        headers, status, code):
    monkeypatch.setenv("SMALLFIRST_CALLER_AUTH", "entra")
    for method, path, body in [("GET", "/api/tasks", b""), ("GET", "/api/health", b""),
                               ("POST", f"/api/tasks/{TASK}", b'{"text": "refund me"}')]:
        got, _, problem = send(platform, method, path, body, headers)
        assert (got, problem["code"]) == (status, code), path


def test_with_caller_auth_entra_a_principal_with_the_caller_role_is_served(env, platform, monkeypatch):
    monkeypatch.setenv("SMALLFIRST_CALLER_AUTH", "entra")
    got, _, body = send(platform, "GET", "/api/tasks", headers={PRINCIPAL_HEADER: principal("Caller", oid="oid-app")})
    assert got == 200 and TASK in [t["name"] for t in body["tasks"]]


def test_an_oversize_content_length_is_refused_with_413_before_any_body_is_sent(env, platform):
    source = seed(env, "oversize", ["a"])
    # Only the headers go out: a reply proves the host did not wait to read the gigabyte it was promised.
    got, headers, problem = send(platform, "POST", f"/api/review/{TASK}/a", b"", send_body=False,
                                 headers={"Content-Length": str(10**9), PRINCIPAL_HEADER: principal("Reviewer")})
    assert (got, problem["code"], headers["content-type"]) == (413, "too_large", "application/problem+json")
    assert untouched(env, source, "a")


def test_the_app_refuses_a_body_over_its_cap_on_content_length_where_the_host_allows_more(env):
    from functions.http_api import MAX_BODY_BYTES

    host = start_host(max_body_bytes=4 * MAX_BODY_BYTES)
    try:
        source = seed(env, "appcap", ["a"])
        body = decision(source) + b" " * MAX_BODY_BYTES
        got, _, problem = send(host, "POST", f"/api/review/{TASK}/a", body, {PRINCIPAL_HEADER: principal("Reviewer")})
        assert (got, problem["code"]) == (413, "request_too_large") and untouched(env, source, "a")
        got, _, problem = send(host, "POST", f"/api/tasks/{TASK}", b'{"text": "x"}' + b" " * MAX_BODY_BYTES)
        assert (got, problem["code"]) == (413, "request_too_large")
    finally:
        host.stop()


@pytest.mark.parametrize("headers,status,code", [
    ({"Host": "evil.example:80"}, 400, "invalid_host"),  # DNS rebinding: a foreign name resolving to 127.0.0.1
    ({"Host": "127.0.0.1:1"}, 400, "invalid_host"),  # another port's name
    ({"Origin": "https://evil.example"}, 403, "cross_origin"),  # a web page the developer visits
    ({"Origin": "null"}, 403, "cross_origin"),  # a sandboxed frame
], ids=["foreign-host", "other-port", "foreign-origin", "null-origin"])
def test_the_local_host_refuses_foreign_hosts_and_cross_origin_writes_and_writes_nothing(env, platform, headers,
                                                                                       status, code):
    source = seed(env, f"csrf-{code}-{len(headers['Host' if 'Host' in headers else 'Origin'])}", ["a"])
    got, _, problem = send(platform, "POST", f"/api/review/{TASK}/a", decision(source),
                           {PRINCIPAL_HEADER: principal("Reviewer"), **headers})
    assert (got, problem["code"]) == (status, code) and untouched(env, source, "a")


def test_the_local_hosts_own_origin_and_localhost_name_are_served(env, platform):
    source = seed(env, "sameorigin", ["a"])
    got, _, body = send(platform, "POST", f"/api/review/{TASK}/a", decision(source),
                        {PRINCIPAL_HEADER: principal("Reviewer"), "Host": f"localhost:{platform.port}",
                         "Origin": f"http://localhost:{platform.port}"})
    assert got == 200 and body["decision"] == "accept"


class CountingStore(BlobStore):
    """Records every storage call a decision makes: (method, container, name or prefix)."""

    def __init__(self, service) -> None:
        super().__init__(service)
        self.calls: list[tuple[str, str, str]] = []

    def state(self, container, name):
        self.calls.append(("state", container, name))
        return super().state(container, name)

    def read(self, container, name, **kwargs):
        self.calls.append(("read", container, name))
        return super().read(container, name, **kwargs)

    def list_states(self, container, prefix):
        self.calls.append(("list", container, prefix))
        return super().list_states(container, prefix)

    def write(self, container, name, *args, **kwargs):
        self.calls.append(("write", container, name))
        return super().write(container, name, *args, **kwargs)

    def delete(self, container, name, state=None):
        self.calls.append(("delete", container, name))
        return super().delete(container, name, state)


def test_one_decision_reads_only_its_own_input_however_many_wait_in_review(env):
    sources = [seed(env, f"queue-{n}", [f"q{n}-0", f"q{n}-1"]) for n in range(12)]
    counted = CountingStore(env.service)
    queue = ReviewQueue(counted, _tasks())
    queue.decide(TASK, "q5-0", "accept", by="ana", source=sources[5])
    own = InputBlob.from_path(sources[5])
    assert [c for c in counted.calls if c[0] == "list"] == [("list", "review", own.part_prefix)]  # no queue scan
    touched = {name for _, container, name in counted.calls if container in ("incoming", "review", "results")}
    assert touched <= {own.incoming_path, own.review, own.result_single, own.part_prefix}
    assert len(counted.calls) <= 14  # a handful of calls, the same for 12 inputs waiting as for one


@pytest.mark.parametrize("field,value", [
    ("name", "../../results/x.jsonl"), ("name", "a/./b"), ("name", "a//b"), ("name", ""), ("task", ".."),
    ("sha256", "abc"), ("sha256", "g" * 64), ("sha256", "../" * 22),
])
def test_a_forged_work_message_is_dead_lettered_with_why_and_claims_nothing(env, platform, field, value):
    message = {"task": TASK, "name": "ok.jsonl", "sha256": "0" * 64, "etag": "e", "start": 0, "end": 1, field: value}
    text = json.dumps(message)
    queue_service("DataStorage").get_queue_client("smallfirst-work", message_encode_policy=TextBase64EncodePolicy()) \
        .send_message(text)
    name = f"_/invalid-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    deadline = time.monotonic() + 60
    while env.state("deadletter", name) is None:
        assert time.monotonic() < deadline, f"{name} not written"
        time.sleep(0.2)
    dead = json.loads(env.read("deadletter", name))
    assert dead["reason"] == "invalid_message" and field in dead["error"]
    assert not env.list_states("claims", "")  # no blob was named from the message


def test_a_caller_over_its_budget_gets_429_with_retry_after(env, platform, monkeypatch):
    from functions import services

    monkeypatch.setattr(services, "rate_limit", lambda: limit)
    limit = CallerRateLimit(per_second=0.001, burst=2)
    statuses = [send(platform, "GET", "/api/tasks")[0] for _ in range(3)]
    got, headers, problem = send(platform, "GET", "/api/tasks")
    assert statuses == [200, 200, 429] and (got, problem["code"]) == (429, "too_many_requests")
    assert int(headers["retry-after"]) >= 1
    other, _, _ = send(platform, "GET", "/api/tasks", headers={"x-functions-key": "another caller"})
    assert other == 200  # a bucket per caller


def test_the_token_bucket_refills_at_its_rate_and_keeps_callers_apart():
    now = [0.0]
    limit = CallerRateLimit(per_second=2, burst=2, clock=lambda: now[0])
    assert [limit.take("a"), limit.take("a")] == [0.0, 0.0] and limit.take("a") == pytest.approx(0.5)
    assert limit.take("b") == 0.0
    now[0] = 0.5
    assert limit.take("a") == 0.0 and limit.take("a") > 0


def valid_shadow_request(**changes) -> dict:
    return {"task": TASK, "source": f"incoming/{TASK}/ok.jsonl", "id": "1", "text": "refund me",
            "accepted_tier": "small", "accepted_answer": "billing", "accepted_confidence": 0.9, **changes}


@pytest.mark.parametrize("field,value", [
    ("task", ".."), ("task", "a/b"), ("task", ""), ("task", "nosuchtask"), ("task", "x" * 101),
    ("source", "incoming/../results/x.jsonl"), ("source", "incoming//x"), ("source", "incoming/./x"),
    ("source", ""), ("id", ""), ("id", "i" * 513), ("text", ""), ("accepted_tier", ""),
    ("accepted_confidence", 7.0), ("message", "not json at all"), ("message", "x" * 48_001),
])
def test_a_forged_shadow_message_is_dead_lettered_with_why_and_writes_nothing_else(env, platform, field, value):
    text = value if field == "message" else json.dumps(valid_shadow_request(**{field: value}))
    queue = queue_service("DataStorage").get_queue_client("smallfirst-shadow",
                                                          message_encode_policy=TextBase64EncodePolicy())
    queue.send_message(text)
    name = f"_/shadow-invalid-{hashlib.sha256(text.encode()).hexdigest()[:16]}.json"
    deadline = time.monotonic() + 60
    while env.state("deadletter", name) is None:
        assert time.monotonic() < deadline, f"{name} not written"
        time.sleep(0.2)
    dead = json.loads(env.read("deadletter", name))
    assert dead["reason"] == "invalid_shadow_message" and dead["error"].startswith(field)
    while queue.get_queue_properties().approximate_message_count:  # handled once, not retried until poison
        assert time.monotonic() < deadline, "the shadow message stayed on its queue"
        time.sleep(0.2)
    assert not env.list_states("claims", "_shadow/") and not env.list_states("shadow", "")
    assert not [n for n in env.list_states("deadletter", "_/") if "shadow-poison" in n]


def test_a_shadow_message_whose_bytes_are_not_utf8_is_dead_lettered_not_raised(env):
    import azure.functions as func

    from function_app import app
    from localdev.host import indexed_functions

    trigger = next(f for f in indexed_functions(app) if f.get_function_name() == "shadow_accepted_item")
    raw = b'\xff\xfe{"task": "' + TASK.encode() + b'"}'
    trigger.get_user_function()(message=func.QueueMessage(id="m1", body=raw))  # returns: nothing to retry
    name = f"_/shadow-invalid-{hashlib.sha256(raw.decode('utf-8', 'replace').encode()).hexdigest()[:16]}.json"
    assert json.loads(env.read("deadletter", name))["reason"] == "invalid_shadow_message"

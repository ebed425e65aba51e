"""The review queue on real Azurite, through the registered functions: items that end needs_review are decided
in the core, over HTTP, and by a person driving `smallfirst review` in a pseudo-terminal."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pexpect
import pytest

from localdev.azurite import Azurite
from localdev.host import LocalHost
from shared.foundation.records import CorrectionRecord, ResultRecord
from shared.foundation.text_files import jsonl_lines
from shared.errors import InputError, ReviewItemNotFound
from shared.foundation.principal import PRINCIPAL_HEADER, ClientPrincipal, PrincipalClaim, encode_principal
from shared.learning.training_data import examples_from_corrections
from shared.pipeline.blob_names import Containers, InputBlob, correction
from shared.pipeline.storage import BlobStore
from tests.azure_wire import AzureWireServer, Scripted, chat_completion

pytestmark = pytest.mark.azurite
VENV_BIN = Path(sys.executable).parent
TASK = "rtask"
TASK_YAML = """\
kind: classification
instruction: Route the customer support ticket to the team that should handle it.
threshold: 0.9
tiers: [small]
labels: [{name: billing}, {name: technical}, {name: account}, {name: other}]
"""


def unsure_billing(request) -> Scripted:
    """`billing` at probability ~0.37: below the threshold, so every item ends in review with that draft."""
    tokens = [('{"label":"', -0.01), ("billing", -1.0), ('"}', -0.01)]
    return Scripted(body=chat_completion('{"label":"billing"}', tokens=tokens))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    tasks_dir = tmp_path_factory.mktemp("tasks")
    (tasks_dir / f"{TASK}.yaml").write_text(TASK_YAML)
    with Azurite() as emulator, AzureWireServer() as small:
        small.default = unsure_billing
        values = {"DataStorage": emulator.connection_string, "SMALLFIRST_TASKS_DIR": str(tasks_dir),
                  "SMALLFIRST_LOCAL_PROFILE": "trained", "SMALLFIRST_SMALL_BACKEND": "openai_compatible",
                  "SMALLFIRST_SMALL_ENDPOINT": small.url, "SMALLFIRST_SMALL_LOGPROBS": "true",
                  "SMALLFIRST_LOCAL_PRINCIPAL_HEADER": "trust"}  # the tests' requests carry the platform's header
        saved = {k: os.environ.get(k) for k in values}
        os.environ.update(values)
        from functions import services

        services.reset()
        services.blob_store().ensure_containers(Containers().all())
        yield values
        services.reset()
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.fixture(scope="module")
def host(env):
    from function_app import app

    local = LocalHost(app, port=0, poll_s=0.2).start()
    yield local
    local.stop()


def drop_and_wait(name: str, lines: list[str]) -> None:
    from functions import services

    store = services.blob_store()
    data = "".join(json.dumps({"id": f"{name}-{i}", "text": text}) + "\n" for i, text in enumerate(lines))
    store.service.get_blob_client("incoming", f"{TASK}/{name}.jsonl").upload_blob(data.encode(), overwrite=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if store.state("review", InputBlob(TASK, f"{name}.jsonl").review):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} did not reach review")


def result_of(name: str, item_id: str) -> ResultRecord:
    from functions import services

    text = services.blob_store().read("results", InputBlob(TASK, f"{name}.jsonl").result_lines).decode()
    return next(r for r in (ResultRecord.model_validate_json(line) for _, line in jsonl_lines(text)) if r.id == item_id)


def source_of(item_id: str) -> str:
    """`drop_and_wait` names its items `<input>-<n>`, which gives their source."""
    return f"{TASK}/{item_id.rsplit('-', 1)[0]}.jsonl"


def correction_of(item_id: str, source: str | None = None) -> CorrectionRecord:
    """The decision on an item."""
    from functions import services

    source = source or source_of(item_id)
    name = correction(TASK, source, item_id)
    return CorrectionRecord.model_validate_json(services.blob_store().read("corrections", name))


def test_decisions_write_corrections_update_results_and_empty_the_queue(host):
    from functions import services

    drop_and_wait("core", ["I was charged twice", "The app crashes on export", "Please close my account"])
    queue = services.review_queue()
    pending = {item.record.id: item for item in queue.pending(TASK)}
    assert {"core-0", "core-1", "core-2"} <= pending.keys()
    assert pending["core-1"].text == "The app crashes on export" and pending["core-1"].record.answer == "billing"

    queue.decide(TASK, "core-0", "accept", by="ana", source=source_of("core-0"))
    queue.decide(TASK, "core-1", "correct", "technical", by="ana", source=source_of("core-1"))
    with pytest.raises(InputError, match="not a label"):
        queue.decide(TASK, "core-2", "correct", "refunds", by="ana", source=source_of("core-2"))
    assert services.blob_store().state("corrections", correction(TASK, f"{TASK}/core.jsonl", "core-2")) is None

    assert correction_of("core-0").final_answer == "billing" and correction_of("core-0").decision == "accept"
    fixed = correction_of("core-1")
    assert (fixed.final_answer, fixed.draft_answer, fixed.by, fixed.text) == (
        "technical", "billing", "ana", "The app crashes on export")
    updated = result_of("core", "core-1")
    assert updated.status == "reviewed" and updated.answer == "technical" and updated.attempts  # attempts kept
    assert result_of("core", "core-2").status == "needs_review"
    assert [item.record.id for item in queue.pending(TASK) if item.source.endswith("core.jsonl")] == ["core-2"]
    with pytest.raises(ReviewItemNotFound):  # decided once: it left the queue
        queue.decide(TASK, "core-1", "reject", by="bo", source=source_of("core-1"))
    queue.decide(TASK, "core-2", "reject", by="bo", source=source_of("core-2"))
    assert services.blob_store().state("review", InputBlob(TASK, "core.jsonl").review) is None  # emptied: deleted

    examples, report = examples_from_corrections([correction_of(i) for i in ("core-0", "core-1", "core-2")],
                                                 task=TASK, allowed_labels={"billing", "technical"})
    assert sorted(e.label for e in examples) == ["billing", "technical"] and report.skipped == {
        "rejected in review": 1}


def test_decisions_made_at_once_on_one_item_leave_one_standing_that_corrections_and_results_agree_on(host):
    from concurrent.futures import ThreadPoolExecutor

    from functions import services
    from shared.errors import WriteConflict

    drop_and_wait("race", ["I was charged twice"])
    queue = services.review_queue()
    answers = ["billing", "technical", "account", "other"] * 2

    def decide(n: int):
        try:
            return queue.decide(TASK, "race-0", "correct", answers[n], by=f"user{n}", source=source_of("race-0"))
        except (WriteConflict, ReviewItemNotFound) as exc:
            return exc

    with ThreadPoolExecutor(len(answers)) as pool:
        outcomes = list(pool.map(decide, range(len(answers))))
    standing = [o for o in outcomes if isinstance(o, CorrectionRecord)]
    assert len(standing) == 1, outcomes
    stored, published = correction_of("race-0"), result_of("race", "race-0")
    assert (stored.by, stored.final_answer) == (standing[0].by, standing[0].final_answer)
    assert published.answer == stored.final_answer and published.confidence_method == f"review: correct by {stored.by}"
    assert all(isinstance(o, ReviewItemNotFound) or stored.by in str(o) for o in outcomes if o is not standing[0]), outcomes


class DiesAfterTheCorrection(BlobStore):
    """A decider's store that dies right after the correction is written (before results and review)."""

    def write(self, container, name, *args, **kwargs):
        if container == "results":
            raise SystemExit("killed")
        return super().write(container, name, *args, **kwargs)


def test_a_decision_whose_maker_died_after_its_correction_is_finished_by_the_next_decision_and_stands(host):
    from functions import services
    from shared.errors import WriteConflict
    from shared.pipeline.review import ReviewQueue

    drop_and_wait("died", ["The app crashes on export"])
    dying = ReviewQueue(DiesAfterTheCorrection(services.blob_store().service), services.cascade().tasks)
    with pytest.raises(SystemExit):
        dying.decide(TASK, "died-0", "correct", "technical", by="ana", source=source_of("died-0"))
    queue = services.review_queue()
    assert "died-0" in {item.record.id for item in queue.pending(TASK)}  # the first decision was cut short
    with pytest.raises(WriteConflict, match="decided already: correct by ana"):
        queue.decide(TASK, "died-0", "accept", by="bo", source=source_of("died-0"))
    assert "died-0" not in {item.record.id for item in queue.pending(TASK)}
    assert (correction_of("died-0").by, result_of("died", "died-0").answer) == ("ana", "technical")


def test_the_same_item_id_in_two_inputs_is_decided_apart_and_both_decisions_are_kept(host):
    from functions import services

    store = services.blob_store()
    for name in ("twin-a", "twin-b"):
        data = json.dumps({"id": "twin", "text": f"charged twice ({name})"}) + "\n"
        store.service.get_blob_client("incoming", f"{TASK}/{name}.jsonl").upload_blob(data.encode(), overwrite=True)
    for name in ("twin-a", "twin-b"):
        deadline = time.monotonic() + 120
        while not store.state("review", InputBlob(TASK, f"{name}.jsonl").review) and time.monotonic() < deadline:
            time.sleep(0.2)
    queue = services.review_queue()
    queue.decide(TASK, "twin", "correct", "technical", by="ana", source=f"{TASK}/twin-a.jsonl")
    queue.decide(TASK, "twin", "correct", "account", by="bo", source=f"{TASK}/twin-b.jsonl")
    assert (result_of("twin-a", "twin").answer, result_of("twin-b", "twin").answer) == ("technical", "account")
    kept = [correction_of("twin", f"{TASK}/{name}.jsonl") for name in ("twin-a", "twin-b")]  # both, for training
    assert [(c.final_answer, c.by, c.text) for c in kept] == [("technical", "ana", "charged twice (twin-a)"),
                                                              ("account", "bo", "charged twice (twin-b)")]
    # named as a shadow pair names its input, so stats judge each input's pair by its own decision
    assert [c.source for c in kept] == [InputBlob(TASK, f"{name}.jsonl").source for name in ("twin-a", "twin-b")]


SEPARATORS = "\u2028\u2029\x85"  # raw in JSON strings: line breaks to str.splitlines, not to JSON Lines


def test_records_whose_ids_and_texts_hold_unicode_line_separators_stay_whole_from_input_to_review_and_stats(host):
    """pydantic writes these characters raw in the records, so every reader must split JSON Lines at \\n only."""
    from functions import services
    from shared.monitoring.stats_sources import ContainerRecords

    store = services.blob_store()
    rows = [{"id": f"sep{i}{c}x", "text": f"charged{c}twice"} for i, c in enumerate(SEPARATORS)]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows).encode()  # CRLF, as from Windows
    store.service.get_blob_client("incoming", f"{TASK}/separators.jsonl").upload_blob(data, overwrite=True)
    source = InputBlob(TASK, "separators.jsonl")
    deadline = time.monotonic() + 120
    while not store.state("review", source.review) and time.monotonic() < deadline:
        time.sleep(0.2)

    queue = services.review_queue()
    pending = {item.record.id: item.text for item in queue.pending(TASK) if item.source.endswith("separators.jsonl")}
    assert pending == {r["id"]: r["text"] for r in rows}
    assert store.state("deadletter", source.deadletter) is None  # no line was taken for a broken one
    ids = {r.record.id for r in ContainerRecords(store, task=TASK).results() if r.record.id.startswith("sep")}
    assert ids == set(pending)
    # rewrites the records it read
    queue.decide(TASK, rows[0]["id"], "correct", "technical", by="ana", source=f"{TASK}/separators.jsonl")
    assert result_of("separators", rows[0]["id"]).answer == "technical"
    left = {item.record.id for item in queue.pending(TASK) if item.source.endswith("separators.jsonl")}
    assert left == set(pending) - {rows[0]["id"]}


REVIEWER = ClientPrincipal(auth_typ="aad", name_typ="name", role_typ="roles", claims=[
    PrincipalClaim(typ="name", val="Cy Reviewer"), PrincipalClaim(typ="oid", val="0000-cy"),
    PrincipalClaim(typ="roles", val="Reviewer")])


def call(host, method: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    """A request as App Service Authentication passes it on for a reviewer's token."""
    request = urllib.request.Request(f"http://127.0.0.1:{host.port}/api/{path}", method=method,
                                     data=json.dumps(body).encode() if body is not None else None,
                                     headers={"content-type": "application/json",
                                              PRINCIPAL_HEADER: encode_principal(REVIEWER)})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_review_over_http_lists_decides_and_answers_problems(host):
    drop_and_wait("http", ["Where is my invoice?"])
    status, listing = call(host, "GET", f"review/{TASK}")
    assert status == 200 and "http-0" in {item["record"]["id"] for item in listing["items"]}
    assert call(host, "GET", "review/no_such_task")[0] == 404
    source = source_of("http-0")
    assert call(host, "POST", f"review/{TASK}/http-0", {"decision": "maybe", "source": source})[0] == 400
    assert call(host, "POST", f"review/{TASK}/http-0", {"decision": "accept"})[0] == 400  # no source
    status, body = call(host, "POST", f"review/{TASK}/http-0", {"decision": "correct", "answer": "nope",
                                                                "source": source})
    assert status == 422 and body["reason"] == "invalid_answer"
    status, body = call(host, "POST", f"review/{TASK}/http-0", {"decision": "correct", "answer": "billing",
                                                                "source": source, "by": "someone else"})
    assert status == 200 and body["final_answer"] == "billing" and body["by"] == "Cy Reviewer (0000-cy)"
    assert call(host, "POST", f"review/{TASK}/http-0", {"decision": "accept", "source": source})[0] == 404
    assert result_of("http", "http-0").status == "reviewed"


def test_item_ids_holding_slashes_and_reserved_characters_are_decided_over_http(host):
    from functions import services

    ids = ["order/7/line 2", "50% off?#x"]
    data = "".join(json.dumps({"id": item_id, "text": "Where is my invoice?"}) + "\n" for item_id in ids)
    services.blob_store().service.get_blob_client("incoming", f"{TASK}/slashes.jsonl").upload_blob(
        data.encode(), overwrite=True)
    deadline = time.monotonic() + 120
    while not services.blob_store().state("review", InputBlob(TASK, "slashes.jsonl").review):
        assert time.monotonic() < deadline, "slashes.jsonl did not reach review"
        time.sleep(0.2)
    for item_id in ids:
        status, body = call(host, "POST", f"review/{TASK}/{urllib.parse.quote(item_id, safe='/')}",
                            {"decision": "correct", "answer": "account", "source": f"{TASK}/slashes.jsonl"})
        assert (status, body["id"]) == (200, item_id)
        assert result_of("slashes", item_id).status == "reviewed"
    assert not services.blob_store().state("review", InputBlob(TASK, "slashes.jsonl").review)  # emptied


def test_a_decision_storage_refuses_is_a_503_problem_and_the_item_stays_in_review(host):
    from functions import services

    drop_and_wait("outage", ["Where is my refund?"])
    store = services.blob_store()
    store.service.delete_container("corrections")  # the correction cannot be written
    try:
        status, body = call(host, "POST", f"review/{TASK}/outage-0",
                            {"decision": "accept", "source": source_of("outage-0")})
    finally:
        store.ensure_containers(["corrections"])
    assert status == 503 and body["code"] == "storage_unavailable" and "container" not in body["detail"]
    status, listing = call(host, "GET", f"review/{TASK}")
    assert status == 200 and "outage-0" in {item["record"]["id"] for item in listing["items"]}
    assert result_of("outage", "outage-0").status != "reviewed"


def test_smallfirst_review_driven_in_a_terminal_accepts_and_corrects(host, env):
    drop_and_wait("tty", ["Refund my double charge", "Login page shows error 500"])
    child = pexpect.spawn(str(VENV_BIN / "smallfirst"), ["review", TASK, "--by", "dee"], env={**os.environ, **env, "NO_COLOR": "1"},
                          encoding="utf-8", timeout=120, dimensions=(50, 160))
    decisions = {"tty-0": ("a", None), "tty-1": ("c", "2")}  # 2 = technical, by number
    while True:
        found = child.expect([r"item (\S+) from rtask/", r"decision\(s\) recorded by dee", pexpect.EOF])
        if found != 0:
            break
        item_id = child.match.group(1)
        child.expect(r"\[q\]uit")
        choice, label = decisions.get(item_id, ("s", None))
        child.sendline(choice)
        if label:
            child.expect(r"label \(number or name\)")
            child.sendline(label)
    child.expect(pexpect.EOF)
    assert correction_of("tty-0").final_answer == "billing" and correction_of("tty-0").by == "dee"
    assert correction_of("tty-1").final_answer == "technical" and correction_of("tty-1").decision == "correct"
    assert result_of("tty", "tty-1").status == "reviewed" and result_of("tty", "tty-1").answer == "technical"

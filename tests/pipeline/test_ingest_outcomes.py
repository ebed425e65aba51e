"""One current outcome per input and one model call per item: claims, overwrites, hostile inputs, Event Grid.

Real Azurite; the small tier is an OpenAI-compatible server on loopback that counts the calls per item.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.pipeline.blob_names import Containers, InputBlob
from shared.pipeline.ingest import IngestLimits, Ingestor
from shared.pipeline.work import WorkMessage
from shared.pipeline.parsing import parse_input
from shared.pipeline.storage import BlobStore
from tests.azure_wire import AzureWireServer, Scripted, chat_completion
from tests.conftest import CountingReads, write_ticket_task

pytestmark = pytest.mark.azurite
TASK = "ticket"


def label_reply(delay_s: float = 0.0):
    def reply(request):
        tokens = [('{"label":"', -0.01), ("billing", -0.01), ('"}', -0.01)]
        return Scripted(body=chat_completion('{"label":"billing"}', tokens=tokens), delay_s=delay_s)

    return reply


@pytest.fixture(scope="module")
def tasks_dir(tmp_path_factory):
    return write_ticket_task(tmp_path_factory.mktemp("tasks"))


@pytest.fixture
def tier():
    with AzureWireServer() as server:
        server.default = label_reply()
        yield server


class Pipeline:
    """An Ingestor whose work queue is a list the test drains by hand."""

    def __init__(self, store: BlobStore, tier_url: str, tasks_dir, chunk_items: int = 3,
                 claim_ttl_s: float = 30.0) -> None:
        env = {"SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": tier_url,
               "SMALLFIRST_SMALL_LOGPROBS": "true", "SMALLFIRST_TASKS_DIR": str(tasks_dir)}
        self.queue: list[tuple[str, int]] = []
        self.store = store
        self.ingestor = Ingestor(Cascade(Settings.from_env(env)), store,
                                 IngestLimits(max_blob_bytes=1_000_000, chunk_items=chunk_items, claim_ttl_s=claim_ttl_s),
                                 enqueue=lambda text, delay: self.queue.append((text, delay)))

    def upload(self, name: str, data: bytes):
        client = self.store.service.get_blob_client("incoming", f"{TASK}/{name}")
        client.upload_blob(data, overwrite=True)
        return client

    def drop(self, name: str, data: bytes):
        """Upload, deliver the blob event, and run all queued work."""
        result = self.ingestor.handle_blob(self.upload(name, data))
        self.drain()
        return result

    def drain(self) -> list[str]:
        done = []
        while self.queue:
            text, _ = self.queue.pop(0)
            done.append(self.ingestor.handle_work(text).disposition)
        return done

    def outputs(self, name: str) -> dict[str, list[str]]:
        source = InputBlob(TASK, name)
        found = {}
        for container in Containers().outputs():
            names = list(self.store.list_states(container, source.stem))
            found[container] = sorted(source.own_outputs(container, names))
        return found


def calls_per_item(tier) -> dict[str, int]:
    counts: dict[str, int] = {}
    for request in tier.requests:
        text = request.body["messages"][-1]["content"]
        counts[text] = counts.get(text, 0) + 1
    return counts


def test_two_concurrent_deliveries_of_the_same_work_call_the_model_once(storage, tier, tasks_dir):
    tier.default = label_reply(delay_s=1.0)
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    pipeline.ingestor.handle_blob(pipeline.upload("twice.txt", b"I was charged twice"))
    (message, _), = pipeline.queue
    pipeline.queue.clear()
    results = []
    workers = [threading.Thread(target=lambda: results.append(pipeline.ingestor.handle_work(message).disposition))
               for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert sorted(results) == ["processed", "requeued"]
    assert len(tier.requests) == 1
    (requeued, delay), = pipeline.queue  # the copy comes back after the holder's claim would expire
    assert requeued == message and delay >= 1
    assert pipeline.drain() == ["duplicate"] and len(tier.requests) == 1


def test_a_dead_workers_expired_claim_is_taken_over(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    pipeline.ingestor.handle_blob(pipeline.upload("orphan.txt", b"My invoice is wrong"))
    message = WorkMessage.model_validate_json(pipeline.queue[0][0])
    claim = InputBlob(TASK, "orphan.txt").claim(message.sha256)
    storage.write("claims", claim, json.dumps({"owner": "dead-worker", "expires_at": time.time() - 1}),
                  content_type="application/json", metadata={})
    assert pipeline.drain() == ["processed"]
    assert storage.state("claims", claim) is None  # released after the work


def test_items_a_dead_worker_got_answers_for_are_not_sent_to_the_model_again(storage, tier, tasks_dir):
    from shared.foundation.records import ResultRecord

    pipeline = Pipeline(storage, tier.url, tasks_dir)
    lines = [json.dumps({"id": f"k{i}", "text": f"kept ticket {i}"}) for i in range(3)]
    pipeline.ingestor.handle_blob(pipeline.upload("kept.jsonl", "\n".join(lines).encode()))
    message = WorkMessage.model_validate_json(pipeline.queue[0][0])
    claim = InputBlob(TASK, "kept.jsonl").claim(message.sha256)
    storage.write("claims", claim, json.dumps({"owner": "dead-worker", "expires_at": time.time() - 1}),
                  content_type="application/json", metadata={})
    paid = ResultRecord(id="k0", task=TASK, status="accepted", answer="account", tier="small")
    storage.write("claims", f"{claim}/items/{'0' * 32}.json", paid.model_dump_json(), content_type="application/json",
                  metadata={})
    assert pipeline.drain() == ["processed"]
    assert sorted(calls_per_item(tier)) == ["kept ticket 1", "kept ticket 2"]  # k0 was paid for already
    records = [json.loads(line) for line in storage.read("results", f"{TASK}/kept.jsonl.jsonl").splitlines()]
    assert [(r["id"], r["answer"]) for r in records] == [("k0", "account"), ("k1", "billing"), ("k2", "billing")]
    assert list(storage.list_states("claims", claim)) == []  # the claim and its records are gone once published


def test_work_whose_input_changed_while_it_was_answered_leaves_no_paid_item_records_behind(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    old = b'{"id": "a", "text": "charged twice"}\n{"id": "b", "text": "refund"}\n'
    pipeline.ingestor.handle_blob(pipeline.upload("moved.jsonl", old))
    answer = tier.default

    def reupload_then_answer(request):  # the input changes while its items are being answered
        pipeline.upload("moved.jsonl", b'{"id": "c", "text": "new content"}\n')
        return answer(request)

    tier.default = reupload_then_answer
    text, _ = pipeline.queue.pop(0)
    assert pipeline.ingestor.handle_work(text).disposition == "stale"
    old_claim = InputBlob(TASK, "moved.jsonl").claim(hashlib.sha256(old).hexdigest())
    assert list(storage.list_states("claims", old_claim)) == []  # its records were written, then dropped


def test_a_live_claim_defers_the_work_instead_of_running_it(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    pipeline.ingestor.handle_blob(pipeline.upload("busy.txt", b"Refund please"))
    message = WorkMessage.model_validate_json(pipeline.queue[0][0])
    storage.write("claims", InputBlob(TASK, "busy.txt").claim(message.sha256),
                  json.dumps({"owner": "other-worker", "expires_at": time.time() + 20}),
                  content_type="application/json", metadata={})
    text, _ = pipeline.queue.pop(0)
    assert pipeline.ingestor.handle_work(text).disposition == "requeued"
    assert tier.requests == [] and 19 <= pipeline.queue[0][1] <= 22


def test_single_item_json_replaced_by_an_items_list_leaves_only_the_new_result(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    pipeline.drop("swap.json", json.dumps({"id": "a", "text": "charged twice"}).encode())
    assert pipeline.outputs("swap.json")["results"] == [f"{TASK}/swap.json.json"]
    pipeline.drop("swap.json", json.dumps({"items": [{"id": "b", "text": "refund"}, {"id": "c", "text": "bill"}]}).encode())
    assert pipeline.outputs("swap.json") == {"results": [f"{TASK}/swap.json.jsonl"], "review": [], "deadletter": []}


def test_fanned_out_jsonl_replaced_by_a_shorter_one_leaves_no_parts_or_manifest_behind(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    long = "\n".join(json.dumps({"id": f"l{i}", "text": f"ticket {i}"}) for i in range(7)).encode()
    pipeline.drop("shrink.jsonl", long)
    manifest = json.loads(storage.read("results", f"{TASK}/shrink.jsonl/manifest.json"))
    assert manifest["complete"] is True and manifest["parts"] == 3
    pipeline.drop("shrink.jsonl", b'{"id": "s1", "text": "short one"}\n{"id": "s2", "text": "short two"}\n')
    assert pipeline.outputs("shrink.jsonl")["results"] == [f"{TASK}/shrink.jsonl.jsonl"]


def test_a_fanned_out_input_is_downloaded_once_per_worker_not_once_per_part(storage, tier, tasks_dir):
    store = CountingReads(storage, "incoming")
    pipeline = Pipeline(store, tier.url, tasks_dir, chunk_items=3)
    lines = "\n".join(json.dumps({"id": f"c{i}", "text": f"charged twice {i}"}) for i in range(14)).encode()
    assert pipeline.drop("once.jsonl", lines).disposition == "fanned_out"
    assert store.reads == 1  # the blob event's read; its 5 parts reuse what it parsed
    records = [json.loads(line) for n in range(5)
               for line in storage.read("results", f"{TASK}/once.jsonl/part-{n:05d}.jsonl").splitlines()]
    assert [r["id"] for r in records] == [f"c{i}" for i in range(14)]

    pipeline.ingestor.handle_blob(pipeline.upload("once.jsonl", lines + b"\n{\"id\": \"c14\", \"text\": \"x\"}"))
    other_worker = Pipeline(store, tier.url, tasks_dir, chunk_items=3)  # the new version's parts go to a worker
    other_worker.queue, pipeline.queue = pipeline.queue, []  # that did not see its blob event
    store.reads = 0
    assert set(other_worker.drain()) == {"part_processed"}
    assert store.reads == 1
    assert storage.state("results", f"{TASK}/once.jsonl/manifest.json").metadata["complete"] == "true"


def test_a_copy_named_under_an_inputs_part_prefix_neither_completes_nor_joins_that_inputs_manifest(
        storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir, chunk_items=3)
    lines = "\n".join(json.dumps({"id": f"p{i}", "text": f"charged twice {i}"}) for i in range(7)).encode()
    pipeline.drop("p.jsonl/part-copy.jsonl", lines)  # the same content: its outputs share p.jsonl's part prefix
    pipeline.ingestor.handle_blob(pipeline.upload("p.jsonl", lines))
    pipeline.ingestor.handle_work(pipeline.queue.pop(0)[0])  # the first of p.jsonl's three parts
    assert storage.state("results", f"{TASK}/p.jsonl/manifest.json").metadata["complete"] == "false"
    pipeline.drain()
    manifest = json.loads(storage.read("results", f"{TASK}/p.jsonl/manifest.json"))
    assert manifest["complete"] is True
    assert manifest["part_blobs"] == [f"{TASK}/p.jsonl/part-{n:05d}.jsonl" for n in range(3)]


def test_a_part_delivered_again_after_its_worker_died_before_completing_the_manifest_completes_it(
        storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    lines = "\n".join(json.dumps({"id": f"m{i}", "text": f"ticket {i}"}) for i in range(7)).encode()
    pipeline.ingestor.handle_blob(pipeline.upload("unfinished.jsonl", lines))
    messages = [text for text, _ in pipeline.queue]
    assert pipeline.drain() == ["part_processed"] * 3
    name = f"{TASK}/unfinished.jsonl/manifest.json"
    # the state a SIGKILL leaves between publishing the last part and completing the manifest
    state = storage.state("results", name)
    storage.write("results", name, json.dumps({**json.loads(storage.read("results", name)), "complete": False}),
                  content_type="application/json", metadata=state.metadata, replacing=state)
    calls = len(tier.requests)
    assert pipeline.ingestor.handle_work(messages[-1]).disposition == "duplicate"
    manifest = json.loads(storage.read("results", name))
    assert manifest["complete"] is True and len(manifest["part_blobs"]) == 3
    assert len(tier.requests) == calls  # completing it sends nothing to the model


def test_a_blob_event_delivered_again_after_its_worker_died_while_queueing_parts_queues_the_rest(
        storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    lines = "\n".join(json.dumps({"id": f"q{i}", "text": f"queued {i}"}) for i in range(7)).encode()
    blob = pipeline.upload("halfqueued.jsonl", lines)
    sent = []

    def dies_on_second_send(text: str, delay: int) -> None:
        if sent:
            raise SystemExit("killed")
        sent.append(text)

    pipeline.ingestor.enqueue = dies_on_second_send
    with pytest.raises(SystemExit):
        pipeline.ingestor.handle_blob(blob)
    pipeline.ingestor.enqueue = lambda text, delay: pipeline.queue.append((text, delay))
    assert pipeline.drain() == [] and pipeline.ingestor.handle_work(sent[0]).disposition == "part_processed"
    # the event comes again (Event Grid's retry, or the local host's scan after a restart), after the part size
    # was changed: the parts are still cut as the manifest planned them
    pipeline.ingestor.limits = dataclasses.replace(pipeline.ingestor.limits, chunk_items=5)
    assert pipeline.ingestor.handle_blob(blob).detail == "2 of 3 parts"
    assert pipeline.drain() == ["part_processed"] * 2
    manifest = json.loads(storage.read("results", f"{TASK}/halfqueued.jsonl/manifest.json"))
    assert manifest["complete"] is True and len(manifest["part_blobs"]) == 3
    assert set(calls_per_item(tier).values()) == {1} and len(calls_per_item(tier)) == 7
    assert pipeline.ingestor.handle_blob(blob).disposition == "duplicate"  # complete now: the outcome exists


class Killed(BaseException):
    """The worker's process dying: nothing in the app may catch it, as nothing runs on a SIGKILL."""


class DyingStore(BlobStore):
    """The real store for a worker that dies just before its `kill_at`-th write, delete or message send (the
    steps that change anything); from then on nothing it does reaches storage. `ops` lists the steps taken.
    A claim's heartbeat is not a step of the flow: it only stops when the worker dies."""

    def __init__(self, store: BlobStore, kill_at: int | None) -> None:
        super().__init__(store.service)
        self.kill_at, self.ops, self.dead, self._lock = kill_at, [], False, threading.Lock()

    def step(self, what: str) -> None:
        from azure.core.exceptions import ServiceRequestError

        if threading.current_thread().name.startswith("claim "):
            if self.dead:
                raise ServiceRequestError("the worker is dead")
            return
        with self._lock:
            if not self.dead and len(self.ops) == self.kill_at:
                self.dead = True
            if self.dead:
                raise Killed(what)
            self.ops.append(what)

    def write(self, container, name, *args, **kwargs):
        self.step(f"write {container}/{name}")
        return super().write(container, name, *args, **kwargs)

    def delete(self, container, name, *args, **kwargs):
        self.step(f"delete {container}/{name}")
        return super().delete(container, name, *args, **kwargs)

    def state(self, container, name):
        if self.dead:
            raise Killed("read")
        return super().state(container, name)


def run_until_death(storage, tier_url, tasks_dir, name: str, data: bytes, kill_at: int | None,
                    overwrite_with: bytes | None = None, new_event_first: bool = False):
    """Drop the input and run its work to the end, or until the worker dies; then a fresh worker gets what an
    at-least-once delivery gives it: the blob event again if the death was in the blob step, every message not
    yet settled (the one being worked on included), and claims of the dead worker expired. With
    `overwrite_with`, the input is overwritten before the fresh worker starts, and the new content's event
    comes after what was left of the old work, or before it."""
    dying = DyingStore(storage, kill_at)
    pipeline = Pipeline(dying, tier_url, tasks_dir, claim_ttl_s=0.4)
    pipeline.ingestor.enqueue = lambda text, delay: (dying.step("send"), pipeline.queue.append((text, delay)))
    blob = pipeline.upload(name, data)
    died_in_blob_step = False
    try:
        try:
            pipeline.ingestor.handle_blob(blob)
        except Killed:
            died_in_blob_step = True
            raise
        while pipeline.queue:
            text, delay = pipeline.queue[0]
            pipeline.ingestor.handle_work(text)
            pipeline.queue.pop(0)
    except Killed:
        time.sleep(0.5)  # the dead worker's claim expires
        after = Pipeline(storage, tier_url, tasks_dir, claim_ttl_s=0.4)
        client = storage.service.get_blob_client("incoming", f"{TASK}/{name}")
        if overwrite_with is not None:
            after.upload(name, overwrite_with)
        if new_event_first:
            after.ingestor.handle_blob(client)
        after.queue += pipeline.queue
        if died_in_blob_step:
            after.ingestor.handle_blob(client)
        if overwrite_with is not None and not new_event_first:
            after.ingestor.handle_blob(client)
        after.drain()
    return dying.ops


def outcome(pipeline: Pipeline, name: str) -> dict[str, list]:
    """Each output of the input (its name after the input's), with the item ids and statuses it holds (an id
    taken from the input's name as `<name>`)."""
    stem = name.rsplit(".", 1)[0]

    def named(item_id: str) -> str:
        return item_id.replace(stem, "<name>")

    found = {}
    for container, names in pipeline.outputs(name).items():
        for blob in names:
            body = pipeline.store.read(container, blob).decode()
            if blob.endswith(".jsonl"):
                content = [(named(r["id"]), r["status"]) for r in map(json.loads, body.splitlines())]
            elif blob.endswith("manifest.json"):
                manifest = json.loads(body)
                content = [manifest["complete"], [p.rsplit("/", 1)[1] for p in manifest.get("part_blobs", [])]]
            else:
                record = json.loads(body)
                content = [named(record.get("id", "")), record.get("status") or record.get("reason")]
            found[f"{container}/{blob.removeprefix(f'{TASK}/{name}')}"] = content
    return found


CRASH_INPUTS = {
    "one.txt": lambda tag: f"{tag}: I was charged twice".encode(),
    "fanned.jsonl": lambda tag: "\n".join(json.dumps({"id": f"i{i}", "text": f"{tag} ticket {i}"})
                                          for i in range(7)).encode(),
    "mixed.jsonl": lambda tag: f'{{"id": "a", "text": "{tag} one"}}\n{{broken\n{{"id": "b", "text": "{tag} two"}}\n'
                               .encode(),
}


@pytest.mark.parametrize("kind", CRASH_INPUTS)
def test_a_worker_killed_at_any_step_leaves_the_same_outcome_as_a_clean_run_and_repays_no_kept_item(
        storage, tier, tasks_dir, kind):
    make = CRASH_INPUTS[kind]
    clean_ops = run_until_death(storage, tier.url, tasks_dir, f"clean-{kind}", make("clean"), kill_at=None)
    reader = Pipeline(storage, tier.url, tasks_dir)
    expected = outcome(reader, f"clean-{kind}")
    assert len(clean_ops) >= 5 and expected
    for kill_at, step in enumerate(clean_ops):
        name, tag = f"kill{kill_at}-{kind}", f"kill{kill_at}"
        ops = run_until_death(storage, tier.url, tasks_dir, name, make(tag), kill_at)
        where = f"killed before step {kill_at} ({step})"
        assert outcome(reader, name) == expected, where
        calls = {text: n for text, n in calls_per_item(tier).items() if text.startswith(f"{tag}:") or
                 text.startswith(f"{tag} ")}
        kept = {op.rsplit("/", 1)[1] for op in ops if "/items/" in op and op.startswith("write")}
        for item_id, text in [(item.id, item.text) for item in parse_input(kind, make(tag)).items]:
            paid_for = hashlib.sha256(item_id.encode()).hexdigest()[:32] + ".json"
            assert calls.get(text, 0) == 1 or (calls[text] == 2 and paid_for not in kept), f"{where}: {text}"


def test_a_worker_killed_at_any_step_then_its_input_overwritten_leaves_only_the_new_contents_outcome(
        storage, tier, tasks_dir):
    old = CRASH_INPUTS["fanned.jsonl"]  # 7 items in 3 parts

    def new(tag: str) -> bytes:  # 4 items in 2 parts
        return "\n".join(json.dumps({"id": f"n{i}", "text": f"{tag} new {i}"}) for i in range(4)).encode()

    clean_ops = run_until_death(storage, tier.url, tasks_dir, "clean-old.jsonl", old("clean-old"), kill_at=None)
    run_until_death(storage, tier.url, tasks_dir, "clean-new.jsonl", new("clean-new"), kill_at=None)
    reader = Pipeline(storage, tier.url, tasks_dir)
    expected = outcome(reader, "clean-new.jsonl")
    for kill_at, step in enumerate(clean_ops):
        new_event_first = kill_at % 2 == 1  # both orders of the new event and the old work's leftovers
        name = f"overwritten{kill_at}.jsonl"
        run_until_death(storage, tier.url, tasks_dir, name, old(f"ow{kill_at}"), kill_at,
                        overwrite_with=new(f"ow{kill_at}"), new_event_first=new_event_first)
        where = f"killed before step {kill_at} ({step}), new event first: {new_event_first}"
        assert outcome(reader, name) == expected, where
        assert {text: n for text, n in calls_per_item(tier).items() if text.startswith(f"ow{kill_at} new ")} == {
            f"ow{kill_at} new {i}": 1 for i in range(4)}, where


def test_result_then_dead_letter_then_result_keeps_only_the_current_outcome(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    pipeline.drop("flip.txt", b"first version")
    pipeline.drop("flip.txt", b"   ")
    assert pipeline.outputs("flip.txt") == {"results": [], "review": [], "deadletter": [f"{TASK}/flip.txt.json"]}
    pipeline.drop("flip.txt", b"third version")
    assert pipeline.outputs("flip.txt") == {"results": [f"{TASK}/flip.txt.json"], "review": [], "deadletter": []}


def test_a_late_part_of_old_content_cannot_complete_or_outlive_the_new_manifest(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    old = "\n".join(json.dumps({"id": f"o{i}", "text": f"old {i}"}) for i in range(6)).encode()
    pipeline.ingestor.handle_blob(pipeline.upload("late.jsonl", old))
    old_messages = list(pipeline.queue)
    pipeline.queue.clear()
    new = "\n".join(json.dumps({"id": f"n{i}", "text": f"new {i}"}) for i in range(4)).encode()
    pipeline.drop("late.jsonl", new)
    assert [pipeline.ingestor.handle_work(text).disposition for text, _ in old_messages] == ["stale", "stale"]
    manifest = storage.state("results", f"{TASK}/late.jsonl/manifest.json")
    old_sha = WorkMessage.model_validate_json(old_messages[0][0]).sha256
    assert manifest.metadata["source_sha256"] != old_sha
    parts = [n for n in pipeline.outputs("late.jsonl")["results"] if "/part-" in n]
    assert len(parts) == 2 and all(storage.state("results", p).metadata["source_sha256"] != old_sha for p in parts)


def test_identical_reupload_is_not_processed_again(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    pipeline.drop("same.txt", b"Same words twice")
    assert pipeline.drop("same.txt", b"Same words twice").disposition == "duplicate"
    assert calls_per_item(tier) == {"Same words twice": 1}


def test_deeply_nested_json_is_a_dead_letter_not_a_crash(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    result = pipeline.drop("deep.json", b"[" * 100_000 + b"]" * 100_000)
    assert result.disposition == "deadlettered" and result.detail == "too_deeply_nested"
    assert tier.requests == []


def test_dead_letter_is_not_rewritten_when_the_same_event_comes_again(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    client = storage.service.get_blob_client("incoming", "no_such_task/x.txt")
    client.upload_blob(b"hello", overwrite=True)
    assert pipeline.ingestor.handle_blob(client).disposition == "deadlettered"
    written = storage.state("deadletter", "no_such_task/x.txt.json").etag
    assert pipeline.ingestor.handle_blob(client).disposition == "duplicate"
    assert storage.state("deadletter", "no_such_task/x.txt.json").etag == written


def test_a_file_whose_every_line_is_invalid_keeps_its_line_errors_in_one_dead_letter(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    pipeline.drop("junk.jsonl", b'{broken\n{"id": "x", "text": ""}\n')
    dead = json.loads(storage.read("deadletter", f"{TASK}/junk.jsonl.json"))
    assert dead["reason"] == "no_valid_items"
    assert [(line["line"], line["reason"]) for line in dead["lines"]] == [(1, "invalid_json"), (2, "empty_text")]


def test_a_container_not_created_yet_lists_no_blobs_and_an_empty_review_queue(storage, tier, tasks_dir):
    from shared.pipeline.review import ReviewQueue

    assert storage.list_states("not-created-yet", f"{TASK}/") == {}
    assert storage.count("not-created-yet", f"{TASK}/") == 0
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    queue = ReviewQueue(storage, pipeline.ingestor.cascade.tasks, Containers(review="review-not-created"))
    assert queue.pending(TASK) == []


def test_inputs_named_in_any_script_are_processed_and_dead_lettered_like_any_other(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    assert pipeline.drop("日本/請求書.txt", "二重に請求されました".encode()).disposition == "queued"
    record = json.loads(storage.read("results", f"{TASK}/日本/請求書.txt.json"))
    assert record["id"] == "請求書" and record["status"] == "accepted"
    assert pipeline.drop("données.csv", b"a,b").disposition == "deadlettered"
    assert json.loads(storage.read("deadletter", f"{TASK}/données.csv.json"))["reason"] == "unsupported_format"
    lines = "\n".join(json.dumps({"id": f"j{i}", "text": f"請求 {i}"}) for i in range(4)).encode()
    assert pipeline.drop("請求.jsonl", lines).disposition == "fanned_out"
    manifest = storage.state("results", f"{TASK}/請求.jsonl/manifest.json")  # written, read back, written again
    assert manifest.metadata["complete"] == "true"
    assert manifest.metadata["source"] == storage.state("results", f"{TASK}/請求.jsonl/part-00000.jsonl").metadata["source"]


def test_an_input_named_near_the_cap_in_three_byte_characters_gets_its_outcome_with_a_shortened_source_in_metadata(
        storage, tier, tasks_dir):
    """Percent-encoded, such a name is about 8 KB: over what Azure takes as all of a blob's metadata."""
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    name = "中" * 880 + ".txt"
    assert InputBlob(TASK, name).name_fits
    assert pipeline.drop(name, "二重に請求されました".encode()).disposition == "queued"
    state = storage.state("results", f"{TASK}/{name}.json")
    assert state is not None and json.loads(storage.read("results", f"{TASK}/{name}.json"))["status"] == "accepted"
    shown = state.metadata["source"]
    assert shown.startswith(f"incoming/{TASK}/中中") and len(shown) < 400 and "~" in shown
    assert len(calls_per_item(tier)) == 1 and sum(calls_per_item(tier).values()) == 1  # paid once


def test_an_input_named_as_another_inputs_part_keeps_its_own_dead_letter_when_the_other_is_published(
        storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    assert pipeline.drop("x.jsonl/part-00000", b"any bytes").disposition == "deadlettered"
    named = InputBlob(TASK, "x.jsonl/part-00000")
    assert named.deadletter != InputBlob(TASK, "x.jsonl").deadletter_part(0)
    pipeline.drop("x.jsonl", b'{"id": "a", "text": "charged twice"}\n{"id": "b", "text": "refund"}\n')
    assert json.loads(storage.read("deadletter", named.deadletter))["reason"] == "unsupported_format"
    assert storage.state("results", f"{TASK}/x.jsonl.jsonl") is not None


def test_a_blob_in_a_folder_named_underscore_and_one_outside_any_folder_keep_a_dead_letter_each(storage, tier,
                                                                                                 tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    outside = storage.service.get_blob_client("incoming", "y.txt")
    outside.upload_blob(b"charged twice", overwrite=True)
    assert pipeline.ingestor.handle_blob(outside).disposition == "deadlettered"
    underscore = storage.service.get_blob_client("incoming", "_/y.txt")
    underscore.upload_blob(b"charged twice", overwrite=True)
    assert pipeline.ingestor.handle_blob(underscore).disposition == "deadlettered"
    letters = {InputBlob.from_path(path).deadletter: path for path in ("y.txt", "_/y.txt")}
    assert len(letters) == 2
    reasons = {path: json.loads(storage.read("deadletter", name))["reason"] for name, path in letters.items()}
    assert reasons == {"y.txt": "no_task_folder", "_/y.txt": "unknown_task"}


def test_a_file_name_too_long_for_an_id_still_gives_valid_distinct_item_ids():
    stem = "n" * 1000
    (item,) = parse_input(f"{stem}.txt", b"charged twice").items
    (other,) = parse_input(f"{stem}m.txt", b"charged twice").items
    assert len(item.id) <= 512 and item.id.startswith("nnnn") and item.id != other.id
    lines = parse_input(f"{stem}.jsonl", b"one\ntwo\n").items
    assert [i.id[-6:] for i in lines] == ["-00001", "-00002"] and all(len(i.id) <= 512 for i in lines)
    assert parse_input("short.txt", b"x").items[0].id == "short"  # ids of ordinary names are as before


class AzureNamingStore(BlobStore):
    """The real store (Azurite), refusing as Azure does a blob name over 1,024 characters (UTF-16 code units) or
    254 segments, which Azurite accepts; `longest` is the longest name used."""

    def __init__(self, store: BlobStore) -> None:
        super().__init__(store.service)
        self.longest = ""

    def check(self, name: str) -> None:
        from azure.core.exceptions import HttpResponseError

        if len(name.encode("utf-16-le")) // 2 > 1024 or name.count("/") + 1 > 254:
            raise HttpResponseError(f"400 OutOfRangeInput: {name[:40]}...")
        self.longest = max(self.longest, name, key=len)

    def state(self, container, name):
        self.check(name)
        return super().state(container, name)

    def read(self, container, name, **kwargs):
        self.check(name)
        return super().read(container, name, **kwargs)

    def write(self, container, name, *args, **kwargs):
        self.check(name)
        return super().write(container, name, *args, **kwargs)

    def append_line(self, container, name, line):
        self.check(name)
        return super().append_line(container, name, line)

    def delete(self, container, name, *args, **kwargs):
        self.check(name)
        return super().delete(container, name, *args, **kwargs)


def test_an_input_name_at_the_longest_azure_allows_for_its_outputs_is_processed_through_fan_out(
        storage, tier, tasks_dir):
    store = AzureNamingStore(storage)
    pipeline = Pipeline(store, tier.url, tasks_dir)
    name = "n" * (1024 - 120 - len(f"{TASK}/") - len(".jsonl")) + ".jsonl"
    lines = "\n".join(json.dumps({"id": f"l{i}", "text": f"charged twice {i}"}) for i in range(4)).encode()
    assert pipeline.drop(name, lines).disposition == "fanned_out"
    assert len(store.longest) == 1024 and "/items/" in store.longest  # a checkpoint: the longest derived name
    assert pipeline.outputs(name)["results"] == [f"{TASK}/{name}/manifest.json", f"{TASK}/{name}/part-00000.jsonl",
                                                 f"{TASK}/{name}/part-00001.jsonl"]


@pytest.mark.parametrize("name", ["n" * 1000 + ".txt", "😀" * 460 + ".txt", "a/" * 250 + "x.txt"],
                         ids=["1000-characters", "460-emoji-920-utf16-units", "251-segments"])
def test_an_input_name_leaving_no_room_for_its_outputs_names_is_dead_lettered_under_a_short_name(
        storage, tier, tasks_dir, name):
    store = AzureNamingStore(storage)
    pipeline = Pipeline(store, tier.url, tasks_dir)
    blob = pipeline.upload(name, b"I was charged twice")
    assert pipeline.ingestor.handle_blob(blob).disposition == "deadlettered"
    (dead,) = pipeline.outputs(name)["deadletter"]
    assert len(dead) < 400 and dead.count("/") == 1
    record = json.loads(storage.read("deadletter", dead))
    assert (record["reason"], record["source"]) == ("name_too_long", f"incoming/{TASK}/{name}")
    assert tier.requests == []
    assert pipeline.ingestor.handle_blob(blob).disposition == "duplicate"  # the event again
    other = name[:-4] + "-2.txt"  # the same start: its own dead letter
    assert pipeline.drop(other, b"I was charged twice").disposition == "deadlettered"
    assert pipeline.outputs(other)["deadletter"] != [dead]


def test_a_blob_outside_any_task_folder_is_dead_lettered_with_the_reason(storage, tier, tasks_dir):
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    for path in ("loose.txt", "ticket/"):
        client = storage.service.get_blob_client("incoming", path)
        client.upload_blob(b"I was charged twice", overwrite=True)
        assert pipeline.ingestor.handle_blob(client).disposition == "deadlettered"
    loose = json.loads(storage.read("deadletter", "_/loose.txt.json"))
    assert (loose["reason"], loose["source"]) == ("no_task_folder", "incoming/loose.txt")
    assert json.loads(storage.read("deadletter", "_/ticket/.json"))["source"] == "incoming/ticket/"
    assert tier.requests == []


def test_an_input_with_an_empty_path_segment_is_dead_lettered_under_a_hashed_name(storage, tier, tasks_dir):
    """`.` and `..` segments are refused alike (blob_names.has_unsafe_segment), but no SDK here can upload them:
    they are dot-segments of the request URL."""
    pipeline = Pipeline(storage, tier.url, tasks_dir)
    for path in ("ticket/a//b.txt", "ticket//c.txt"):
        client = storage.service.get_blob_client("incoming", path)
        client.upload_blob(b"I was charged twice", overwrite=True)
        assert pipeline.ingestor.handle_blob(client).disposition == "deadlettered"
    sources = {"incoming/ticket//c.txt", "incoming/ticket/a//b.txt"}
    letters = {}  # other tests share the account: only these inputs' dead letters
    for blob in storage.service.get_container_client("deadletter").list_blobs():
        letter = json.loads(storage.read("deadletter", blob.name))
        if letter.get("source") in sources:
            letters[blob.name] = letter
    assert sorted(letter["source"] for letter in letters.values()) == sorted(sources)
    assert {letter["reason"] for letter in letters.values()} == {"invalid_name"}
    assert all(name.startswith("ticket/") and name.count("/") == 1 for name in letters)  # hashed, flat names
    assert tier.requests == []


def test_duplicate_ids_within_one_input_are_line_errors():
    parsed = parse_input("dups.jsonl", b'{"id": "a", "text": "one"}\n{"id": "a", "text": "two"}\n')
    assert [i.text for i in parsed.items] == ["one"]
    assert [(e.line, e.reason) for e in parsed.errors] == [(2, "duplicate_id")]


def test_event_grid_deliveries_to_the_webhook_process_their_blobs_by_decoded_name_and_malformed_ones_are_a_400(emulator, storage, tier, tasks_dir, monkeypatch):
    from function_app import app
    from functions import services
    from localdev.host import LocalHost

    monkeypatch.setenv("SMALLFIRST_SMALL_BACKEND", "openai_compatible")
    monkeypatch.setenv("SMALLFIRST_SMALL_ENDPOINT", tier.url)
    monkeypatch.setenv("SMALLFIRST_SMALL_LOGPROBS", "true")
    monkeypatch.setenv("DataStorage", emulator.connection_string)
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(tasks_dir))
    services.reset()
    host = LocalHost(app, port=0, poll_s=0.2, poll_blobs=False).start()
    try:
        url = f"http://127.0.0.1:{host.port}/runtime/webhooks/blobs?functionName=Host.Functions.process_incoming_blob"
        validation = [{"id": "1", "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
                       "data": {"validationCode": "abc-123"}}]
        status, body = post(url, validation, {"aeg-event-type": "SubscriptionValidation"})
        assert status == 200 and body == {"validationResponse": "abc-123"}
        blob = storage.service.get_blob_client("incoming", f"{TASK}/hooked.txt")
        blob.upload_blob(b"Charged twice via webhook", overwrite=True)
        event = [{"id": "2", "eventType": "Microsoft.Storage.BlobCreated", "subject": "/blobServices/default/containers/"
                  f"incoming/blobs/{TASK}/hooked.txt", "data": {"url": blob.url, "api": "PutBlob"}}]
        status, _ = post(url, event, {"aeg-event-type": "Notification"})
        assert status == 202
        deadline = time.monotonic() + 30
        while storage.state("results", f"{TASK}/hooked.txt.json") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert json.loads(storage.read("results", f"{TASK}/hooked.txt.json"))["answer"] == "billing"
        assert host.finished_invocations == 1  # the webhook's delivery; blob polling is off

        named = storage.service.get_blob_client("incoming", f"{TASK}/état 50%.txt")  # its URL percent-encodes it
        named.upload_blob(b"Charged twice again", overwrite=True)
        status, _ = post(url, [{**event[0], "id": "3", "data": {"url": named.url, "api": "PutBlob"}}],
                         {"aeg-event-type": "Notification"})
        deadline = time.monotonic() + 30
        while storage.state("results", f"{TASK}/état 50%.txt.json") is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert status == 202 and storage.state("results", f"{TASK}/état 50%.txt.json") is not None

        for body, kind in ((b"not json", "Notification"), (b"[{}]", "SubscriptionValidation"),
                           (b"[]", "SubscriptionValidation"),
                           (json.dumps([{"eventType": "Microsoft.Storage.BlobCreated",
                                         "data": {"url": "http://x/devstoreaccount1/elsewhere/a.txt"}}]).encode(),
                            "Notification")):
            request = urllib.request.Request(url, data=body, method="POST", headers={"aeg-event-type": kind})
            with pytest.raises(urllib.error.HTTPError) as refused:
                urllib.request.urlopen(request, timeout=30)
            assert refused.value.code == 400 and "not Event Grid events" in json.loads(refused.value.read())["detail"]
    finally:
        host.stop()
        services.reset()


def post(url: str, body: object, headers: dict[str, str]) -> tuple[int, object]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"content-type": "application/json", **headers})
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read()
        return response.status, json.loads(raw) if raw else None

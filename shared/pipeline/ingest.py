"""Blob-driven processing: every input ends in exactly one current outcome, and no item is paid for twice.

Two steps. `handle_blob` (the blob trigger) reads and checks an input and either dead-letters it or puts
work on the queue: one message for the whole input, or one per part of a large .jsonl (with a manifest).
`handle_work` (the queue trigger) claims the work (`claims.Claim`) before any model call, runs the cascade
and publishes the outputs. The model work is queue-driven so that a worker that dies mid-item leaves a
message that becomes visible again, and a copy of work that another live worker holds is put back on the
queue for later instead of being run twice. Each item's record is kept under the claim as soon as its
answer is paid for, so a worker that takes over from a dead one sends only the unanswered items. A step a
dead worker cut short is finished by the next delivery: the blob event queues the parts not yet done while
the manifest is incomplete, and a part's message that finds its part published completes the manifest.

Outputs carry the input's content hash (`source_sha256`) and etag. Publishing is conditional: an output is
written only while the input is still the content it came from, over the exact version that was read, and
then every output of older content of the same name (results, review, dead letters, surplus parts, the
manifest) is removed. Inputs are never changed or deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Literal

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient
from pydantic import BaseModel

from shared.core.cascade import Cascade
from shared.core.records import Item, ResultRecord
from shared.errors import ClaimHeldError, InputError, NoTierError, TaskError, UnknownTaskError, WriteConflict
from shared.pipeline.blob_names import (BLOB_NAME_MAX_CHARS, BLOB_NAME_MAX_SEGMENTS, ETAG_KEY, HASH_KEY,
                                        LONGEST_SUFFIX_CHARS, LONGEST_SUFFIX_SEGMENTS, Containers, InputBlob,
                                        poison_deadletter)
from shared.pipeline.claims import Claim
from shared.pipeline.parsing import parse_input
from shared.pipeline.shadow import send_shadows, shadow_requests
from shared.pipeline.storage import BlobStore

log = logging.getLogger(__name__)
COMPLETE_KEY = "complete"  # a manifest's metadata: "false" until every part is published
Disposition = Literal["queued", "fanned_out", "duplicate", "deadlettered", "processed", "part_processed", "stale",
                      "requeued"]
PUBLISH_TRIES = 5


@dataclass(frozen=True)
class IngestLimits:
    max_blob_bytes: int
    chunk_items: int  # a .jsonl with more items than this is fanned out in parts of this size
    claim_ttl_s: float = 60.0  # a dead worker's claim is taken over this long after its last heartbeat
    max_dequeue_count: int = 5  # tries of a work message before it is poison (host.json's queues setting)


class WorkMessage(BaseModel):
    """Model work on one input's content: the whole of it (`part` None) or one part of a large .jsonl."""

    task: str
    name: str
    sha256: str
    etag: str
    part: int | None = None
    start: int
    end: int
    parts: int = 1


@dataclass
class IngestResult:
    disposition: Disposition
    detail: str = ""


@dataclass(frozen=True)
class Output:
    container: str
    name: str
    body: str
    content_type: str
    metadata: tuple[tuple[str, str], ...] = ()


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def json_output(container: str, name: str, obj: Any, **metadata: str) -> Output:
    return Output(container, name, json.dumps(obj, ensure_ascii=False, indent=2), "application/json",
                  tuple(metadata.items()))


def jsonl_output(container: str, name: str, records: list[ResultRecord]) -> Output:
    return Output(container, name, "".join(r.model_dump_json() + "\n" for r in records), "application/x-ndjson")


class ParsedInputs:
    """The items of the last few fanned-out inputs this worker read, by path and etag (an etag names one version
    of a blob's content). Each part of a large .jsonl needs the input's items; reading and parsing all of it per
    part made a fan-out quadratic (a 20 MB input parses in about 3 s here, and has 2,000 parts of 100 items)."""

    def __init__(self, max_inputs: int = 2) -> None:
        self._max_inputs = max_inputs
        self._entries: OrderedDict[tuple[str, str], tuple[str, list[Item]]] = OrderedDict()
        self._lock = threading.Lock()  # parts of one input are handled on several threads at once

    def get(self, path: str, etag: str) -> tuple[str, list[Item]] | None:
        """(sha256 of the content, its items), if this version was read."""
        with self._lock:
            if (path, etag) in self._entries:
                self._entries.move_to_end((path, etag))
            return self._entries.get((path, etag))

    def put(self, path: str, etag: str, sha: str, items: list[Item]) -> None:
        with self._lock:
            self._entries[(path, etag)] = (sha, items)
            self._entries.move_to_end((path, etag))
            while len(self._entries) > self._max_inputs:
                self._entries.popitem(last=False)


class Ingestor:
    def __init__(self, cascade: Cascade, store: BlobStore, limits: IngestLimits,
                 enqueue: Callable[[str, int], Any] | None = None, containers: Containers = Containers(),
                 shadow: Callable[[str], Any] | None = None) -> None:
        self.cascade = cascade
        self.store = store
        self.limits = limits
        # enqueue(text, delay_s) puts a message on the work queue; without one, work runs at once, in-process.
        self.enqueue = enqueue
        # shadow(text) puts a shadow request on its queue (shared/pipeline/shadow.py); without one, none is sent.
        self.shadow = shadow
        self.containers = containers
        self.parsed = ParsedInputs()

    # -- the blob trigger: check, then dead-letter or queue the work ------------------------------------
    def handle_blob(self, blob: BlobClient) -> IngestResult:
        source = InputBlob.from_path(blob.blob_name, self.containers)
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return IngestResult("stale", "the blob was deleted before it was processed")
        etag = props.etag
        if not source.in_task_folder:
            return self.deadletter(source, "no_task_folder", "blobs go under incoming/<task>/", etag=etag)
        if not source.name_fits:
            return self.deadletter(source, "name_too_long", "the name leaves no room for its outputs' names: at most "
                                   f"{BLOB_NAME_MAX_CHARS - LONGEST_SUFFIX_CHARS} characters (UTF-16) and "
                                   f"{BLOB_NAME_MAX_SEGMENTS - LONGEST_SUFFIX_SEGMENTS} segments with its task's",
                                   etag=etag)
        if props.size > self.limits.max_blob_bytes:
            return self.deadletter(source, "too_large", f"{props.size} bytes > limit {self.limits.max_blob_bytes}",
                                   etag=etag)
        try:
            self.cascade.tasks.get(source.task)
        except TaskError as exc:
            reason = "unknown_task" if isinstance(exc, UnknownTaskError) else "invalid_task"
            return self.deadletter(source, reason, str(exc), etag=etag)
        try:
            data = self.store.read(self.containers.incoming, source.incoming_path, etag=etag)
        except WriteConflict:
            return IngestResult("stale", "the blob changed since this event; the newer event handles it")
        sha = hashlib.sha256(data).hexdigest()
        if self._has_outcome(source, sha):
            return IngestResult("duplicate", f"outputs for sha256 {sha[:12]} exist")
        try:
            parsed = parse_input(source.name, data)
        except InputError as exc:
            return self.deadletter(source, exc.reason, str(exc), etag=etag, sha=sha)
        except Exception as exc:  # any other failure to read the input still ends as a dead letter
            log.exception("parsing %s failed", source.source)
            return self.deadletter(source, "unreadable", f"{type(exc).__name__}: {exc}", etag=etag, sha=sha)
        lines = [{"line": e.line, "reason": e.reason, "error": e.message, "raw": e.raw[:2000]} for e in parsed.errors]
        if not parsed.items:
            return self.deadletter(source, "no_valid_items", "no entry held a valid item", etag=etag, sha=sha,
                                   extra={"lines": lines})
        if lines:
            self.deadletter(source, "invalid_lines", f"{len(lines)} entries could not be read", etag=etag, sha=sha,
                            extra={"lines": lines})
        if len(parsed.items) > self.limits.chunk_items:  # its parts are likely to come to this worker too
            self.parsed.put(source.incoming_path, etag, sha, parsed.items)
        return self._queue_work(source, sha, etag, len(parsed.items))

    def _has_outcome(self, source: InputBlob, sha: str) -> bool:
        """Whether this content already has its outcome: results, a complete manifest, or a whole-input dead
        letter. An incomplete manifest is not one: its parts may never have been queued."""
        names = [(self.containers.results, n) for n in (source.result_single, source.result_lines, source.manifest)]
        for container, name in names + [(self.containers.deadletter, source.deadletter)]:
            state = self.store.state(container, name)
            if (state and state.metadata.get(HASH_KEY) == sha and state.metadata.get("reason") != "invalid_lines"
                    and state.metadata.get(COMPLETE_KEY) != "false"):
                return True
        return False

    def _queue_work(self, source: InputBlob, sha: str, etag: str, n_items: int) -> IngestResult:
        chunk = self.limits.chunk_items
        parts = (n_items + chunk - 1) // chunk
        base = {"task": source.task, "name": source.name, "sha256": sha, "etag": etag}
        existing = self.store.state(self.containers.results, source.manifest)
        if existing and existing.metadata.get(HASH_KEY) == sha:
            # An earlier delivery of this event published the manifest and may have died before queueing every
            # part: queue the parts not yet done (a copy of one still running is deferred by its claim), cut
            # as that manifest says even if the part size has been changed since.
            planned = json.loads(self.store.read(self.containers.results, source.manifest))
            chunk, parts = planned["chunk_items"], planned["parts"]
            done = set(self._parts_done(source, sha, parts))
        elif parts == 1:
            self._send(WorkMessage(**base, start=0, end=n_items))
            return IngestResult("queued", f"{n_items} items")
        else:
            manifest = {"source": source.source, HASH_KEY: sha, "items": n_items, "parts": parts,
                        "chunk_items": chunk, "complete": False, "updated": now_iso()}
            output = json_output(self.containers.results, source.manifest, manifest, **{COMPLETE_KEY: "false"})
            if not self._publish(source, sha, etag, [output]):
                return IngestResult("stale", "the blob changed while its parts were being queued")
            done = set()
        todo = [part for part in range(parts) if source.part(part) not in done]
        for part in todo:
            self._send(WorkMessage(**base, part=part, start=part * chunk, end=min(n_items, (part + 1) * chunk),
                                   parts=parts))
        if not todo:
            self._complete_manifest_if_done(source, sha, parts)
        return IngestResult("fanned_out", f"{len(todo)} of {parts} parts")

    def _send(self, message: WorkMessage, delay_s: int = 0) -> None:
        if self.enqueue is None:
            self.handle_work(message.model_dump_json())
        else:
            self.enqueue(message.model_dump_json(), delay_s)

    # -- the queue trigger: claim, process, publish ---------------------------------------------------------
    def handle_work(self, message_text: str) -> IngestResult:
        message = WorkMessage.model_validate_json(message_text)
        source = InputBlob(message.task, message.name, self.containers)
        if done := self._done_already(source, message):
            return done
        try:
            with Claim(self.store, self.containers.claims, source.claim(message.sha256, message.part),
                       self.limits.claim_ttl_s) as claim:
                if done := self._done_already(source, message):  # finished by the claim's last holder
                    return done
                return self._process(source, message, claim)
        except ClaimHeldError as exc:
            if self.enqueue is None:  # in-process: no queue to come back from, so the caller retries
                raise
            # Another live worker has it: look again once its claim would have expired, in case it dies.
            self._send(message, delay_s=max(1, int(exc.retry_after) + 1))
            return IngestResult("requeued", str(exc))

    def _checkpointed(self, prefix: str) -> dict[str, ResultRecord]:
        """Item records kept under the claim: each item a worker got an answer for, so it is paid for once."""
        records = {}
        for name in self.store.list_states(self.containers.claims, prefix):
            record = ResultRecord.model_validate_json(self.store.read(self.containers.claims, name))
            records[record.id] = record
        return records

    def _done_already(self, source: InputBlob, message: WorkMessage) -> IngestResult | None:
        if not self._work_done(source, message):
            return None
        if message.part is not None:
            # A worker that died between publishing its part and completing the manifest left that step to
            # this copy of the message; without it the input would never get its outcome.
            self._complete_manifest_if_done(source, message.sha256, message.parts)
        return IngestResult("duplicate", f"{source.path} part {message.part} is done")

    def _work_done(self, source: InputBlob, message: WorkMessage) -> bool:
        if message.part is None:
            return self._has_outcome(source, message.sha256)
        state = self.store.state(self.containers.results, source.part(message.part))
        return bool(state and state.metadata.get(HASH_KEY) == message.sha256)

    def _process(self, source: InputBlob, message: WorkMessage, claim: Claim) -> IngestResult:
        checkpoints = f"{claim.name}/items/"
        current = self._current_items(source, message)
        if current is None:
            self._drop(checkpoints)  # a dead worker's answers for content that is gone
            return IngestResult("stale", "the input changed since this work was queued; its new event handles it")
        task = self.cascade.tasks.get(source.task)
        items = current[message.start : message.end]
        kept = self._checkpointed(checkpoints)  # answered by a worker that died before it could publish

        def keep(record: ResultRecord) -> None:
            name = checkpoints + hashlib.sha256(record.id.encode()).hexdigest()[:32] + ".json"
            self.store.write(self.containers.claims, name, record.model_dump_json(), content_type="application/json",
                             metadata={})

        try:
            fresh = self.cascade.run_batch(task, [i for i in items if i.id not in kept], on_record=keep)
        except NoTierError as exc:
            return self.deadletter(source, "no_tier", str(exc), etag=message.etag, sha=message.sha256)
        by_id = {**kept, **{r.id: r for r in fresh}}
        records = [by_id[item.id] for item in items]
        review = [r for r in records if r.status in ("needs_review", "failed")]
        results = self.containers.results
        if message.part is None:
            single = len(records) == 1 and not source.name.lower().endswith(".jsonl")
            outputs = [json_output(results, source.result_single, records[0].model_dump(mode="json")) if single
                       else jsonl_output(results, source.result_lines, records)]
            review_name = source.review
        else:
            outputs = [jsonl_output(results, source.part(message.part), records)]
            review_name = source.review_part(message.part)
        if review:
            outputs.append(jsonl_output(self.containers.review, review_name, review))
        if claim.lost:  # another worker took the work over: its outputs are the ones that count
            return IngestResult("stale", "the claim was taken over while working")
        published = self._publish(source, message.sha256, message.etag, outputs, retire=message.part is None)
        self._drop(checkpoints)  # published, or kept for content that is no longer the input's
        if not published:
            return IngestResult("stale", "the input changed while it was processed; its new content is current")
        if message.part is not None:
            self._complete_manifest_if_done(source, message.sha256, message.parts)
        if self.shadow is not None:  # after publishing: the answers are out before any is checked again
            send_shadows(shadow_requests(self.cascade, task, items, records, source.source), self.shadow)
        if message.part is None:
            return IngestResult("processed", f"{len(records)} items ({len(kept)} kept from an earlier worker)")
        return IngestResult("part_processed", source.part(message.part))

    def _drop(self, checkpoints: str) -> None:
        for name in self.store.list_states(self.containers.claims, checkpoints):
            self.store.delete(self.containers.claims, name)

    def _parts_done(self, source: InputBlob, sha: str, parts: int) -> list[str]:
        """This content's published parts, by exact name: an input named `<name>/part-...` has outputs under the
        same prefix, even with the same content hash (a copy)."""
        listed = self.store.list_states(self.containers.results, source.part_prefix)
        return [name for name in map(source.part, range(parts))
                if name in listed and listed[name].metadata.get(HASH_KEY) == sha]

    def _complete_manifest_if_done(self, source: InputBlob, sha: str, parts: int) -> None:
        for _ in range(PUBLISH_TRIES):
            manifest = self.store.state(self.containers.results, source.manifest)
            if manifest is None or manifest.metadata.get(HASH_KEY) != sha:
                # Newer content took over the name: this part belongs to nothing current.
                self._retire(source, lambda meta: meta.get(HASH_KEY) == sha)
                return
            # Each part checks, so a listing per part: names first, metadata only once there are enough names.
            if self.store.count(self.containers.results, source.part_prefix) < parts:
                return
            done = self._parts_done(source, sha, parts)
            if len(done) < parts:
                return
            body = json.loads(self.store.read(self.containers.results, source.manifest))
            if body.get("complete"):
                return
            body.update(complete=True, updated=now_iso(), part_blobs=done)
            try:  # only over the manifest of this content, as read: a late part can never overwrite a newer one
                self.store.write(self.containers.results, source.manifest, json.dumps(body, indent=2),
                                 content_type="application/json",
                                 metadata={**manifest.metadata, COMPLETE_KEY: "true"}, replacing=manifest)
                return
            except WriteConflict:
                continue

    # -- publishing and retiring outputs -----------------------------------------------------------------
    def _current_items(self, source: InputBlob, message: WorkMessage) -> list[Item] | None:
        """The input's items if its current content is still the message's; a fanned-out input is read and
        parsed once per worker for all its parts (`ParsedInputs`), each part checking only its etag."""
        state = self.store.state(self.containers.incoming, source.incoming_path)
        if state is None:
            return None
        if cached := self.parsed.get(source.incoming_path, state.etag):
            sha, items = cached
            return items if sha == message.sha256 else None
        try:
            data = self.store.read(self.containers.incoming, source.incoming_path, etag=state.etag)
        except WriteConflict:  # changed since its state was read
            return None
        sha = hashlib.sha256(data).hexdigest()
        if sha != message.sha256:
            return None
        items = parse_input(source.name, data).items
        if message.part is not None:
            self.parsed.put(source.incoming_path, state.etag, sha, items)
        return items

    def _current_data(self, source: InputBlob, sha: str) -> bytes | None:
        """The input's bytes if its current content is still `sha` (a re-upload of the same bytes is)."""
        try:
            data = self.store.read(self.containers.incoming, source.incoming_path)
        except WriteConflict:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None

    def _input_is(self, source: InputBlob, etag: str, sha: str) -> bool:
        state = self.store.state(self.containers.incoming, source.incoming_path)
        if state is None:
            return False
        return state.etag == etag or self._current_data(source, sha) is not None

    def _publish(self, source: InputBlob, sha: str, etag: str, outputs: list[Output], retire: bool = True) -> bool:
        """Write `outputs` of content `sha` while it is the input's current content, then (with `retire`)
        remove every output of older content. False if the input changed: nothing of ours is left then."""
        meta = {HASH_KEY: sha, ETAG_KEY: etag, "source": source.source}
        for output in outputs:
            for _ in range(PUBLISH_TRIES):
                existing = self.store.state(output.container, output.name)
                # Checked after reading `existing`: a newer content's output written before this point means
                # the input changed before it, so the check fails; one written after makes our write conflict.
                if not self._input_is(source, etag, sha):
                    self._retire(source, lambda m: m.get(HASH_KEY) == sha)
                    return False
                try:
                    self.store.write(output.container, output.name, output.body, content_type=output.content_type,
                                     metadata={**meta, **dict(output.metadata)}, replacing=existing,
                                     only_if_absent=existing is None)
                    break
                except WriteConflict:
                    continue
            else:
                raise WriteConflict(f"{output.container}/{output.name}: {PUBLISH_TRIES} conflicting writes")
        if not self._input_is(source, etag, sha):  # changed while we wrote: leave the name to the newer content
            self._retire(source, lambda m: m.get(HASH_KEY) == sha)
            return False
        if retire:
            self._retire(source, lambda m: m.get(HASH_KEY) != sha)
        return True

    def _retire(self, source: InputBlob, matches: Callable[[dict[str, str]], bool]) -> None:
        """Delete this input's outputs whose metadata `matches`, each only in the version that was read."""
        for container in self.containers.outputs():
            states = self.store.list_states(container, source.stem)
            for name in source.own_outputs(container, list(states)):
                if matches(states[name].metadata):
                    self.store.delete(container, name, states[name])

    # -- dead letters -----------------------------------------------------------------------------------
    def deadletter(self, source: InputBlob, reason: str, error: str, *, etag: str, sha: str | None = None,
                   extra: dict[str, Any] | None = None) -> IngestResult:
        """Publish the input's dead-letter record saying why (content `sha`, or its etag if never read)."""
        record = {"source": source.source, "task": source.task, "reason": reason, "error": error, "etag": etag,
                  HASH_KEY: sha, "at": now_iso(), **(extra or {})}
        existing = self.store.state(self.containers.deadletter, source.deadletter)
        if existing and existing.metadata.get(ETAG_KEY) == etag and existing.metadata.get("reason") == reason:
            return IngestResult("duplicate", f"already dead-lettered: {reason}")
        output = json_output(self.containers.deadletter, source.deadletter, record, reason=reason)
        if not self._publish(source, sha or f"etag:{etag}", etag, [output], retire=reason != "invalid_lines"):
            return IngestResult("stale", "the blob changed while it was dead-lettered")
        log.warning("dead-lettered %s: %s (%s)", source.source, reason, error)
        return IngestResult("deadlettered", reason)

    def deadletter_poison(self, message_text: str) -> IngestResult:
        """A work message that failed every try: a dead letter for its work, unless the work got done or the
        input has changed since (its new content has work of its own)."""
        failed = f"failed {self.limits.max_dequeue_count} times"
        try:
            message = WorkMessage.model_validate_json(message_text)
        except ValueError:
            record = {"reason": "poison_message", "error": f"not a work message; {failed}", "message": message_text,
                      "at": now_iso()}
            self.store.write(self.containers.deadletter, poison_deadletter("poison", message_text),
                             json.dumps(record, indent=2), content_type="application/json",
                             metadata={"reason": "poison_message"})
            return IngestResult("deadlettered", "poison_message")
        source = InputBlob(message.task, message.name, self.containers)
        if self._work_done(source, message):
            return IngestResult("duplicate", "the work got done after all")
        if not self._input_is(source, message.etag, message.sha256):
            return IngestResult("stale", "the input changed; its new content is processed on its own")
        name = source.deadletter if message.part is None else source.deadletter_part(message.part)
        record = {"source": source.source, "task": source.task, "reason": "poison_message", "etag": message.etag,
                  HASH_KEY: message.sha256, "at": now_iso(), "message": message_text, "error": f"the work {failed}"}
        output = json_output(self.containers.deadletter, name, record, reason="poison_message")
        if not self._publish(source, message.sha256, message.etag, [output], retire=False):
            return IngestResult("stale", "the input changed while it was dead-lettered")
        log.error("dead-lettered %s part %s: the work %s", source.source, message.part, failed)
        return IngestResult("deadlettered", "poison_message")

"""The blob path's triggers: a blob event becomes queued work, and queued work becomes published answers.

`handle_blob` (the blob trigger) reads and checks an input and either dead-letters it (dead_letters.py) or puts
work on the queue: one message for the whole input, or one per part of a large .jsonl (with a manifest,
outputs.py). `handle_work` (the queue trigger) claims the work (`claims.Claim`) before any model call, answers
its items (answering.py) and publishes the outputs (outputs.py). The model work is queue-driven so that a worker
that dies mid-item leaves a message that becomes visible again, and a copy of work that another live worker holds
is put back on the queue for later instead of being run twice. Each item's record is kept under the claim as soon
as its answer is paid for, so a worker that takes over from a dead one sends only the unanswered items. A step a
dead worker cut short is finished by the next delivery: the blob event queues the parts not yet done while the
manifest is incomplete, and a part's message that finds its part published completes the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient
from pydantic import ValidationError

from shared.core.cascade import Cascade
from shared.foundation.records import Item, ResultRecord
from shared.errors import ClaimHeldError, InputError, NoTierError, TaskError, UnknownTaskError, WriteConflict
from shared.pipeline.answering import AnswerService
from shared.pipeline.blob_names import (BLOB_NAME_MAX_CHARS, BLOB_NAME_MAX_SEGMENTS, LONGEST_SUFFIX_CHARS,
                                       has_unsafe_segment,
                                        LONGEST_SUFFIX_SEGMENTS, Containers, InputBlob, poison_deadletter)
from shared.pipeline.claims import Claim
from shared.pipeline.dead_letters import DeadLetters
from shared.pipeline.outputs import Outputs, now_iso
from shared.pipeline.parsing import parse_input
from shared.pipeline.storage import BlobStore
from shared.pipeline.work import IngestResult, WorkMessage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IngestLimits:
    max_blob_bytes: int
    chunk_items: int  # a .jsonl with more items than this is fanned out in parts of this size
    claim_ttl_s: float = 60.0  # a dead worker's claim is taken over this long after its last heartbeat


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
        # shadow(text) puts a shadow request on its queue (shared/pipeline/shadow_pick.py); without one, none is sent.
        self.shadow = shadow
        self.containers = containers
        self.parsed = ParsedInputs()
        self.answers = AnswerService(cascade)
        self.outputs = Outputs(store, containers)
        self.dead_letters = DeadLetters(self.outputs)

    # -- the blob trigger: check, then dead-letter or queue the work ------------------------------------
    def handle_blob(self, blob: BlobClient) -> IngestResult:
        source = InputBlob.from_path(blob.blob_name, self.containers)
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return IngestResult("stale", "the blob was deleted before it was processed")
        etag = props.etag
        if not source.in_task_folder:
            return self.dead_letters.input_failed(source, "no_task_folder", "blobs go under incoming/<task>/", etag=etag)
        if has_unsafe_segment(source.name):
            return self.dead_letters.input_failed(source, "invalid_name", "a path segment is empty, '.' or '..'",
                                                  etag=etag)
        if not source.name_fits:
            return self.dead_letters.input_failed(source, "name_too_long", "the name leaves no room for its outputs' names: at most "
                                   f"{BLOB_NAME_MAX_CHARS - LONGEST_SUFFIX_CHARS} characters (UTF-16) and "
                                   f"{BLOB_NAME_MAX_SEGMENTS - LONGEST_SUFFIX_SEGMENTS} segments with its task's",
                                   etag=etag)
        if props.size > self.limits.max_blob_bytes:
            return self.dead_letters.input_failed(source, "too_large", f"{props.size} bytes > limit {self.limits.max_blob_bytes}",
                                   etag=etag)
        try:
            self.cascade.tasks.get(source.task)
        except TaskError as exc:
            reason = "unknown_task" if isinstance(exc, UnknownTaskError) else "invalid_task"
            return self.dead_letters.input_failed(source, reason, str(exc), etag=etag)
        try:
            data = self.store.read(self.containers.incoming, source.incoming_path, etag=etag)
        except WriteConflict:
            return IngestResult("stale", "the blob changed since this event; the newer event handles it")
        sha = hashlib.sha256(data).hexdigest()
        if self.outputs.has_outcome(source, sha):
            return IngestResult("duplicate", f"outputs for sha256 {sha[:12]} exist")
        try:
            parsed = parse_input(source.name, data)
        except InputError as exc:
            return self.dead_letters.input_failed(source, exc.reason, str(exc), etag=etag, sha=sha)
        except Exception as exc:  # any other failure to read the input still ends as a dead letter
            log.exception("parsing %s failed", source.source)
            return self.dead_letters.input_failed(source, "unreadable", f"{type(exc).__name__}: {exc}", etag=etag, sha=sha)
        lines = [{"line": e.line, "reason": e.reason, "error": e.message, "raw": e.raw[:2000]} for e in parsed.errors]
        if not parsed.items:
            return self.dead_letters.input_failed(source, "no_valid_items", "no entry held a valid item", etag=etag, sha=sha,
                                   extra={"lines": lines})
        if lines:
            self.dead_letters.input_failed(source, "invalid_lines", f"{len(lines)} entries could not be read", etag=etag, sha=sha,
                            extra={"lines": lines})
        if len(parsed.items) > self.limits.chunk_items:  # its parts are likely to come to this worker too
            self.parsed.put(source.incoming_path, etag, sha, parsed.items)
        return self._queue_work(source, sha, etag, len(parsed.items))

    def _queue_work(self, source: InputBlob, sha: str, etag: str, n_items: int) -> IngestResult:
        chunk = self.limits.chunk_items
        parts = (n_items + chunk - 1) // chunk
        base = {"task": source.task, "name": source.name, "sha256": sha, "etag": etag}
        planned = self.outputs.planned_parts(source, sha)
        if planned is not None:
            # An earlier delivery of this event published the manifest and may have died before queueing every
            # part: queue the parts not yet done (a copy of one still running is deferred by its claim), cut
            # as that manifest says even if the part size has been changed since.
            chunk, parts = planned
            done = set(self.outputs.parts_done(source, sha, parts))
        elif parts == 1:
            self._send(WorkMessage(**base, start=0, end=n_items))
            return IngestResult("queued", f"{n_items} items")
        else:
            if not self.outputs.publish_manifest(source, sha, etag, n_items, parts, chunk):
                return IngestResult("stale", "the blob changed while its parts were being queued")
            done = set()
        todo = [part for part in range(parts) if source.part(part) not in done]
        for part in todo:
            self._send(WorkMessage(**base, part=part, start=part * chunk, end=min(n_items, (part + 1) * chunk),
                                   parts=parts))
        if not todo:
            self.outputs.complete_manifest_if_done(source, sha, parts)
        return IngestResult("fanned_out", f"{len(todo)} of {parts} parts")

    def _send(self, message: WorkMessage, delay_s: int = 0) -> None:
        if self.enqueue is None:
            self.handle_work(message.model_dump_json())
        else:
            self.enqueue(message.model_dump_json(), delay_s)

    # -- the queue trigger: claim, process, publish ---------------------------------------------------------
    def handle_work(self, message_text: str) -> IngestResult:
        try:
            message = WorkMessage.model_validate_json(message_text)
        except ValidationError as exc:  # forged or corrupt: never retried, never used in a blob name
            return self._invalid_message(message_text, exc)
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

    def _invalid_message(self, message_text: str, exc: ValidationError) -> IngestResult:
        """A dead letter under `deadletter/_/` saying which field was refused, and the message's first 2,000
        characters (its fields were not trusted enough to name the input's own dead letter)."""
        why = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']}" for e in exc.errors()[:5])
        record = {"reason": "invalid_message", "error": why, "message": message_text[:2000], "at": now_iso()}
        self.store.write(self.containers.deadletter, poison_deadletter("invalid", message_text),
                         json.dumps(record, indent=2), content_type="application/json",
                         metadata={"reason": "invalid_message"})
        log.error("dead-lettered an invalid work message: %s", why)
        return IngestResult("deadlettered", "invalid_message")

    def _checkpointed(self, prefix: str) -> dict[str, ResultRecord]:
        """Item records kept under the claim: each item a worker got an answer for, so it is paid for once."""
        records = {}
        for name in self.store.list_states(self.containers.claims, prefix):
            record = ResultRecord.model_validate_json(self.store.read(self.containers.claims, name))
            records[record.id] = record
        return records

    def _done_already(self, source: InputBlob, message: WorkMessage) -> IngestResult | None:
        if not self.outputs.work_done(source, message.sha256, message.part):
            return None
        if message.part is not None:
            # A worker that died between publishing its part and completing the manifest left that step to
            # this copy of the message; without it the input would never get its outcome.
            self.outputs.complete_manifest_if_done(source, message.sha256, message.parts)
        return IngestResult("duplicate", f"{source.path} part {message.part} is done")

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
            records = self.answers.answer(task, items, kept=kept, on_record=keep)
        except NoTierError as exc:
            return self.dead_letters.input_failed(source, "no_tier", str(exc), etag=message.etag, sha=message.sha256)
        outputs = self.outputs.of_records(source, message.part, records)
        if claim.lost:  # another worker took the work over: its outputs are the ones that count
            return IngestResult("stale", "the claim was taken over while working")
        published = self.outputs.publish(source, message.sha256, message.etag, outputs, retire=message.part is None)
        self._drop(checkpoints)  # published, or kept for content that is no longer the input's
        if not published:
            return IngestResult("stale", "the input changed while it was processed; its new content is current")
        if message.part is not None:
            self.outputs.complete_manifest_if_done(source, message.sha256, message.parts)
        if self.shadow is not None:  # after publishing: the answers are out before any is checked again
            self.answers.shadow(task, items, records, source=source.source, send=self.shadow)
        if message.part is None:
            return IngestResult("processed", f"{len(records)} items ({len(kept)} kept from an earlier worker)")
        return IngestResult("part_processed", source.part(message.part))

    def _drop(self, checkpoints: str) -> None:
        for name in self.store.list_states(self.containers.claims, checkpoints):
            self.store.delete(self.containers.claims, name)

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

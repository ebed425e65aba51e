"""Blob-driven processing: one incoming blob in, result / review / dead-letter blobs out.

Delivery is at least once, so everything here is idempotent: output names derive from the input's name
(`blob_names.InputBlob`), and every output carries the SHA-256 of the input it came from; an input whose
result already carries its hash is neither processed nor paid for again. The input blob is never changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient
from pydantic import BaseModel

from shared.core.cascade import Cascade
from shared.core.records import ResultRecord
from shared.core.tasks import AnyTask
from shared.errors import InputError, NoTierError, UnknownTaskError
from shared.pipeline.blob_names import Containers, InputBlob
from shared.pipeline.parsing import ParsedInput, parse_input
from shared.pipeline.storage import BlobStore

log = logging.getLogger(__name__)
HASH_KEY = "source_sha256"
Disposition = Literal["processed", "fanned_out", "duplicate", "deadlettered", "part_processed", "stale"]


@dataclass(frozen=True)
class IngestLimits:
    max_blob_bytes: int
    chunk_items: int  # a .jsonl with more items than this is fanned out in parts of this size


class ChunkMessage(BaseModel):
    """One part of a large .jsonl, processed by the queue-triggered function."""

    task: str
    name: str
    sha256: str
    part: int
    start: int
    end: int
    parts: int


@dataclass
class IngestResult:
    disposition: Disposition
    detail: str = ""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ingestor:
    def __init__(self, cascade: Cascade, store: BlobStore, limits: IngestLimits,
                 enqueue: Callable[[str], Any] | None = None, containers: Containers = Containers()) -> None:
        self.cascade = cascade
        self.store = store
        self.limits = limits
        self.enqueue = enqueue  # puts a message on the chunk queue; without one, large files run in one go
        self.containers = containers

    # -- the blob trigger ---------------------------------------------------------------------------------
    def handle_blob(self, blob: BlobClient) -> IngestResult:
        source = InputBlob.from_path(blob.blob_name, self.containers)
        if source.task == "_":
            return self.deadletter(source, "no_task_folder", "blobs go under incoming/<task>/")
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return IngestResult("stale", "the blob was deleted before it was processed")
        if props.size > self.limits.max_blob_bytes:
            return self.deadletter(source, "too_large", f"{props.size} bytes > limit {self.limits.max_blob_bytes}",
                                   etag=props.etag)
        try:
            task = self.cascade.tasks.get(source.task)
        except UnknownTaskError as exc:
            return self.deadletter(source, "unknown_task", str(exc), etag=props.etag)
        data = blob.download_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified).readall()
        sha = hashlib.sha256(data).hexdigest()
        if self._already_done(source, sha):
            return IngestResult("duplicate", f"results for sha256 {sha[:12]} exist")
        try:
            parsed = parse_input(source.name, data)
        except InputError as exc:
            return self.deadletter(source, exc.reason, str(exc), etag=props.etag, sha=sha)
        if parsed.errors:
            self.deadletter_lines(source, parsed, sha)
        if not parsed.items:
            return self.deadletter(source, "no_valid_items", "no line held a valid item", sha=sha)
        if len(parsed.items) > self.limits.chunk_items and self.enqueue is not None:
            return self._fan_out(source, sha, len(parsed.items))
        return self._process(task, source, sha, parsed)

    def _already_done(self, source: InputBlob, sha: str) -> bool:
        names = [source.result_single, source.result_lines, source.manifest]
        return any((self.store.metadata(self.containers.results, n) or {}).get(HASH_KEY) == sha for n in names)

    def _process(self, task: AnyTask, source: InputBlob, sha: str, parsed: ParsedInput) -> IngestResult:
        try:
            records = asyncio.run(self.cascade.process_batch(task, parsed.items))
        except NoTierError as exc:
            return self.deadletter(source, "no_tier", str(exc), sha=sha)
        meta = {HASH_KEY: sha, "source": source.source}
        self._write_review(source.review, records, meta)
        if len(records) == 1 and not source.name.lower().endswith(".jsonl"):
            self.store.write_json(self.containers.results, source.result_single, records[0].model_dump(mode="json"), meta)
        else:
            self.store.write_jsonl(self.containers.results, source.result_lines, [r.model_dump_json() for r in records], meta)
        return IngestResult("processed", f"{len(records)} items")

    def _write_review(self, name: str, records: list[ResultRecord], meta: dict[str, str]) -> None:
        review = [r.model_dump_json() for r in records if r.status in ("needs_review", "failed")]
        if review:
            self.store.write_jsonl(self.containers.review, name, review, meta)

    # -- fan-out for large .jsonl -----------------------------------------------------------------------
    def _fan_out(self, source: InputBlob, sha: str, n_items: int) -> IngestResult:
        chunk = self.limits.chunk_items
        parts = (n_items + chunk - 1) // chunk
        for part in range(parts):
            message = ChunkMessage(task=source.task, name=source.name, sha256=sha, part=part, start=part * chunk,
                                   end=min(n_items, (part + 1) * chunk), parts=parts)
            self.enqueue(message.model_dump_json())
        # Written after enqueueing: a crash in between means a redelivery enqueues again (parts are idempotent).
        manifest = {"source": source.source, HASH_KEY: sha, "items": n_items, "parts": parts, "chunk_items": chunk,
                    "complete": False, "updated": now_iso()}
        self.store.write_json(self.containers.results, source.manifest, manifest, {HASH_KEY: sha})
        return IngestResult("fanned_out", f"{parts} parts")

    def handle_chunk(self, message_text: str) -> IngestResult:
        """Process one part of a fanned-out input, reading the input from the incoming container."""
        message = ChunkMessage.model_validate_json(message_text)
        source = InputBlob(message.task, message.name, self.containers)
        part_name = source.part(message.part)
        existing = self.store.metadata(self.containers.results, part_name) or {}
        if existing.get(HASH_KEY) != message.sha256:
            data = self.store.read(self.containers.incoming, source.path)
            if hashlib.sha256(data).hexdigest() != message.sha256:
                return IngestResult("stale", "the input changed since this part was enqueued; its new event handles it")
            items = parse_input(source.name, data).items[message.start : message.end]
            records = asyncio.run(self.cascade.process_batch(self.cascade.tasks.get(source.task), items))
            meta = {HASH_KEY: message.sha256, "source": source.source, "part": str(message.part)}
            self._write_review(source.review_part(message.part), records, meta)
            self.store.write_jsonl(self.containers.results, part_name, [r.model_dump_json() for r in records], meta)
        self._mark_complete_if_done(source, message)
        return IngestResult("part_processed", part_name)

    def _mark_complete_if_done(self, source: InputBlob, message: ChunkMessage) -> None:
        done = [n for n in self.store.list_names(self.containers.results, source.part_prefix)
                if (self.store.metadata(self.containers.results, n) or {}).get(HASH_KEY) == message.sha256]
        if len(done) == message.parts:
            manifest = {"source": source.source, HASH_KEY: message.sha256, "parts": message.parts, "complete": True,
                        "updated": now_iso(), "part_blobs": sorted(done)}
            self.store.write_json(self.containers.results, source.manifest, manifest, {HASH_KEY: message.sha256})

    # -- dead letters -----------------------------------------------------------------------------------
    def deadletter(self, source: InputBlob, reason: str, error: str, *, name: str | None = None,
                   etag: str | None = None, sha: str | None = None, extra: dict[str, Any] | None = None) -> IngestResult:
        """Write the dead-letter record `name` (default: the input's own) saying why."""
        record = {"source": source.source, "task": source.task, "reason": reason, "error": error, "etag": etag,
                  HASH_KEY: sha, "at": now_iso(), **(extra or {})}
        self.store.write_json(self.containers.deadletter, name or source.deadletter, record, {"reason": reason})
        log.warning("dead-lettered %s: %s (%s)", source.source, reason, error)
        return IngestResult("deadlettered", reason)

    def deadletter_lines(self, source: InputBlob, parsed: ParsedInput, sha: str) -> None:
        lines = [{"line": e.line, "reason": e.reason, "error": e.message, "raw": e.raw[:2000]} for e in parsed.errors]
        self.deadletter(source, "invalid_lines", f"{len(lines)} lines could not be read", sha=sha,
                        extra={"lines": lines})

    def deadletter_poison(self, message_text: str, dequeue_count: int | None) -> IngestResult:
        try:
            message = ChunkMessage.model_validate_json(message_text)
        except ValueError:
            digest = hashlib.sha256(message_text.encode()).hexdigest()[:16]
            source, name = InputBlob("_", f"poison-{digest}", self.containers), None
        else:
            source = InputBlob(message.task, message.name, self.containers)
            name = source.deadletter_part(message.part)
        return self.deadletter(source, "poison_message", f"the chunk failed {dequeue_count or 'too many'} times",
                               name=name, extra={"message": message_text})

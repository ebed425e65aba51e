"""Blob-driven processing: one incoming blob in, result / review / dead-letter blobs out.

Delivery is at least once, so everything here is idempotent: output names are derived from the input
name, and every output carries the SHA-256 of the input it came from; an input whose result already
carries its hash is neither processed nor paid for again. The input blob is never changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobClient
from pydantic import BaseModel

from shared.cascade import Engine, NoTierError
from shared.items import InputError, ParsedInput, parse_input
from shared.results import ResultRecord
from shared.storage import BlobStore, Containers

log = logging.getLogger(__name__)
HASH_KEY = "source_sha256"
Outcome = Literal["processed", "fanned_out", "duplicate", "deadlettered", "part_processed", "stale"]


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
class BlobOutcome:
    outcome: Outcome
    detail: str = ""


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Ingestor:
    def __init__(self, engine: Engine, store: BlobStore, enqueue=None, containers: Containers = Containers()) -> None:
        self.engine = engine
        self.store = store
        self.enqueue = enqueue  # callable(str) putting a message on the chunk queue
        self.containers = containers

    # -- names ------------------------------------------------------------------------------------------
    def result_names(self, task: str, name: str) -> tuple[str, str]:
        return f"{task}/{name}.json", f"{task}/{name}.jsonl"

    def manifest_name(self, task: str, name: str) -> str:
        return f"{task}/{name}/manifest.json"

    # -- the blob trigger ---------------------------------------------------------------------------------
    def handle_blob(self, blob: BlobClient) -> BlobOutcome:
        path = blob.blob_name
        task_name, _, name = path.partition("/")
        if not name:
            return self.deadletter("_", path, path, "no_task_folder", "blobs go under incoming/<task>/")
        try:
            props = blob.get_blob_properties()
        except ResourceNotFoundError:
            return BlobOutcome("stale", "the blob was deleted before it was processed")
        if props.size > self.engine.settings.max_blob_bytes:
            return self.deadletter(task_name, name, path, "too_large",
                                   f"{props.size} bytes > limit {self.engine.settings.max_blob_bytes}", etag=props.etag)
        try:
            self.engine.tasks.get(task_name)
        except KeyError:
            return self.deadletter(task_name, name, path, "unknown_task", f"no task named {task_name!r}", etag=props.etag)
        data = blob.download_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified).readall()
        sha = hashlib.sha256(data).hexdigest()
        if self._already_done(task_name, name, sha):
            return BlobOutcome("duplicate", f"results for sha256 {sha[:12]} exist")
        try:
            parsed = parse_input(name, data)
        except InputError as exc:
            return self.deadletter(task_name, name, path, exc.reason, str(exc), etag=props.etag, sha=sha)
        if parsed.errors:
            self.deadletter_lines(task_name, name, path, parsed, sha)
        if not parsed.items:
            return self.deadletter(task_name, name, path, "no_valid_items", "no line held a valid item", sha=sha)
        chunk = self.engine.settings.chunk_items
        if len(parsed.items) > chunk and self.enqueue is not None:
            return self._fan_out(task_name, name, path, sha, len(parsed.items), chunk)
        return self._process(task_name, name, path, sha, parsed)

    def _already_done(self, task: str, name: str, sha: str) -> bool:
        names = [*self.result_names(task, name), self.manifest_name(task, name)]
        return any((self.store.metadata(self.containers.results, n) or {}).get(HASH_KEY) == sha for n in names)

    def _process(self, task_name: str, name: str, path: str, sha: str, parsed: ParsedInput) -> BlobOutcome:
        task = self.engine.tasks.get(task_name)
        try:
            records = asyncio.run(self.engine.process_batch(task, parsed.items))
        except NoTierError as exc:
            return self.deadletter(task_name, name, path, "no_tier", str(exc), sha=sha)
        meta = {HASH_KEY: sha, "source": f"{self.containers.incoming}/{path}"}
        single = len(records) == 1 and not name.lower().endswith(".jsonl")
        result_json, result_jsonl = self.result_names(task_name, name)
        self._write_review(task_name, name, records, meta)
        if single:
            self.store.write_json(self.containers.results, result_json, records[0].model_dump(mode="json"), meta)
        else:
            self.store.write_jsonl(self.containers.results, result_jsonl, [r.model_dump_json() for r in records], meta)
        return BlobOutcome("processed", f"{len(records)} items")

    def _write_review(self, task: str, name: str, records: list[ResultRecord], meta: dict[str, str], suffix: str = "") -> None:
        review = [r.model_dump_json() for r in records if r.status in ("needs_review", "failed")]
        if review:
            self.store.write_jsonl(self.containers.review, f"{task}/{name}{suffix}.jsonl", review, meta)

    # -- fan-out for large .jsonl -----------------------------------------------------------------------
    def _fan_out(self, task: str, name: str, path: str, sha: str, n_items: int, chunk: int) -> BlobOutcome:
        parts = (n_items + chunk - 1) // chunk
        for part in range(parts):
            message = ChunkMessage(task=task, name=name, sha256=sha, part=part, start=part * chunk,
                                   end=min(n_items, (part + 1) * chunk), parts=parts)
            self.enqueue(message.model_dump_json())
        # Written after enqueueing: a crash in between means a redelivery enqueues again (parts are idempotent).
        manifest = {"source": f"{self.containers.incoming}/{path}", HASH_KEY: sha, "items": n_items,
                    "parts": parts, "chunk_items": chunk, "complete": False, "updated": now_iso()}
        self.store.write_json(self.containers.results, self.manifest_name(task, name), manifest, {HASH_KEY: sha})
        return BlobOutcome("fanned_out", f"{parts} parts")

    def handle_chunk(self, message_text: str, read_source) -> BlobOutcome:
        """Process one part. `read_source(path)` returns the input blob's bytes."""
        message = ChunkMessage.model_validate_json(message_text)
        part_name = f"{message.task}/{message.name}/part-{message.part:05d}.jsonl"
        existing = self.store.metadata(self.containers.results, part_name) or {}
        if existing.get(HASH_KEY) != message.sha256:
            path = f"{message.task}/{message.name}"
            data = read_source(path)
            if hashlib.sha256(data).hexdigest() != message.sha256:
                return BlobOutcome("stale", "the input changed since this part was enqueued; its new event handles it")
            items = parse_input(message.name, data).items[message.start : message.end]
            task = self.engine.tasks.get(message.task)
            records = asyncio.run(self.engine.process_batch(task, items))
            meta = {HASH_KEY: message.sha256, "source": f"{self.containers.incoming}/{path}", "part": str(message.part)}
            self._write_review(message.task, message.name, records, meta, suffix=f"/part-{message.part:05d}")
            self.store.write_jsonl(self.containers.results, part_name, [r.model_dump_json() for r in records], meta)
        self._mark_complete_if_done(message)
        return BlobOutcome("part_processed", part_name)

    def _mark_complete_if_done(self, message: ChunkMessage) -> None:
        prefix = f"{message.task}/{message.name}/part-"
        done = [n for n in self.store.list_names(self.containers.results, prefix)
                if (self.store.metadata(self.containers.results, n) or {}).get(HASH_KEY) == message.sha256]
        if len(done) == message.parts:
            manifest_name = self.manifest_name(message.task, message.name)
            manifest = {"source": f"{self.containers.incoming}/{message.task}/{message.name}", HASH_KEY: message.sha256,
                        "parts": message.parts, "complete": True, "updated": now_iso(),
                        "part_blobs": sorted(done)}
            self.store.write_json(self.containers.results, manifest_name, manifest, {HASH_KEY: message.sha256})

    # -- dead letters -----------------------------------------------------------------------------------
    def deadletter(self, task: str, name: str, path: str, reason: str, error: str, *, etag: str | None = None,
                   sha: str | None = None, extra: dict[str, Any] | None = None) -> BlobOutcome:
        record = {"source": f"{self.containers.incoming}/{path}", "task": task, "reason": reason, "error": error,
                  "etag": etag, HASH_KEY: sha, "at": now_iso(), **(extra or {})}
        self.store.write_json(self.containers.deadletter, f"{task}/{name}.json", record, {"reason": reason})
        log.warning("dead-lettered %s: %s (%s)", path, reason, error)
        return BlobOutcome("deadlettered", reason)

    def deadletter_lines(self, task: str, name: str, path: str, parsed: ParsedInput, sha: str) -> None:
        lines = [{"line": e.line, "reason": e.reason, "error": e.message, "raw": e.raw[:2000]} for e in parsed.errors]
        self.deadletter(task, name, path, "invalid_lines", f"{len(lines)} lines could not be read", sha=sha,
                        extra={"lines": lines})

    def deadletter_poison(self, message_text: str, dequeue_count: int | None) -> BlobOutcome:
        try:
            message = ChunkMessage.model_validate_json(message_text)
            task, name = message.task, f"{message.name}/part-{message.part:05d}"
            path = f"{message.task}/{message.name}"
        except ValueError:
            task, name, path = "_", f"poison-{hashlib.sha256(message_text.encode()).hexdigest()[:16]}", "?"
        return self.deadletter(task, name, path, "poison_message",
                               f"the chunk failed {dequeue_count or 'too many'} times", extra={"message": message_text})


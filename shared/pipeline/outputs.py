"""An input's outputs: published only while the input has the content they came from, older content's retired.

Every output carries the input's content hash (`source_sha256`) and etag. `Outputs.publish` writes an output only
while the input is still the content it came from, over the exact version that was read, and then removes every
output of older content of the same name (results, review, dead letters, surplus parts, the manifest). Inputs are
never changed or deleted.

A large .jsonl is fanned out in parts, and its outcome is its manifest, `results/<task>/<name>/manifest.json`:
published incomplete before any part is queued, and completed (`"complete": true`, also in its metadata) by
whichever part finds every part published.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from shared.foundation.records import ResultRecord
from shared.errors import WriteConflict
from shared.pipeline.blob_names import ETAG_KEY, HASH_KEY, Containers, InputBlob
from shared.pipeline.storage import BlobStore

COMPLETE_KEY = "complete"  # a manifest's metadata: "false" until every part is published
PUBLISH_TRIES = 5


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


class Outputs:
    """Publishing and retiring the outputs of inputs in one account."""

    def __init__(self, store: BlobStore, containers: Containers = Containers()) -> None:
        self.store = store
        self.containers = containers

    def has_outcome(self, source: InputBlob, sha: str) -> bool:
        """Whether this content already has its outcome: results, a complete manifest, or a whole-input dead
        letter. An incomplete manifest is not one: its parts may never have been queued."""
        names = [(self.containers.results, n) for n in (source.result_single, source.result_lines, source.manifest)]
        for container, name in names + [(self.containers.deadletter, source.deadletter)]:
            state = self.store.state(container, name)
            if (state and state.metadata.get(HASH_KEY) == sha and state.metadata.get("reason") != "invalid_lines"
                    and state.metadata.get(COMPLETE_KEY) != "false"):
                return True
        return False

    def work_done(self, source: InputBlob, sha: str, part: int | None) -> bool:
        """Whether the work on content `sha` (the whole input, or one part of it) has its outputs."""
        if part is None:
            return self.has_outcome(source, sha)
        state = self.store.state(self.containers.results, source.part(part))
        return bool(state and state.metadata.get(HASH_KEY) == sha)

    def of_records(self, source: InputBlob, part: int | None, records: list[ResultRecord]) -> list[Output]:
        """The results of answered work (the whole input, or one part), and its review items if any."""
        results = self.containers.results
        if part is None:
            single = len(records) == 1 and not source.name.lower().endswith(".jsonl")
            outputs = [json_output(results, source.result_single, records[0].model_dump(mode="json")) if single
                       else jsonl_output(results, source.result_lines, records)]
            review_name = source.review
        else:
            outputs = [jsonl_output(results, source.part(part), records)]
            review_name = source.review_part(part)
        review = [r for r in records if r.status in ("needs_review", "failed")]
        if review:
            outputs.append(jsonl_output(self.containers.review, review_name, review))
        return outputs

    def input_is(self, source: InputBlob, etag: str, sha: str) -> bool:
        """Whether the input still has content `sha`: the version `etag`, or a re-upload of the same bytes."""
        state = self.store.state(self.containers.incoming, source.incoming_path)
        if state is None:
            return False
        return state.etag == etag or self._current_data(source, sha) is not None

    def _current_data(self, source: InputBlob, sha: str) -> bytes | None:
        """The input's bytes if its current content is still `sha` (a re-upload of the same bytes is)."""
        try:
            data = self.store.read(self.containers.incoming, source.incoming_path)
        except WriteConflict:
            return None
        return data if hashlib.sha256(data).hexdigest() == sha else None

    def publish(self, source: InputBlob, sha: str, etag: str, outputs: list[Output], retire: bool = True) -> bool:
        """Write `outputs` of content `sha` while it is the input's current content, then (with `retire`)
        remove every output of older content. False if the input changed: nothing of ours is left then."""
        meta = {HASH_KEY: sha, ETAG_KEY: etag, "source": source.source}
        for output in outputs:
            for _ in range(PUBLISH_TRIES):
                existing = self.store.state(output.container, output.name)
                # Checked after reading `existing`: a newer content's output written before this point means
                # the input changed before it, so the check fails; one written after makes our write conflict.
                if not self.input_is(source, etag, sha):
                    self.retire(source, lambda m: m.get(HASH_KEY) == sha)
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
        if not self.input_is(source, etag, sha):  # changed while we wrote: leave the name to the newer content
            self.retire(source, lambda m: m.get(HASH_KEY) == sha)
            return False
        if retire:
            self.retire(source, lambda m: m.get(HASH_KEY) != sha)
        return True

    def retire(self, source: InputBlob, matches: Callable[[dict[str, str]], bool]) -> None:
        """Delete this input's outputs whose metadata `matches`, each only in the version that was read."""
        for container in self.containers.outputs():
            states = self.store.list_states(container, source.stem)
            for name in source.own_outputs(container, list(states)):
                if matches(states[name].metadata):
                    self.store.delete(container, name, states[name])

    # -- the fan-out manifest -------------------------------------------------------------------------------
    def planned_parts(self, source: InputBlob, sha: str) -> tuple[int, int] | None:
        """(items a part, parts) of this content's published manifest, if it has one."""
        existing = self.store.state(self.containers.results, source.manifest)
        if not (existing and existing.metadata.get(HASH_KEY) == sha):
            return None
        planned = json.loads(self.store.read(self.containers.results, source.manifest))
        return planned["chunk_items"], planned["parts"]

    def publish_manifest(self, source: InputBlob, sha: str, etag: str, n_items: int, parts: int,
                         chunk_items: int) -> bool:
        """Publish the incomplete manifest of a fan-out; False if the input changed meanwhile."""
        manifest = {"source": source.source, HASH_KEY: sha, "items": n_items, "parts": parts,
                    "chunk_items": chunk_items, "complete": False, "updated": now_iso()}
        output = json_output(self.containers.results, source.manifest, manifest, **{COMPLETE_KEY: "false"})
        return self.publish(source, sha, etag, [output])

    def parts_done(self, source: InputBlob, sha: str, parts: int) -> list[str]:
        """This content's published parts, by exact name: an input named `<name>/part-...` has outputs under the
        same prefix, even with the same content hash (a copy)."""
        listed = self.store.list_states(self.containers.results, source.part_prefix)
        return [name for name in map(source.part, range(parts))
                if name in listed and listed[name].metadata.get(HASH_KEY) == sha]

    def complete_manifest_if_done(self, source: InputBlob, sha: str, parts: int) -> None:
        for _ in range(PUBLISH_TRIES):
            manifest = self.store.state(self.containers.results, source.manifest)
            if manifest is None or manifest.metadata.get(HASH_KEY) != sha:
                # Newer content took over the name: this part belongs to nothing current.
                self.retire(source, lambda meta: meta.get(HASH_KEY) == sha)
                return
            # Each part checks, so a listing per part: names first, metadata only once there are enough names.
            if self.store.count(self.containers.results, source.part_prefix) < parts:
                return
            done = self.parts_done(source, sha, parts)
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

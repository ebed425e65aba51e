"""The review queue: items no tier answered acceptably, and a person's decision on each.

Pending items are the records in `review/<task>/...` (one ResultRecord per line); their text is read from the
input they came from. `ReviewQueue.decide` takes accept (the draft is right), correct (a final answer, validated
against the task) or reject (no answer is right), and in this order, each step safe to repeat:

1. writes a CorrectionRecord to `corrections/<task>/<hash of input and id>.json`, only if this item (of this
   input's content) has none: of decisions made at once, one stands and the others are a WriteConflict naming
   it. A decision that finds one standing (its maker died before step 3) finishes that one's steps first. A
   correction of the item in older content of the same input is replaced;
2. updates the item's record in `results/` to status `reviewed` with the final answer and confidence 1.0 (a
   person decided; none when rejected), keeping every attempt;
3. removes the item from `review/` (the blob is deleted when it empties).

Blob updates are conditional on the version read, and retried when another writer got there first.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Callable

from pydantic import BaseModel

from shared.foundation.records import CorrectionRecord, ResultRecord, ReviewDecision
from shared.foundation.tasks import AnyTask, ClassificationTask, TaskCatalog
from shared.foundation.text_files import jsonl_lines
from shared.errors import InputError, ReviewItemNotFound, WriteConflict
from shared.pipeline.blob_names import HASH_KEY, Containers, InputBlob, correction, input_of_output
from shared.pipeline.parsing import parse_input
from shared.pipeline.storage import BlobStore

PENDING = ("needs_review", "failed")
DECIDED_ITEM_KEY = "decided_item"  # a correction's metadata: `PendingItem.key` of the item it decides
WRITE_TRIES = 5


class PendingItem(BaseModel):
    source: str  # the input, `<task>/<name>` in incoming/
    source_sha256: str  # the input's content the item's record was made from
    review_blob: str
    text: str
    record: ResultRecord

    @property
    def key(self) -> str:
        """This item of this input's content, apart from any other: a correction's metadata names it (a
        metadata value may be shortened, a name in it could not be compared)."""
        return hashlib.sha256(f"{self.source}\n{self.source_sha256}\n{self.record.id}".encode("utf-8")).hexdigest()


class ReviewQueue:
    def __init__(self, store: BlobStore, tasks: TaskCatalog, containers: Containers = Containers()) -> None:
        self.store = store
        self.tasks = tasks
        self.containers = containers

    def pending(self, task: str) -> list[PendingItem]:
        """Every item waiting in the task's review queue, oldest input first."""
        self.tasks.get(task)  # an unknown task is an UnknownTaskError, not an empty queue
        items: list[PendingItem] = []
        for name, state in sorted(self.store.list_states(self.containers.review, f"{task}/").items()):
            source = input_of_output(name, self.containers)
            if source is None:
                continue
            records = _records(self.store.read(self.containers.review, name))
            texts = self._texts(source)
            items += [PendingItem(source=source.path, source_sha256=state.metadata.get(HASH_KEY, ""), review_blob=name,
                                  text=texts.get(r.id, ""), record=r)
                      for r in records if r.status in PENDING]
        return items

    def find(self, task_name: str, item_id: str, source: str) -> PendingItem:
        """The item waiting from input `source` (`<task>/<name>`), read directly: that input's review blob (or
        its parts' blobs, one listing) and its text, however much else waits in the queue."""
        blob = InputBlob.from_path(source, self.containers)
        if blob.task != task_name or not blob.in_task_folder:
            raise ReviewItemNotFound(f"{source!r} is not an input of {task_name}")
        listed = self.store.list_states(self.containers.review, blob.part_prefix)
        if whole := self.store.state(self.containers.review, blob.review):
            listed[blob.review] = whole
        for name in blob.own_outputs(self.containers.review, sorted(listed)):
            for record in _records(self.store.read(self.containers.review, name)):
                if record.id == item_id and record.status in PENDING:
                    return PendingItem(source=blob.path, source_sha256=listed[name].metadata.get(HASH_KEY, ""),
                                       review_blob=name, text=self._texts(blob).get(item_id, ""), record=record)
        raise ReviewItemNotFound(f"no item {item_id!r} from {source} waits in review for {task_name}")

    def decide(self, task_name: str, item_id: str, decision: ReviewDecision, answer: Any = None, *, by: str,
               source: str) -> CorrectionRecord:
        """Decide the item `item_id` of input `source` (ids are unique within one input only)."""
        task = self.tasks.get(task_name)
        item = self.find(task.name, item_id, source)
        final = _final_answer(task, decision, answer, item.record)
        source = InputBlob.from_path(item.source, self.containers)
        decided = CorrectionRecord(task=task.name, id=item_id, source=source.source,
                                   text=item.text or "(text not found)", decision=decision, final_answer=final,
                                   draft_answer=item.record.answer, draft_tier=item.record.tier, by=by,
                                   at=datetime.now(timezone.utc))
        standing = self._record_decision(correction(task.name, item.source, item_id), decided, item)
        # results/ and review/ share names (<input>.jsonl, <input>/part-NNNNN.jsonl), but a one-item input's
        # results are <input>.json
        results_blob = item.review_blob
        if item.review_blob == source.review and self.store.state(self.containers.results, source.result_single):
            results_blob = source.result_single
        self._rewrite(self.containers.results, results_blob, lambda r: _reviewed(r, standing) if r.id == item_id else r)
        self._rewrite(self.containers.review, item.review_blob, lambda r: None if r.id == item_id else r)
        if standing is not decided:
            raise WriteConflict(f"item {item_id!r} was decided already: {standing.decision} by {standing.by} at "
                                f"{standing.at.isoformat()}")
        return decided

    def _record_decision(self, name: str, decided: CorrectionRecord, item: PendingItem) -> CorrectionRecord:
        """Write `decided` unless this item already has a decision; the one that stands."""
        for _ in range(WRITE_TRIES):
            existing = self.store.state(self.containers.corrections, name)
            if existing is not None and existing.metadata.get(DECIDED_ITEM_KEY) == item.key:
                return CorrectionRecord.model_validate_json(self.store.read(self.containers.corrections, name))
            try:
                self.store.write(self.containers.corrections, name, decided.model_dump_json(),
                                 content_type="application/json",
                                 metadata={"source": item.source, HASH_KEY: item.source_sha256,
                                           DECIDED_ITEM_KEY: item.key},
                                 replacing=existing, only_if_absent=existing is None)
                return decided
            except WriteConflict:
                continue
        raise WriteConflict(f"{self.containers.corrections}/{name} kept changing; try the decision again")

    def _texts(self, source: InputBlob) -> dict[str, str]:
        state = self.store.state(self.containers.incoming, source.incoming_path)
        if state is None:
            return {}
        data = self.store.read(self.containers.incoming, source.incoming_path)
        try:
            return {item.id: item.text for item in parse_input(source.name, data).items}
        except InputError:
            return {}

    def _rewrite(self, container: str, name: str, change: Callable[[ResultRecord], ResultRecord | None]) -> None:
        """Apply `change` to every record of a blob (None drops it), conditional on the version read."""
        for _ in range(WRITE_TRIES):
            state = self.store.state(container, name)
            if state is None:
                return
            try:
                data = self.store.read(container, name, etag=state.etag)
                records = _records(data)
                kept = [changed for r in records if (changed := change(r)) is not None]
                if kept == records:  # already so (a decision finished by another): nothing to write
                    return
                if not kept:
                    self.store.delete(container, name, state)
                elif name.endswith(".jsonl"):
                    self.store.write(container, name, "".join(r.model_dump_json() + "\n" for r in kept),
                                     content_type="application/x-ndjson", metadata=state.metadata, replacing=state)
                else:
                    self.store.write(container, name, kept[0].model_dump_json(indent=2),
                                     content_type="application/json", metadata=state.metadata, replacing=state)
                return
            except WriteConflict:
                continue
        raise WriteConflict(f"{container}/{name} kept changing; try the decision again")


def _records(data: bytes) -> list[ResultRecord]:
    text = data.decode("utf-8").strip()
    if not text:
        return []
    if text.startswith("{") and "\n{" not in text:  # a single item's pretty-printed record
        return [ResultRecord.model_validate_json(text)]
    return [ResultRecord.model_validate_json(line) for _, line in jsonl_lines(text)]


def _final_answer(task: AnyTask, decision: ReviewDecision, answer: Any, draft: ResultRecord) -> Any:
    if decision == "reject":
        return None
    final = draft.answer if decision == "accept" else answer
    if final is None:
        raise InputError("no_answer", "there is no draft to accept: correct it with an answer, or reject it"
                         if decision == "accept" else "a correction needs an answer")
    if isinstance(task, ClassificationTask):
        if final not in task.allowed_labels:
            raise InputError("invalid_answer", f"{final!r} is not a label of {task.name}: "
                             f"{', '.join(task.allowed_labels)}")
    else:
        errors = task.validation_errors(final)
        if errors:
            raise InputError("invalid_answer", "; ".join(errors))
    return final


def _reviewed(record: ResultRecord, decided: CorrectionRecord) -> ResultRecord:
    rejected = decided.decision == "reject"
    return record.model_copy(update={
        "status": "reviewed", "answer": decided.final_answer, "confidence": None if rejected else 1.0,
        "confidence_method": f"review: {decided.decision} by {decided.by}", "field_confidence": None,
        "finished_at": decided.at})


"""Dead letters: a record, in the deadletter container, of an input or its work that ends without results, and why.

An input that cannot be used at all has `deadletter/<task>/<name>.json` with a reason code (and retires the
outputs of its older content); a usable file with bad lines keeps its results and has one too, `invalid_lines`.
Work that failed every try of the queue has one for the input or its part, unless the work got done after all or
the input changed since; a message that is not work at all has one under `deadletter/_/`.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from shared.pipeline.blob_names import ETAG_KEY, HASH_KEY, InputBlob, poison_deadletter
from shared.pipeline.outputs import Outputs, json_output, now_iso
from shared.pipeline.work import IngestResult, WorkMessage

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, outputs: Outputs) -> None:
        self.outputs = outputs
        self.store = outputs.store
        self.containers = outputs.containers

    def input_failed(self, source: InputBlob, reason: str, error: str, *, etag: str, sha: str | None = None,
                     extra: dict[str, Any] | None = None) -> IngestResult:
        """Publish the input's dead-letter record saying why (content `sha`, or its etag if never read)."""
        record = {"source": source.source, "task": source.task, "reason": reason, "error": error, "etag": etag,
                  HASH_KEY: sha, "at": now_iso(), **(extra or {})}
        existing = self.store.state(self.containers.deadletter, source.deadletter)
        if existing and existing.metadata.get(ETAG_KEY) == etag and existing.metadata.get("reason") == reason:
            return IngestResult("duplicate", f"already dead-lettered: {reason}")
        output = json_output(self.containers.deadletter, source.deadletter, record, reason=reason)
        if not self.outputs.publish(source, sha or f"etag:{etag}", etag, [output], retire=reason != "invalid_lines"):
            return IngestResult("stale", "the blob changed while it was dead-lettered")
        log.warning("dead-lettered %s: %s (%s)", source.source, reason, error)
        return IngestResult("deadlettered", reason)

    def poison_work(self, message_text: str, tries: int) -> IngestResult:
        """A work message that failed every one of its `tries`: a dead letter for its work, unless the work got
        done or the input has changed since (its new content has work of its own)."""
        failed = f"failed {tries} times"
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
        if self.outputs.work_done(source, message.sha256, message.part):
            return IngestResult("duplicate", "the work got done after all")
        if not self.outputs.input_is(source, message.etag, message.sha256):
            return IngestResult("stale", "the input changed; its new content is processed on its own")
        name = source.deadletter if message.part is None else source.deadletter_part(message.part)
        record = {"source": source.source, "task": source.task, "reason": "poison_message", "etag": message.etag,
                  HASH_KEY: message.sha256, "at": now_iso(), "message": message_text, "error": f"the work {failed}"}
        output = json_output(self.containers.deadletter, name, record, reason="poison_message")
        if not self.outputs.publish(source, message.sha256, message.etag, [output], retire=False):
            return IngestResult("stale", "the input changed while it was dead-lettered")
        log.error("dead-lettered %s part %s: the work %s", source.source, message.part, failed)
        return IngestResult("deadlettered", "poison_message")

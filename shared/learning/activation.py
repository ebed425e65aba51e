"""Which head version a task uses: activation records in the artifact store, newest first, else the task file.

Activating a version writes ``{task}/activations/{time}.json`` (an Activation). Nothing is overwritten: the store
keeps every object immutable, so the pointer is the newest record, and the records are the history of what was
active when and why. A task with no activation record uses the version its task file names (``trained_head``),
read from the local heads folder that ships with the app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel, ValidationError

from shared.learning.artifact import check_version, is_version, new_version
from shared.learning.stores import ArtifactStore

ACTIVATIONS = "activations"
log = logging.getLogger(__name__)


class Activation(BaseModel):
    task: str
    version: str
    at: datetime
    reason: str
    decision: str | None = None  # the key of the PromotionDecision behind it, when a retrain activated it


def activate(store: ArtifactStore, task: str, version: str, *, reason: str,
             decision: str | None = None) -> Activation:
    """Make ``version`` (already saved in ``store``) the task's active head."""
    now = datetime.now(timezone.utc)
    record = Activation(task=task, version=check_version(version), at=now, reason=reason, decision=decision)
    store.write(f"{task}/{ACTIVATIONS}/{new_version(now)}.json", record.model_dump_json(indent=2).encode("utf-8"))
    return record


def latest_activation(store: ArtifactStore, task: str) -> Activation | None:
    """The newest readable activation record. Other files in the folder are not records; a record that does not
    read (a write cut short) did not happen, so the one before it stands."""
    prefix = f"{task}/{ACTIVATIONS}/"
    keys = [k for k in store.list(prefix) if k.endswith(".json") and is_version(k[len(prefix):-len(".json")])]
    for key in reversed(keys):
        try:
            return Activation.model_validate_json(store.read(key))
        except ValidationError as exc:
            log.warning("activation record %s is unreadable, the one before it stands: %s", store.describe(key),
                        exc.errors()[0]["msg"])
    return None


@dataclass(frozen=True)
class ActiveHead:
    store: ArtifactStore  # where the version is
    version: str
    origin: str  # for messages: the activation record, or the task file


def active_head(store: ArtifactStore, task: str, task_file_version: str | None,
                task_file_store: ArtifactStore) -> ActiveHead | None:
    """The task's active head: the newest activation in ``store``, else the task file's version in
    ``task_file_store``; None when there is neither (the trained tier then answers zero-shot)."""
    activation = latest_activation(store, task)
    if activation is not None:
        return ActiveHead(store, activation.version, f"activated {activation.at.isoformat()}: {activation.reason}")
    if task_file_version:
        return ActiveHead(task_file_store, task_file_version, "the task file's trained_head")
    return None

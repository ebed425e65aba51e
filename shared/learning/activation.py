"""Which head version a task uses: activation records in the artifact store, newest first, else the task file.

Activating a version writes ``{task}/activations/{time}.json`` (an Activation). Nothing is overwritten: the store
keeps every object immutable, so the pointer is the newest record, and the records are the history of what was
active when and why. A task with no activation record uses the version its task file names (``trained_head``),
read from the local heads folder that ships with the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from pydantic import BaseModel

from shared.learning.artifact import check_version, new_version
from shared.learning.stores import ArtifactStore

ACTIVATIONS = "activations"


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
    keys = store.list(f"{task}/{ACTIVATIONS}/")
    return Activation.model_validate_json(store.read(keys[-1])) if keys else None


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

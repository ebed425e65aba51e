"""What passes between the blob path's steps: model work on the queue, and what handling a trigger came to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, field_validator

from shared.pipeline.blob_names import has_unsafe_segment

Disposition = Literal["queued", "fanned_out", "duplicate", "deadlettered", "processed", "part_processed", "stale",
                      "requeued"]


class WorkMessage(BaseModel):
    """Model work on one input's content: the whole of it (`part` None) or one part of a large .jsonl.

    Its fields become blob names (claims, outputs), and anyone with write access to the queue can forge one, so
    each is checked before use: a path of non-empty segments, none `.` or `..`, and the content's SHA-256."""

    task: str = Field(min_length=1, max_length=1024)
    name: str = Field(min_length=1, max_length=1024)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    etag: str = Field(min_length=1, max_length=200)
    part: int | None = Field(default=None, ge=0)
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    parts: int = Field(default=1, ge=1)

    @field_validator("task", "name")
    @classmethod
    def _blob_path(cls, value: str) -> str:
        if has_unsafe_segment(value):
            raise ValueError("a path segment is empty, '.' or '..'")
        return value

    @field_validator("task")
    @classmethod
    def _one_segment(cls, value: str) -> str:
        if "/" in value:
            raise ValueError("a task name holds no '/'")
        return value


@dataclass
class IngestResult:
    disposition: Disposition
    detail: str = ""

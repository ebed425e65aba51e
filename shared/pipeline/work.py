"""What passes between the blob path's steps: model work on the queue, and what handling a trigger came to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel

Disposition = Literal["queued", "fanned_out", "duplicate", "deadlettered", "processed", "part_processed", "stale",
                      "requeued"]


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

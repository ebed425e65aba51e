"""Model files checked by SHA-256 before they are used: a different file would silently change every answer."""

from __future__ import annotations

import hashlib
from pathlib import Path

from shared.errors import SmallfirstError


class ModelHashError(SmallfirstError, RuntimeError):
    """The model file is not the one this code was written and measured for."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str, remedy: str) -> None:
    """Raises ModelHashError naming the file, both hashes and `remedy` (what restores the right file)."""
    actual = file_sha256(path)
    if actual != expected:
        raise ModelHashError(f"{path} has SHA-256 {actual}, expected {expected}: {remedy}")

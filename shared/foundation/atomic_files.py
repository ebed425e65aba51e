"""Files written whole or not at all, for what the app reads while a command writes it (task files, the head store).

The bytes go to a hidden file beside the target (`.<name>.<random>.partial`: no reader takes it for the target),
reach the disk, and only then take the target's name, so a reader sees the old file or the new one, never a part,
and a writer killed half-way leaves no target behind. The hidden file is created with the mode a plain `open`
would give (the umask applies); a replaced file keeps its own mode.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def write_new(path: Path, data: bytes) -> None:
    """Write `path`, which must not exist: FileExistsError if it does (also when another writer got there first)."""
    partial = _write_partial(path, data)
    try:
        os.link(partial, path)  # fails if `path` exists: never overwrites
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (FAT, some network shares): exclusive, if not all at once
        _write_exclusive(path, data)
    finally:
        os.unlink(partial)


def replace(path: Path, data: bytes) -> None:
    """Replace the file at `path` (through a symbolic link, the file it names) with `data`, keeping its mode."""
    path = path.resolve()
    partial = _write_partial(path, data)
    try:
        os.chmod(partial, path.stat().st_mode & 0o7777)
        os.replace(partial, path)
    except BaseException:
        os.unlink(partial)
        raise


def _write_partial(path: Path, data: bytes) -> Path:
    partial = path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.partial")
    _write_exclusive(partial, data)
    return partial


def _write_exclusive(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        os.unlink(path)
        raise

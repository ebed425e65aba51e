"""Reading a task file's data, and writing back to it: the commands that record what they learned (`smallfirst
train`'s active head, `smallfirst tune`'s thresholds) change only their own top-level keys, so the user's comments,
key order and layout stay as they were (in a YAML file; a JSON one is written whole, as JSON).

A write replaces the file whole (shared/foundation/atomic_files.py), so the app reading the catalogue meanwhile sees the
old file or the new one, never a part."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

import yaml

from shared.foundation.atomic_files import replace

YAML_SUFFIXES = (".yaml", ".yml")


def read_task_data(path: Path) -> Any:
    """The file's data as written: YAML for .yaml/.yml, JSON otherwise (errors are the parsers')."""
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in YAML_SUFFIXES else json.loads(text)


def update_task_file(path: Path, updates: Mapping[str, Any]) -> None:
    """Set top-level ``updates`` in the task file at ``path``. In YAML each key's block is replaced in place
    (appended when the file has none). Should the edited text not read back as the file's data with the updates
    applied (a layout this line-based edit does not follow), the file is written whole from its data instead: the
    values are never wrong, only the comments may go."""
    text = path.read_text(encoding="utf-8")
    if path.suffix not in YAML_SUFFIXES:
        replace(path, (json.dumps({**json.loads(text), **updates}, indent=2, ensure_ascii=False) + "\n").encode())
        return
    expected = {**(yaml.safe_load(text) or {}), **updates}
    edited = text
    for key, value in updates.items():
        edited = _with_top_level_key(edited, key, value)
    if yaml.safe_load(edited) != expected:
        edited = _dump(expected)
    replace(path, edited.encode("utf-8"))


def _dump(data: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(data), sort_keys=False, allow_unicode=True, width=200)


def _with_top_level_key(text: str, key: str, value: Any) -> str:
    lines = text.splitlines(keepends=True)
    block = _dump({key: value})
    start = next((i for i, line in enumerate(lines) if re.match(rf"{re.escape(key)}\s*:", line)), None)
    if start is None:
        return f"{text.rstrip()}\n{block}" if text.strip() else block
    end = start + 1
    while end < len(lines) and _continues_block(lines, end):
        end += 1
    return "".join(lines[:start]) + block + "".join(lines[end:])


def _continues_block(lines: list[str], i: int) -> bool:
    """Whether line ``i`` still belongs to the top-level key above it: indented, a top-level sequence item, or a
    blank line inside such lines. A comment or key at column 0 starts what follows."""
    line = lines[i]
    if line.startswith((" ", "\t", "-")):
        return True
    if line.strip():
        return False
    following = next((later for later in lines[i + 1:] if later.strip()), "")
    return following.startswith((" ", "\t", "-"))

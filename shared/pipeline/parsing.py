"""Parsing input files into items: .txt/.md (one item), .json (one item or {"items": [...]}), .jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from pydantic import ValidationError

from shared.core.records import Item
from shared.errors import InputError

TEXT_SUFFIXES = {".txt", ".md"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {".json", ".jsonl"}


@dataclass
class LineError:
    line: int
    reason: str
    message: str
    raw: str


@dataclass
class ParsedInput:
    items: list[Item] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)


def item_from_obj(obj: object, default_id: str) -> Item:
    if isinstance(obj, dict) and "id" not in obj:
        obj = {**obj, "id": default_id}
    return Item.model_validate(obj)


def parse_input(name: str, data: bytes) -> ParsedInput:
    """Items in a named file. A .jsonl line that is not a JSON object is read as plain text."""
    suffix = PurePosixPath(name).suffix.lower()
    stem = PurePosixPath(name).stem
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError("unsupported_format", f"{name}: unsupported file type {suffix or '(none)'}")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError("invalid_utf8", f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if not text.strip():
        raise InputError("empty", f"{name}: the file is empty")
    if suffix in TEXT_SUFFIXES:
        return ParsedInput(items=[Item(id=stem, text=text)])
    if suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError("invalid_json", f"{name}: {exc}") from exc
        try:
            if isinstance(obj, dict) and isinstance(obj.get("items"), list):
                return ParsedInput(items=[item_from_obj(o, f"{stem}-{i:05d}") for i, o in enumerate(obj["items"])])
            return ParsedInput(items=[item_from_obj(obj, stem)])
        except ValidationError as exc:
            raise InputError("invalid_item", f"{name}: {_first_error(exc)}") from exc
    parsed = ParsedInput()
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        default_id = f"{stem}-{number:05d}"
        if not line.lstrip().startswith("{"):
            parsed.items.append(Item(id=default_id, text=line))
            continue
        try:
            parsed.items.append(item_from_obj(json.loads(line), default_id))
        except json.JSONDecodeError as exc:
            parsed.errors.append(LineError(number, "invalid_json", str(exc), line))
        except ValidationError as exc:
            parsed.errors.append(LineError(number, "invalid_item", _first_error(exc), line))
    return parsed


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc'])) or 'item'}: {err['msg']}"

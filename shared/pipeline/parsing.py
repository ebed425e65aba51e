"""Inputs into items, with the same rules for blob files and HTTP bodies.

Files: .txt/.md (one item), .json (one item, or {"items": [...]} or a JSON array of items), .jsonl (one item a
line), in UTF-8 or in UTF-16/32 with a byte-order mark (see shared/foundation/text_files.py). An input that cannot be
read as a whole raises InputError with a stable `reason`; a .jsonl line (or an entry of an items list) that
cannot be read becomes a LineError and the rest goes on. An item needs text that is not blank, and ids (strings,
or integers read as their decimal text) are unique within one input (a repeated id is an error of the later entry).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from shared.foundation.records import ITEM_ID_MAX_CHARS, Item
from shared.foundation.text_files import decode_text, jsonl_lines, strict_json
from shared.errors import InputError

TEXT_SUFFIXES = {".txt", ".md"}
SUPPORTED_SUFFIXES = TEXT_SUFFIXES | {".json", ".jsonl"}


@dataclass
class LineError:
    line: int  # the line of a .jsonl, or the 1-based position in an items list
    reason: str
    message: str
    raw: str


@dataclass
class ParsedInput:
    items: list[Item] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    _ids: set[str] = field(default_factory=set, init=False, repr=False, compare=False)  # ids of `items`

    def add(self, position: int, obj: object, default_id: str, raw: str) -> None:
        """Add one entry as an item, or as the error that says why it is not one."""
        try:
            item = item_from_obj(obj, default_id)
        except ValidationError as exc:
            self.errors.append(LineError(position, "invalid_item", first_error(exc), raw))
            return
        if not item.text.strip():
            self.errors.append(LineError(position, "empty_text", "the item's text is blank", raw))
        elif item.id in self._ids:
            self.errors.append(LineError(position, "duplicate_id", f"id {item.id!r} appears earlier", raw))
        else:
            self.items.append(item)
            self._ids.add(item.id)


def item_from_obj(obj: object, default_id: str) -> Item:
    if isinstance(obj, dict) and "id" not in obj:
        obj = {**obj, "id": default_id}
    return Item.model_validate(obj)


def default_id(stem: str, suffix: str = "") -> str:
    """The id of an entry that names none: the file's stem and `suffix`; a stem too long for an id is cut and
    told apart again by its hash, so a file's long name never makes its items invalid."""
    room = ITEM_ID_MAX_CHARS - len(suffix)
    if len(stem) <= room:
        return stem + suffix
    return f"{stem[:room - 17]}~{hashlib.sha256(stem.encode('utf-8')).hexdigest()[:16]}{suffix}"


def loads(text: str, name: str) -> Any:
    """JSON as RFC 8259 defines it (`strict_json`), with every way it can fail as an InputError (deep nesting
    overflows Python's stack)."""
    try:
        return strict_json(text)
    except ValueError as exc:  # JSONDecodeError, or an integer of more digits than Python converts (4,300)
        raise InputError("invalid_json", f"{name}: {exc}") from exc
    except RecursionError as exc:
        raise InputError("too_deeply_nested", f"{name}: JSON nested too deeply to read") from exc
    except MemoryError as exc:
        raise InputError("too_large", f"{name}: too large to read") from exc


def batch_entries(obj: Any) -> list[Any] | None:
    """The entries of a batch, written as {"items": [...]} or as a bare JSON array; None if `obj` is not one."""
    if isinstance(obj, list):
        return obj
    if isinstance(obj, dict) and isinstance(obj.get("items"), list):
        return obj["items"]
    return None


def parse_input(name: str, data: bytes) -> ParsedInput:
    """Items in a named file. A .jsonl line that is not a JSON object is read as plain text."""
    suffix = PurePosixPath(name).suffix.lower()
    stem = PurePosixPath(name).stem
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError("unsupported_format", f"{name}: unsupported file type {suffix or '(none)'}")
    text = decode_text(data, name)
    if not text.strip():
        raise InputError("empty", f"{name}: the file is empty")
    parsed = ParsedInput()
    if suffix in TEXT_SUFFIXES:
        item_id = default_id(stem)
        parsed.add(1, {"id": item_id, "text": text}, item_id, "")
    elif suffix == ".json":
        obj = loads(text, name)
        if (entries := batch_entries(obj)) is not None:
            for i, entry in enumerate(entries):
                parsed.add(i + 1, entry, default_id(stem, f"-{i:05d}"), _raw(entry))
        else:
            parsed.add(1, obj, default_id(stem), text[:2000])
            if parsed.errors:
                error = parsed.errors[0]
                raise InputError(error.reason, f"{name}: {error.message}")
    else:
        for number, line in jsonl_lines(text):
            line_id = default_id(stem, f"-{number:05d}")
            if not line.lstrip().startswith("{"):
                parsed.add(number, {"id": line_id, "text": line}, line_id, line)
                continue
            try:
                obj = loads(line, f"line {number}")
            except InputError as exc:
                parsed.errors.append(LineError(number, exc.reason, str(exc), line))
                continue
            parsed.add(number, obj, line_id, line)
    return parsed


def parse_request(body: bytes) -> tuple[list[Item], bool]:
    """The items of an HTTP request body ({"id","text"}, or {"items": [...]} or a bare array) and whether it was
    a batch.

    The same rules as a .json file, except that any bad entry fails the whole request (InputError whose
    reason names the first problem), since the caller is there to fix it.
    """
    obj = loads(decode_text(body, "the body"), "the body")
    batch = isinstance(obj, list) or (isinstance(obj, dict) and "items" in obj)
    entries = batch_entries(obj) if batch else [obj]
    if not entries:
        raise InputError("no_items", "items must be a non-empty list")
    parsed = ParsedInput()
    for i, entry in enumerate(entries):
        parsed.add(i + 1, entry, f"item-{i:05d}", "")
    if parsed.errors:
        error = parsed.errors[0]
        where = f"item {error.line}: " if batch else ""
        raise InputError(error.reason, f"{where}{error.message}")
    return parsed.items, batch


def first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    return f"{'.'.join(map(str, err['loc'])) or 'item'}: {err['msg']}"


def _raw(entry: object) -> str:
    """An entry as it read, for its error record: with its characters as they are where they are Unicode, with
    JSON's escapes where they are not (an unpaired surrogate cannot be written as UTF-8)."""
    try:
        text = json.dumps(entry, ensure_ascii=False)
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(entry)
    except (TypeError, ValueError, RecursionError):
        text = repr(entry)
    return text[:2000]

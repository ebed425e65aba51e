"""Text files as users and this app write them: their encoding, and JSON Lines split into lines.

Encoding: UTF-8, with or without a byte-order mark, or UTF-16/UTF-32 marked by theirs (Windows PowerShell 5
writes UTF-16 with a mark by default); unmarked bytes that are not UTF-8 are refused rather than guessed at.

JSON: as RFC 8259 defines it. Python's reader also takes NaN and Infinity, and reads a number too large for a
float as infinity: values no JSON writer can write back (pydantic writes them as null), so they are refused.

Lines: JSON Lines separates records by "\\n" alone (a "\\r" before it is read past). `str.splitlines` also
splits at U+2028, U+2029 and U+0085, which JSON allows unescaped inside a string and which pydantic's and
`json.dumps(ensure_ascii=False)`'s output carries raw, so it would cut such a record in two; and at \\v \\f
\\x1c-\\x1e, which a .jsonl line of plain text may hold.
"""

from __future__ import annotations

import codecs
import json
import math
from collections.abc import Iterator
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ValidationError

from shared.errors import InputError

Row = TypeVar("Row", bound=BaseModel)


def _not_blank(text: str) -> str:
    if not text.strip():
        raise ValueError("the text is blank")
    return text


RowText = Annotated[str, AfterValidator(_not_blank)]  # a labelled row's text: something to learn from or score

# Longest mark first: UTF-32 LE's mark begins with UTF-16 LE's.
MARKED_ENCODINGS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def decode_text(data: bytes, where: str) -> str:
    """`data` as text (see the module docstring); InputError `invalid_utf8` (or `invalid_utf16`/`invalid_utf32`
    for text marked as such) naming `where` and the first bad byte."""
    encoding = next((name for mark, name in MARKED_ENCODINGS if data.startswith(mark)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        kind = encoding.removesuffix("-sig").replace("-", "")
        raise InputError(f"invalid_{kind}", f"{where}: not {encoding.removesuffix('-sig').upper()} text "
                                            f"({exc.reason} at byte {exc.start})") from None


def strict_json(text: str) -> Any:
    """json.loads of JSON alone (see the module docstring): ValueError for NaN, Infinity and numbers beyond a
    float, as for any text that is not JSON; RecursionError for nesting deeper than Python's stack."""
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


def json_problem(exc: ValueError) -> str:
    """What `strict_json` found wrong, without the line number a JSON Lines reader would contradict."""
    return f"{exc.msg} at column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else str(exc)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def _finite(number: str) -> float:
    value = float(number)
    if not math.isfinite(value):
        raise ValueError(f"{number[:40]} is beyond the range of a number")
    return value


def jsonl_lines(text: str) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of each line of a JSON Lines text that is not blank."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            yield number, line


def jsonl_rows(text: str, model: type[Row], where: str, what: str) -> list[tuple[int, Row]]:
    """Each line of a JSON Lines text that is not blank as a `model`, with its line number. The first line that
    is not one is an InputError `invalid_line` naming `where`, the line, the field and the problem (`what`: what
    a row should be)."""
    rows = []
    for number, line in jsonl_lines(text):
        try:
            strict_json(line)  # pydantic's reader takes NaN and Infinity too; its JSON mode words errors for JSON
        except (ValueError, RecursionError) as exc:
            problem = "nested too deeply to read" if isinstance(exc, RecursionError) else json_problem(exc)
            raise InputError("invalid_line", f"{where}:{number}: not {what}: not JSON: {problem}") from None
        try:
            rows.append((number, model.model_validate_json(line)))
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(map(str, error["loc"])) or "row"
            raise InputError("invalid_line", f"{where}:{number}: not {what}: {field}: {error['msg']}") from None
    return rows

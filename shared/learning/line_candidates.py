"""Where an extracted value can come from in a text, and which of those places the training data points at.

A text is split into its non-blank lines. A field's value is read in one of three ways (its *value kind*):
- ``text``: a run of 1..k consecutive lines, joined, trimmed as the data's values are (an address over three lines,
  a name on one);
- ``date``: a date substring of one line, as printed;
- ``amount``: an amount substring of one line (digits with two decimals), as printed.
Each possible place is a Candidate. The kind of a field comes from its JSON schema where the schema says
(``format: date``/``date-time``, ``type: number``), otherwise from the training data: the kind whose candidates
reproduce the expected values most often (``choose_kind``). Training labels mark the candidates whose value is the
expected one -- for dates and amounts equal by value, for text the runs most similar to it (OCR noise allowed).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Callable, Mapping, Sequence

from shared.foundation.answers import ValueKind, normalise_text, same_value

VALUE_KINDS: tuple[ValueKind, ...] = ("text", "date", "amount")
JOINERS = (" ", ", ")  # how a multi-line text value's lines are put together; chosen from the data
# What the data's text values leave out of the printed lines; chosen from the data (a name printed with a trailing
# "(123456-X)" registration number and labelled without it, for example).
TRIMS: dict[str, Callable[[str], str]] = {
    "none": lambda value: value,
    "trailing_brackets": lambda value: re.sub(r"\s*\([^()]*\)\s*$", "", value).strip() or value,
}

_MONTH = r"(?:JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|SEPT|OCT|NOV|DEC)[A-Z]*"
_DATE = re.compile(
    r"(?<![\d])(?:"
    r"\d{1,2}[/.-]\d{1,2}[/.-](?:\d{4}|\d{2})"  # 25/12/2018, 25.12.18
    r"|\d{4}[/.-]\d{1,2}[/.-]\d{1,2}"  # 2018-12-25
    rf"|\d{{1,2}}[ /.-]?{_MONTH}[ /.,-]*(?:\d{{4}}|\d{{2}})"  # 25 DEC 2018, 02/JAN/2017, 24-MAR-18
    rf"|{_MONTH} \d{{1,2}},? \d{{4}}"  # DEC 25, 2018
    r"|20\d{2}[01]\d[0-3]\d"  # 20181225
    r")(?![\d])",
    re.IGNORECASE,
)
_AMOUNT = re.compile(r"(?<![\d.,])-?\d{1,3}(?:,\d{3})+\.\d{2}(?![\d])|(?<![\d.,])-?\d+\.\d{2}(?![\d])")
PATTERNS: dict[ValueKind, re.Pattern[str]] = {"date": _DATE, "amount": _AMOUNT}


def split_lines(text: str) -> list[str]:
    """The text's lines, stripped, blank ones dropped."""
    return [line.strip() for line in text.splitlines() if line.strip()]


@dataclass(frozen=True)
class Candidate:
    """A place a value can be read from: lines [start, start + length), or one match at [begin, end) of line start."""

    start: int
    length: int
    value: str
    begin: int = 0
    end: int = 0
    match_index: int = 0  # which match of its line (0 = first)
    matches_in_line: int = 1


def candidates(lines: Sequence[str], kind: ValueKind, max_span: int = 1, joiner: str = " ",
               trim: str = "none") -> list[Candidate]:
    if kind == "text":
        cut = TRIMS[trim]
        return [Candidate(start, length, cut(joiner.join(lines[start:start + length])))
                for start in range(len(lines)) for length in range(1, max_span + 1) if start + length <= len(lines)]
    found = []
    for number, line in enumerate(lines):
        matches = list(PATTERNS[kind].finditer(line))
        found += [Candidate(number, 1, m.group(0), m.start(), m.end(), index, len(matches))
                  for index, m in enumerate(matches)]
    return found


def similarity(a: str, b: str) -> float:
    return SequenceMatcher(None, normalise_text(a), normalise_text(b), autojunk=False).ratio()


def label_candidates(found: Sequence[Candidate], expected: Any, kind: ValueKind, min_similarity: float = 0.8) -> list[bool]:
    """Which candidates hold the expected value: equal by value (dates, amounts; every occurrence), or for text the
    most similar runs if at least ``min_similarity`` alike (OCR noise in the text or the label is common)."""
    if expected is None or str(expected).strip() == "":
        return [False] * len(found)
    if kind != "text":
        return [same_value(kind, c.value, expected) for c in found]
    scores = [similarity(c.value, str(expected)) for c in found]
    best = max(scores, default=0.0)
    return [best >= min_similarity and score == best for score in scores]


def schema_kind(field_schema: Mapping[str, Any]) -> ValueKind | None:
    """The kind the JSON schema fixes, if it does."""
    if field_schema.get("format") in {"date", "date-time"}:
        return "date"
    if json_types(field_schema) & {"number", "integer"}:
        return "amount"
    return None


def json_types(field_schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a field's schema allows by its `type` (a name or a list of names)."""
    declared = field_schema.get("type")
    return {declared} if isinstance(declared, str) else set(declared) if isinstance(declared, list) else set()


def amount_value(text: str) -> float | None:
    """The number an amount's text reads as (commas as thousands separators); None for one that is not a number,
    or overflows a float."""
    try:
        number = float(text.replace(",", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def typed_value(field_schema: Mapping[str, Any], text: str) -> Any:
    """A found value as the JSON type its field's schema asks for: a number for `number`, a whole number for
    `integer`; as found otherwise, or when it does not read as one (the task's validation then says so)."""
    wanted = json_types(field_schema)
    if not wanted & {"number", "integer"} or "string" in wanted:  # text allowed: kept as found
        return text
    if (number := amount_value(text)) is None:
        return text
    if "number" not in wanted:  # integer only
        return int(number) if number.is_integer() else text
    return number


def choose_kind(texts: Sequence[str], values: Sequence[Any], max_span: int = 6) -> ValueKind:
    """The kind whose candidates hold the expected value in the most rows; on a tie the more specific kind (date,
    then amount, then text): a value that is always a whole line and an amount is read as the amount."""
    def hits(kind: ValueKind) -> int:
        return sum(any(same_value(kind, c.value, value) for joiner in (JOINERS if kind == "text" else (" ",))
                       for c in candidates(split_lines(text), kind, max_span if kind == "text" else 1, joiner))
                   for text, value in zip(texts, values) if value not in (None, ""))
    counts = {kind: hits(kind) for kind in VALUE_KINDS}
    specific = {"date": 2, "amount": 1, "text": 0}
    return max(VALUE_KINDS, key=lambda kind: (counts[kind], specific[kind]))


def choose_joiner(texts: Sequence[str], values: Sequence[Any], max_span: int) -> str:
    """The joiner that reproduces the most expected multi-line values exactly."""
    def hits(joiner: str) -> int:
        return sum(any(c.length > 1 and same_value("text", c.value, value)
                       for c in candidates(split_lines(text), "text", max_span, joiner))
                   for text, value in zip(texts, values) if value not in (None, ""))
    return max(JOINERS, key=lambda joiner: (hits(joiner), -JOINERS.index(joiner)))


def choose_trim(texts: Sequence[str], values: Sequence[Any], max_span: int, joiner: str) -> str:
    """The trim that reproduces the most expected values exactly (ties: none)."""
    def hits(trim: str) -> int:
        return sum(any(same_value("text", c.value, value)
                       for c in candidates(split_lines(text), "text", max_span, joiner, trim))
                   for text, value in zip(texts, values) if value not in (None, ""))
    names = list(TRIMS)
    return max(names, key=lambda trim: (hits(trim), -names.index(trim)))


"""Whether two answers are the same, the one home of that rule: the normalisers, and the questions asked of them.

An answer is a label (compared as it is) or an extracted object (compared field by field). A field's value is
normalised by its name: whitespace and case folded; amounts ('total', 'amount', 'price') and dates compared by
value. Three questions are asked, each by its own function:
- `same_answer(a, b)`: are two answers the same? Every field either one has (a field one has and the other lacks
  differs). Live monitoring asks it: the shadow's agreement, a correction against the answer it corrects.
- `fields_correct(answer, expected)` / `is_correct(kind, answer, gold)`: is an answer right against gold? Only the
  fields the gold lists count (a gold row need not list every field). Evaluation and the line tagger ask it.
- `same_value(kind, a, b)`: are two values of one kind (text, date, amount) the same? The line tagger asks it of a
  line's value, whose field name says nothing.
`agreement_key` is what samples of one tier are grouped by when they vote (confidence by agreement).
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Any, Callable, Literal

ValueKind = Literal["text", "date", "amount"]
_DATE_FORMATS = ("%d/%m/%Y", "%d-%m-%Y", "%d.%m.%Y", "%d/%m/%y", "%d-%m-%y", "%d.%m.%y", "%Y-%m-%d", "%Y/%m/%d",
                 "%d %b %Y", "%d %B %Y", "%b %d, %Y", "%d %b %y")
_AMOUNT = re.compile(r"^[^\d-]*(-?\d[\d,]*(?:\.\d+)?)\D*$")


def normalise_text(value: Any) -> str:
    return " ".join(str(value).split()).casefold() if value is not None else ""


def normalise_amount(value: Any) -> str:
    text = normalise_text(value).replace(" ", "")
    match = _AMOUNT.match(text)
    return f"{float(match.group(1).replace(',', '')):.2f}" if match else text


def normalise_date(value: Any) -> str:
    text = normalise_text(value)
    candidate = text.split(" ")[0] if re.match(r"^\d", text) else text  # drop a time after the date
    for fmt in _DATE_FORMATS:
        for probe in (candidate, text):
            try:
                return datetime.strptime(probe, fmt).date().isoformat()
            except ValueError:
                continue
    return text


NORMALISERS: dict[ValueKind, Callable[[Any], str]] = {
    "text": normalise_text, "date": normalise_date, "amount": normalise_amount}


def field_kind(field: str) -> ValueKind:
    """What a field's name says its values are."""
    if any(key in field for key in ("total", "amount", "price")):
        return "amount"
    return "date" if "date" in field else "text"


def normalise_field(field: str, value: Any) -> str:
    """Whitespace and case folded; amounts ('total', 'amount', 'price') and dates compared by value."""
    return NORMALISERS[field_kind(field)](value)


def same_value(kind: ValueKind, a: Any, b: Any) -> bool:
    normalise = NORMALISERS[kind]
    return normalise(a) == normalise(b)


def same_answer(answer: Any, truth: Any) -> bool:
    """Labels compare as they are; extracted objects on every field either has, normalised by field name."""
    if isinstance(answer, dict) and isinstance(truth, dict):
        return all(normalise_field(f, answer.get(f)) == normalise_field(f, truth.get(f))
                   for f in answer.keys() | truth.keys())
    return answer == truth


def fields_correct(answer: dict[str, Any] | None, expected: dict[str, Any]) -> dict[str, bool]:
    """Per field the gold lists: is the answer's value the gold's?"""
    answer = answer or {}
    return {f: normalise_field(f, answer.get(f)) == normalise_field(f, v) for f, v in expected.items()}


def is_correct(kind: str, answer: Any, gold: Any) -> bool:
    """A label equal to the gold's, or an object right on every field the gold lists; no answer is never right."""
    if kind == "classification":
        return answer is not None and answer == gold
    return answer is not None and all(fields_correct(answer, gold).values())


def agreement_key(value: Any) -> str:
    """What samples are grouped by when they vote: text with whitespace and case folded, anything else as JSON."""
    return normalise_text(value) if isinstance(value, str) else json.dumps(value, sort_keys=True)

"""Output validation: a model's reply text becomes a JSON object valid for the task, or InvalidOutputError."""

from __future__ import annotations

from typing import Any

from shared.foundation.tasks import AnyTask, ClassificationTask
from shared.foundation.text_files import strict_json
from shared.errors import InvalidOutputError


def parse_and_validate(task: AnyTask, text: str, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """The reply as a JSON object valid for the task, or InvalidOutputError saying why not."""
    start, end = answer_span(text)
    try:
        obj = strict_json(text[start:end])
    except ValueError as exc:  # not JSON (NaN too), or an integer of more digits than Python converts (4,300)
        raise InvalidOutputError(f"not JSON: {exc}", text, tokens_in, tokens_out) from exc
    except RecursionError as exc:
        raise InvalidOutputError("JSON nested too deeply to read", text, tokens_in, tokens_out) from exc
    if isinstance(task, ClassificationTask):
        if not isinstance(obj, dict) or obj.get("label") not in task.allowed_labels:
            raise InvalidOutputError("label is not one of the allowed labels", text, tokens_in, tokens_out)
        return obj
    try:
        errors = task.validation_errors(obj)
    except RecursionError as exc:
        raise InvalidOutputError("JSON nested too deeply to validate", text, tokens_in, tokens_out) from exc
    if errors:
        raise InvalidOutputError("; ".join(errors), text, tokens_in, tokens_out)
    return obj


def answer_span(text: str) -> tuple[int, int]:
    """Where the JSON answer lies in a reply: inside its ``` fence if it has one (instruction-only endpoints
    sometimes add one), without the whitespace around it. Token positions index the whole reply."""
    start, end = 0, len(text)
    if text.lstrip().startswith("```"):
        fence_line_end = text.find("\n", text.index("```"))
        start = end if fence_line_end < 0 else fence_line_end + 1
        closing = text.rfind("```", start)
        end = closing if closing >= 0 else end
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end

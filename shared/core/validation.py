"""Output validation: a model's reply text becomes a JSON object valid for the task, or InvalidOutputError."""

from __future__ import annotations

import json
from typing import Any

from shared.core.tasks import AnyTask, ClassificationTask
from shared.errors import InvalidOutputError


def parse_and_validate(task: AnyTask, text: str, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """The reply as a JSON object valid for the task, or InvalidOutputError saying why not."""
    stripped = _strip_code_fence(text)
    try:
        obj = json.loads(stripped)
    except json.JSONDecodeError as exc:
        raise InvalidOutputError(f"not JSON: {exc}", text, tokens_in, tokens_out) from exc
    if isinstance(task, ClassificationTask):
        if not isinstance(obj, dict) or obj.get("label") not in task.allowed_labels:
            raise InvalidOutputError("label is not one of the allowed labels", text, tokens_in, tokens_out)
        return obj
    errors = task.validation_errors(obj)
    if errors:
        raise InvalidOutputError("; ".join(errors), text, tokens_in, tokens_out)
    return obj


def _strip_code_fence(text: str) -> str:
    """Instruction-only endpoints sometimes wrap JSON in a ``` fence."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        stripped = stripped.rsplit("```", 1)[0]
    return stripped.strip()

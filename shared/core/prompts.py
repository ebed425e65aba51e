"""Chat messages for a task. The system prompt stays short; the model's own chat template formats them."""

from __future__ import annotations

import json

from shared.foundation.tasks import ClassificationTask, ExtractionTask

Message = dict[str, str]


def shorten(description: str, limit: int | None) -> str:
    """At most `limit` characters of a description, cut at a word boundary (None: all of it)."""
    if limit is None or len(description) <= limit:
        return description
    head = description[: limit + 1]  # one more: a space right after the limit means the last word is whole
    whole_words = head if head[-1].isspace() else head.rpartition(" ")[0]
    return whole_words.rstrip(" ,;:")


def classification_messages(task: ClassificationTask, text: str, *, json_answer: bool) -> list[Message]:
    lines = [task.instruction.strip(), "", "Labels:"]
    for label in task.labels:
        description = shorten(label.description, task.label_description_chars)
        lines.append(f"- {label.name}: {description}" if description else f"- {label.name}")
    if task.allow_none and task.none_label:
        lines.append(f"- {task.none_label}: none of the labels above fits")
    lines.append("")
    lines.append('Reply with JSON: {"label": "<one label>"}.' if json_answer else "Reply with one label only.")
    messages: list[Message] = [{"role": "system", "content": "\n".join(lines)}]
    for example in task.examples:
        answer = json.dumps({"label": example.label}) if json_answer else str(example.label)
        messages += [{"role": "user", "content": example.text}, {"role": "assistant", "content": answer}]
    messages.append({"role": "user", "content": text})
    return messages


def extraction_messages(task: ExtractionTask, text: str, *, schema_in_prompt: bool) -> list[Message]:
    system = task.instruction.strip()
    if schema_in_prompt:
        system += "\n\nReply with one JSON object that matches this JSON schema:\n" + json.dumps(task.json_schema)
    else:
        system += "\n\nReply with one JSON object."
    messages: list[Message] = [{"role": "system", "content": system}]
    for example in task.examples:
        messages += [
            {"role": "user", "content": example.text},
            {"role": "assistant", "content": json.dumps(example.output)},
        ]
    messages.append({"role": "user", "content": text})
    return messages

"""Training data as chat-format JSONL for fine-tuning a small chat model in Azure AI Foundry / Azure OpenAI.

Each line: ``{"messages": [{"role": "system", ...}, ..., {"role": "user", ...}, {"role": "assistant", ...}]}`` -- the
prompt the small tier sends for the item (given by the caller, so the fine-tuned model sees what it will see in
production) followed by the right answer as the assistant turn.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Callable, Collection, Sequence

from pydantic import BaseModel

from shared.errors import some_of
from shared.learning.training_data import LabelledExample, TrainingSet

Message = dict[str, str]
MIN_TRAINING_ROWS = 10  # Azure OpenAI fine-tuning refuses a training file with fewer examples


class FinetuneExport(BaseModel):
    train_path: Path
    validation_path: Path
    train_rows: int
    validation_rows: int


def json_label(label: str) -> str:
    """The assistant turn the chat tiers expect when they ask for JSON."""
    return json.dumps({"label": label})


def export_finetune_jsonl(
    examples: Sequence[LabelledExample],
    out_dir: Path,
    *,
    allowed_labels: Collection[str],
    prompt: Callable[[str], list[Message]],
    answer: Callable[[str], str] = json_label,
    validation_fraction: float = 0.1,
    seed: int = 0,
) -> FinetuneExport:
    """Write ``train.jsonl`` and ``validation.jsonl`` under ``out_dir``.

    ``prompt(text)`` returns the messages the small tier sends for a text (system first, the user turn with the text
    last; few-shot turns in between are kept). The split is per label with a fixed seed: of each label's examples,
    round(validation_fraction * n) go to validation (at least one when a label has two or more). A label the task
    does not have is refused (the model would learn to answer it); a text that repeats is written once, so no
    validation prompt is also a training one.
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError("validation_fraction must be between 0 and 1")
    if unknown := sorted({e.label for e in examples} - set(allowed_labels)):
        raise ValueError(f"labels the task does not have ({len(unknown)}): {some_of(unknown)}")
    by_label: dict[str, list[LabelledExample]] = defaultdict(list)
    for example in TrainingSet(examples).examples:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    train: list[dict] = []
    validation: list[dict] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        held = max(1, round(validation_fraction * len(group))) if len(group) >= 2 else 0
        for i, example in enumerate(group):
            (validation if i < held else train).append(_chat_row(prompt(example.text), answer(example.label)))
    if len(train) < MIN_TRAINING_ROWS or not validation:
        raise ValueError(f"{len(train)} training and {len(validation)} validation rows: fine-tuning needs at least "
                         f"{MIN_TRAINING_ROWS} training rows and one validation row")
    rng.shuffle(train)
    rng.shuffle(validation)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = out_dir / "train.jsonl", out_dir / "validation.jsonl"
    for path, rows in zip(paths, (train, validation)):
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    return FinetuneExport(train_path=paths[0], validation_path=paths[1], train_rows=len(train),
                          validation_rows=len(validation))


def _chat_row(messages: list[Message], assistant: str) -> dict:
    if not messages or messages[0].get("role") != "system" or messages[-1].get("role") != "user":
        raise ValueError("prompt() must return a system message first and the user's message last")
    return {"messages": [dict(m) for m in messages] + [{"role": "assistant", "content": assistant}]}

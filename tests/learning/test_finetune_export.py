"""The chat-format JSONL export for Azure AI Foundry fine-tuning."""

from __future__ import annotations

import json

import pytest

from shared.learning.finetune_export import export_finetune_jsonl
from shared.learning.training_data import LabelledExample

LABELS = ["billing", "technical", "account", "other"]
SYSTEM = "Route the customer support ticket.\n\nLabels:\n- billing\n- technical\n- account\n- other"


def prompt(text: str) -> list[dict[str, str]]:
    """What a small tier sends: system, one few-shot pair, the item."""
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "I was double charged"},
            {"role": "assistant", "content": '{"label": "billing"}'},
            {"role": "user", "content": text}]


@pytest.fixture
def examples(support_tickets):
    rows = support_tickets["train"][:240] + support_tickets["dev"]  # the first 320 tickets: 80 per label
    return [LabelledExample(text=r["text"], label=r["label"], provenance="gold") for r in rows]


def read(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_every_line_is_the_prompt_followed_by_the_answer_as_assistant_turn(tmp_path, examples):
    export = export_finetune_jsonl(examples, tmp_path, allowed_labels=LABELS, prompt=prompt)
    by_text = {e.text: e.label for e in examples}
    for row in read(export.train_path) + read(export.validation_path):
        assert list(row) == ["messages"]
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant", "user", "assistant"]
        assert row["messages"][0]["content"] == SYSTEM
        assert json.loads(row["messages"][-1]["content"]) == {"label": by_text[row["messages"][-2]["content"]]}


def test_split_is_per_label_with_the_validation_fraction(tmp_path, examples):
    export = export_finetune_jsonl(examples, tmp_path, allowed_labels=LABELS, prompt=prompt, validation_fraction=0.1)
    assert (export.train_rows, export.validation_rows) == (288, 32)  # 80 per label: 8 of each held out
    labels = [json.loads(r["messages"][-1]["content"])["label"] for r in read(export.validation_path)]
    assert {label: labels.count(label) for label in set(labels)} == {"billing": 8, "technical": 8, "account": 8,
                                                                      "other": 8}
    train_texts = {r["messages"][-2]["content"] for r in read(export.train_path)}
    assert not train_texts & {r["messages"][-2]["content"] for r in read(export.validation_path)}


def test_the_same_seed_writes_the_same_files(tmp_path, examples):
    first = export_finetune_jsonl(examples, tmp_path / "a", allowed_labels=LABELS, prompt=prompt, seed=3)
    second = export_finetune_jsonl(examples, tmp_path / "b", allowed_labels=LABELS, prompt=prompt, seed=3)
    assert first.train_path.read_bytes() == second.train_path.read_bytes()
    assert first.validation_path.read_bytes() == second.validation_path.read_bytes()


def test_too_few_examples_for_fine_tuning_are_refused(tmp_path, examples):
    with pytest.raises(ValueError, match="at least 10 training rows"):
        export_finetune_jsonl(examples[:8], tmp_path, allowed_labels=LABELS, prompt=prompt)


def test_a_prompt_without_a_system_message_is_refused(tmp_path, examples):
    with pytest.raises(ValueError, match="system message first"):
        export_finetune_jsonl(examples, tmp_path, allowed_labels=LABELS, prompt=lambda text: [{"role": "user", "content": text}])


def test_a_label_the_task_does_not_have_is_refused_and_a_repeated_text_is_written_once(tmp_path, examples):
    stray = [LabelledExample(text="hello there", label="greeting", provenance="gold")]
    with pytest.raises(ValueError, match=r"labels the task does not have \(1\): 'greeting'"):
        export_finetune_jsonl(examples + stray, tmp_path, allowed_labels=LABELS, prompt=prompt)
    copies = [e.model_copy(update={"source": "copy"}) for e in examples]
    export = export_finetune_jsonl(examples + copies, tmp_path, allowed_labels=LABELS, prompt=prompt)
    assert (export.train_rows, export.validation_rows) == (288, 32)  # as without the copies
    train_texts = {r["messages"][-2]["content"] for r in read(export.train_path)}
    assert not train_texts & {r["messages"][-2]["content"] for r in read(export.validation_path)}

"""`smallfirst train` for real: embeds labelled tickets, fits a head, saves a version and activates it."""

from __future__ import annotations

import json
import shutil

import yaml
from typer.testing import CliRunner

from shared.cli import app
from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item
from tests.conftest import REPO

runner = CliRunner()


def test_train_saves_and_activates_a_head_the_trained_tier_answers_with_changing_only_the_trained_head_line(tmp_path, monkeypatch):
    tasks, heads = tmp_path / "tasks", tmp_path / "heads"
    shutil.copytree(REPO / "tasks", tasks)
    task_file = tasks / "support_ticket.yaml"
    task_file.write_text("# our routing task: keep this comment\n" + task_file.read_text())
    before = task_file.read_text().splitlines()
    env = {"SMALLFIRST_TASKS_DIR": str(tasks), "SMALLFIRST_TRAINED_HEADS_DIR": str(heads)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(app, ["train", "support_ticket", "--data", str(REPO / "tasks/data/support_ticket/train.jsonl")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    version = yaml.safe_load(task_file.read_text())["trained_head"]
    after = task_file.read_text().splitlines()
    changed = [(old, new) for old, new in zip(before, after) if old != new]  # activation rewrote one line only
    assert len(after) == len(before) and [new for _, new in changed] == [f"trained_head: {version}"]
    head = json.loads((heads / "support_ticket" / version / "head.json").read_text())
    rows = len((REPO / "tasks/data/support_ticket/train.jsonl").read_text().splitlines())
    assert head["training_data"]["size"] == rows and head["labels"] == ["account", "billing", "other", "technical"]
    assert head["cv_metrics"]["accuracy"] > 0.85

    cascade = Cascade(Settings.from_env(env))
    record = cascade.process(cascade.tasks.get("support_ticket"), Item(id="t", text="my card was charged twice"))
    assert record.attempts[0].tier == "trained" and record.attempts[0].answer == "billing"


def test_train_refuses_labels_the_task_does_not_have(tmp_path, monkeypatch):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"id": "1", "text": "where is my parcel", "label": "shipping"}) + "\n")
    monkeypatch.setenv("SMALLFIRST_TRAINED_HEADS_DIR", str(tmp_path / "heads"))
    result = runner.invoke(app, ["train", "support_ticket", "--data", str(data)])
    assert result.exit_code == 1 and "shipping" in result.output and not (tmp_path / "heads").exists()


def test_export_finetune_writes_the_small_tiers_prompt_and_the_right_label(tmp_path):
    out = tmp_path / "ft"
    result = runner.invoke(app, ["export-finetune", "support_ticket", "--data",
                                 str(REPO / "tasks/data/support_ticket/train.jsonl"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for name in ("train.jsonl", "validation.jsonl")
            for line in (out / name).read_text().splitlines()]
    assert len(rows) == len((REPO / "tasks/data/support_ticket/train.jsonl").read_text().splitlines())
    first = rows[0]["messages"]
    assert [m["role"] for m in first] == ["system", "user", "assistant"]
    assert "Labels:" in first[0]["content"] and json.loads(first[2]["content"])["label"] in {
        "billing", "technical", "account", "other"}

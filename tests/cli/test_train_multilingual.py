"""A task that declares several languages on the command line: `smallfirst train` embeds it with the multilingual
USE-m, as answering does, and `smallfirst health` says which embedder each task gets."""

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


def test_train_fits_a_multilingual_tasks_head_on_use_m_and_the_tier_answers_with_it(tmp_path, monkeypatch):
    tasks, heads = tmp_path / "tasks", tmp_path / "heads"
    shutil.copytree(REPO / "tasks", tasks)
    task_file = tasks / "support_ticket.yaml"
    task_file.write_text(task_file.read_text() + "languages: [en, es, fr, de]\n")
    rows = [json.loads(line) for line in (REPO / "tasks/data/support_ticket/train.jsonl").read_text().splitlines()]
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for label in ("billing", "technical", "account", "other")
                            for row in [r for r in rows if r["label"] == label][:15]))
    env = {"SMALLFIRST_TASKS_DIR": str(tasks), "SMALLFIRST_TRAINED_HEADS_DIR": str(heads)}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    result = runner.invoke(app, ["train", "support_ticket", "--data", str(data)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    version = yaml.safe_load(task_file.read_text())["trained_head"]
    head = json.loads((heads / "support_ticket" / version / "head.json").read_text())
    assert head["embedder"]["id"] == "universal-sentence-encoder-multilingual-3-numpy"
    assert head["embedder"]["dimension"] == 512

    cascade = Cascade(Settings.from_env(env))
    record = cascade.process(cascade.tasks.get("support_ticket"),
                             Item(id="t", text="On m'a facturé deux fois l'abonnement ce mois-ci"))
    assert record.attempts[0].tier == "trained" and record.attempts[0].answer == "billing"


def test_health_says_which_embedder_each_task_of_the_trained_tier_gets(tmp_path, monkeypatch):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks", tasks)
    task_file = tasks / "support_ticket.yaml"
    task_file.write_text(task_file.read_text() + "languages: [en, es]\n")
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(tasks))
    answer = runner.invoke(app, ["health", "--json"])
    trained = {tier["tier"]: tier for tier in json.loads(answer.stdout)}["trained"]
    assert trained["embedders"]["support_ticket"] == "use_multilingual"
    assert trained["embedders"]["banking77"] == "minilm"
    monkeypatch.setenv("SMALLFIRST_TRAINED_EMBEDDER", "minilm")
    answer = runner.invoke(app, ["health"])
    assert "embeds banking77 with minilm" in answer.stderr and "support_ticket with minilm" in answer.stderr


def test_health_warns_of_a_declared_language_the_tasks_embedder_was_not_trained_on(tmp_path, monkeypatch):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks", tasks)
    task_file = tasks / "support_ticket.yaml"
    task_file.write_text(task_file.read_text() + "languages: [en, es, sv-SE]\n")  # USE-m reads es, not Swedish
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(tasks))
    trained = {tier["tier"]: tier for tier in json.loads(runner.invoke(app, ["health", "--json"]).stdout)}["trained"]
    assert trained["languages_outside"] == {"support_ticket": ["sv-SE"]}  # English-only tasks: nothing to say
    monkeypatch.setenv("SMALLFIRST_TRAINED_EMBEDDER", "minilm")
    answer = runner.invoke(app, ["health"])
    assert "support_ticket declares es, sv-SE, which its embedder was not trained on" in " ".join(answer.stderr.split())

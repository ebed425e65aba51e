"""Training data from production files: result records joined to their inputs' texts, corrections, gold; and the CLI."""

from __future__ import annotations

import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.pipeline.production_data import from_files
from tests.conftest import REPO

NOW = datetime(2026, 1, 10, tzinfo=timezone.utc)
LABELS = ["billing", "technical", "account", "other"]


def result(item_id: str, answer: str, *, tier: str = "frontier", task: str = "support_ticket",
           finished_at: datetime = NOW) -> dict:
    """A result record as the cascade writes it: the trained tier unsure, then ``tier`` accepted ``answer``."""
    status = "accepted" if tier == "trained" else "escalated"
    attempts = [] if tier == "trained" else [{"tier": "trained", "outcome": "low_confidence", "answer": "other"}]
    attempts.append({"tier": tier, "outcome": "accepted", "answer": answer, "confidence": 0.9})
    return {"id": item_id, "task": task, "status": status, "answer": answer, "confidence": 0.9, "tier": tier,
            "attempts": attempts, "finished_at": finished_at.isoformat()}


def correction(item_id: str, text: str, answer: str | None, *, decision: str = "correct",
               at: datetime = NOW) -> dict:
    return {"task": "support_ticket", "id": item_id, "text": text, "decision": decision, "final_answer": answer,
            "draft_answer": "other", "draft_tier": "small", "by": "reviewer@example.com", "at": at.isoformat()}


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_results_are_joined_to_their_inputs_texts_and_only_frontier_answers_are_used(tmp_path):
    items = write_jsonl(tmp_path / "items.jsonl", [{"id": "a", "text": "refund my order"},
                                                   {"id": "b", "text": "the app crashes"},
                                                   {"id": "c", "text": "reset my password"}])
    (tmp_path / "one.txt").write_text("cannot log in")  # a .txt input: its id is the file's stem
    results = write_jsonl(tmp_path / "results.jsonl", [
        result("a", "billing"), result("b", "technical", tier="trained"), result("one", "account"),
        result("missing", "billing"), result("old", "billing", finished_at=NOW - timedelta(days=40))])
    (tmp_path / "broken.jsonl").write_text('{"id": "x"\nnot json\n')
    built = from_files("support_ticket", results=[results, tmp_path / "broken.jsonl"],
                       inputs=[items, tmp_path / "one.txt"], frontier_tiers={"frontier"}, allowed_labels=LABELS,
                       since=NOW - timedelta(days=30))
    assert sorted((e.text, e.label, e.provenance) for e in built.examples) == [
        ("cannot log in", "account", "frontier"), ("refund my order", "billing", "frontier")]
    assert built.reports["results"].skipped == {
        "not answered by a frontier tier": 1, "no text for the item": 1, "finished before the window": 1,
        "unreadable record": 2}


def test_an_id_with_two_texts_in_the_inputs_is_not_used(tmp_path):
    first = write_jsonl(tmp_path / "first.jsonl", [{"id": "a", "text": "refund my order"}])
    second = write_jsonl(tmp_path / "second.jsonl", [{"id": "a", "text": "the app crashes"}])
    results = write_jsonl(tmp_path / "results.jsonl", [result("a", "billing")])
    built = from_files("support_ticket", results=[results], inputs=[first, second], frontier_tiers={"frontier"})
    assert built.examples == []
    assert built.reports["results"].skipped["id with two different texts in the inputs"] == 1


def test_results_of_an_input_not_given_that_reuse_its_ids_are_not_joined_to_its_texts(tmp_path):
    items = write_jsonl(tmp_path / "items_a.jsonl", [{"id": "1", "text": "refund my order"},
                                                     {"id": "2", "text": "the app crashes"},
                                                     {"id": "3", "text": "Refund my order "}])  # the same, normalised
    answers_a = write_jsonl(tmp_path / "results_a.jsonl", [result("1", "billing"), result("2", "technical")])
    answers_b = write_jsonl(tmp_path / "results_b.jsonl", [result("3", "account")])  # of items_b, not given
    built = from_files("support_ticket", results=[answers_a, answers_b], inputs=[items],
                       frontier_tiers={"frontier"}, allowed_labels=LABELS)
    assert [(e.text, e.label) for e in built.examples] == [("the app crashes", "technical")]
    report = built.reports["results"]
    assert report.used == 1 and report.skipped == {"one text answered two ways (results of inputs not given, or "
                                                   "reusing ids)": 2}


def test_a_correction_written_without_a_time_zone_is_taken_as_utc_for_the_window(tmp_path):
    naive = {**correction("1", "charged twice", "billing"), "at": "2026-01-09T10:00:00"}
    old = {**correction("2", "app crashes", "technical"), "at": "2025-01-09T10:00:00"}
    corrections = write_jsonl(tmp_path / "corrections.jsonl", [naive, old])
    built = from_files("support_ticket", corrections=[corrections], frontier_tiers={"frontier"},
                       allowed_labels=LABELS, since=NOW - timedelta(days=30))
    assert [e.text for e in built.examples] == ["charged twice"]
    assert built.reports["corrections"].skipped == {"corrected before the window": 1}


def test_corrections_from_a_folder_skip_rejections_other_tasks_and_bad_files(tmp_path):
    folder = tmp_path / "corrections"
    folder.mkdir()
    (folder / "1.json").write_text(json.dumps(correction("1", "charged twice", "billing")))
    (folder / "2.json").write_text(json.dumps(correction("2", "spam spam", None, decision="reject")))
    (folder / "3.json").write_text(json.dumps({**correction("3", "x", "billing"), "task": "receipt"}))
    (folder / "4.json").write_text("{not json")
    (folder / "5.json").write_text(json.dumps({"task": "support_ticket"}))
    built = from_files("support_ticket", corrections=[folder], frontier_tiers={"frontier"}, allowed_labels=LABELS)
    assert [(e.text, e.label, e.provenance) for e in built.examples] == [("charged twice", "billing", "correction")]
    assert built.reports["corrections"].skipped == {"rejected in review": 1, "other task": 1,
                                                    "unreadable record": 1, "not a correction record": 1}


@pytest.fixture
def production(tmp_path):
    """The support-ticket train split as items the frontier answered, a correction that overrides one answer, and
    a dev slice as gold."""
    rows = [json.loads(line) for line in (REPO / "tasks/data/support_ticket/train.jsonl").read_text().splitlines()]
    rows = rows[:240]  # the original split's tickets (the rest widen it)
    items = write_jsonl(tmp_path / "items.jsonl", [{"id": r["id"], "text": r["text"]} for r in rows])
    records = [result(r["id"], r["label"]) for r in rows[1:]] + [result(rows[0]["id"], "other", tier="trained")]
    results = write_jsonl(tmp_path / "results.jsonl", records)
    fixed = correction(rows[1]["id"], rows[1]["text"], rows[1]["label"])
    corrections = write_jsonl(tmp_path / "corrections.jsonl", [fixed])
    dev = [json.loads(line) for line in (REPO / "tasks/data/support_ticket/dev.jsonl").read_text().splitlines()]
    gold = write_jsonl(tmp_path / "gold.jsonl", dev[:20])
    return items, results, corrections, gold


def test_train_from_results_prints_provenance_and_records_it_in_the_head(tmp_path, monkeypatch, production):
    items, results, corrections, gold = production
    tasks, heads = tmp_path / "tasks", tmp_path / "heads"
    shutil.copytree(REPO / "tasks", tasks)
    for key, value in {"SMALLFIRST_TASKS_DIR": str(tasks), "SMALLFIRST_TRAINED_HEADS_DIR": str(heads),
                       "SMALLFIRST_FRONTIER_BACKEND": "openai_compatible",
                       "SMALLFIRST_FRONTIER_ENDPOINT": "http://127.0.0.1:9"}.items():
        monkeypatch.setenv(key, value)
    out = CliRunner().invoke(app, ["train", "support_ticket", "--from-results", str(results), "--inputs", str(items),
                                   "--corrections", str(corrections), "--data", str(gold)], catch_exceptions=False)
    assert out.exit_code == 0, out.output
    printed = " ".join(out.output.split())  # the console wraps long lines
    assert "results: 239 examples; skipped: 1 not answered by a frontier tier" in printed
    assert "training set: 259 examples after de-duplication (1 correction, 238 frontier, 20 gold)" in printed
    version = (tasks / "support_ticket.yaml").read_text().split("trained_head: ")[1].split()[0]
    head = json.loads((heads / "support_ticket" / version / "head.json").read_text())
    assert head["training_data"]["by_provenance"] == {"correction": 1, "frontier": 238, "gold": 20}
    assert list((heads / "support_ticket" / "activations").iterdir())


def test_train_from_results_without_inputs_is_refused(tmp_path, production):
    _, results, _, _ = production
    out = CliRunner().invoke(app, ["train", "support_ticket", "--from-results", str(results)])
    assert out.exit_code == 2 and "--inputs" in out.output

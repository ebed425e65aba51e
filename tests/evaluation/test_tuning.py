"""`smallfirst tune` chooses a threshold by its accuracy bound and writes both into the task file: synthetic runs of
known accuracy, the CLI as a user runs it, the task file read back."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from shared.cli import app
from shared.evaluation.guarantees import accuracy_lower_bound
from shared.evaluation.run_analysis import EvalRecord
from shared.foundation.tasks import TaskCatalog
from tests.conftest import REPO

runner = CliRunner()


@pytest.fixture
def tasks(tmp_path, monkeypatch):
    folder = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks", folder)
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(folder))
    return folder


def write_run(path, tier: str, confidences: list[float], correct: list[bool]) -> None:
    """A banking77 run of one tier: item i answered at confidences[i], right where correct[i]."""
    path.write_text("".join(
        EvalRecord(tier=tier, outcome="answered", answer="card_arrival" if ok else "top_up_failed", confidence=c,
                   raw_confidence=c, task="banking77", kind="classification", id=f"{i:03d}",
                   gold="card_arrival").model_dump_json() + "\n"
        for i, (c, ok) in enumerate(zip(confidences, correct))))


def tune(*args: str):
    return runner.invoke(app, ["tune", "banking77", *args])


def test_tune_writes_the_bound_of_a_run_of_80_right_answers_and_prints_its_line(tasks, tmp_path):
    run = tmp_path / "run.jsonl"
    write_run(run, "small", [0.5 + i / 200 for i in range(80)], [True] * 80)
    result = tune(str(run), "--no-calibrate", "--target", "0.95")
    assert result.exit_code == 0, result.output
    line = "accepted items >= 96.3% accurate with 95% confidence on 80 items (80 accepted)"
    assert line in result.output
    tuned = yaml.safe_load((tasks / "banking77.yaml").read_text())
    bound = tuned["threshold_bounds"]["small"]
    assert bound["accuracy_lower_bound"] == pytest.approx(0.05 ** (1 / 80))  # 0.96325
    assert {key: bound[key] for key in ("scope", "confidence", "target", "items", "accepted", "correct")} == {
        "scope": "accepted", "confidence": 0.95, "target": 0.95, "items": 80, "accepted": 80, "correct": 80}
    assert "Clopper-Pearson" in bound["method"] and "fixed-sequence" in bound["method"]
    assert tuned["threshold"] == 0.5 and line in tuned["threshold_source"]
    task = TaskCatalog(tasks).get("banking77")  # a task file the catalog still loads
    assert task.threshold_bounds["small"].statement == line


def test_tune_of_95_right_of_100_writes_the_bound_of_its_accepted_items_at_the_chosen_confidence(tasks, tmp_path):
    # the 5 wrong answers are the least confident, yet 95 of 100 still shows 0.9 with 90% confidence (0.9138):
    # the lowest threshold accepts them all, and the bound written is that of exactly the items it accepts
    run = tmp_path / "run.jsonl"
    write_run(run, "trained", [1 - i / 200 for i in range(100)], [True] * 95 + [False] * 5)
    result = tune(str(run), "--tier", "trained", "--no-calibrate", "--target", "0.9", "--confidence", "0.9")
    assert result.exit_code == 0, result.output
    tuned = yaml.safe_load((tasks / "banking77.yaml").read_text())
    bound = tuned["threshold_bounds"]["trained"]
    accepted, correct = bound["accepted"], bound["correct"]
    assert accepted == 100 and correct == 95 and bound["confidence"] == 0.9
    assert bound["accuracy_lower_bound"] == pytest.approx(accuracy_lower_bound(95, 100, 0.9))
    assert tuned["tier_thresholds"]["trained"] == pytest.approx(1 - 99 / 200)
    assert "with 90% confidence on 100 items (100 accepted)" in tuned["tier_threshold_sources"]["trained"]
    assert "small" not in tuned["threshold_bounds"]  # another tier's tuning leaves the small tier's alone


def test_tune_with_a_frontier_run_writes_the_cascade_bound(tasks, tmp_path):
    small, frontier = tmp_path / "small.jsonl", tmp_path / "frontier.jsonl"
    confidences = [1 - i / 100 for i in range(100)]
    write_run(small, "small", confidences, [i < 90 for i in range(100)])  # wrong on its 10 least confident
    write_run(frontier, "frontier", [0.9] * 100, [True] * 100)
    result = tune(str(small), "--frontier-run", str(frontier), "--no-calibrate", "--target", "0.95")
    assert result.exit_code == 0, result.output
    bound = yaml.safe_load((tasks / "banking77.yaml").read_text())["threshold_bounds"]["small"]
    # the threshold accepts the 90 right small answers and one wrong one (99 of 100 right: bound 0.953; two
    # wrong, 98 of 100, would be 0.938)
    assert (bound["scope"], bound["items"], bound["accepted"], bound["correct"]) == ("cascade", 100, 91, 99)
    assert "cascade answers >= 95.3% accurate with 95% confidence on 100 items (91 accepted, 9 escalated)" in (
        result.output)


def test_tune_of_a_target_no_threshold_shows_is_one_line_saying_what_the_run_needs_and_writes_nothing(tasks, tmp_path):
    run = tmp_path / "run.jsonl"
    write_run(run, "small", [0.5 + i / 100 for i in range(40)], [True] * 40)
    before = (tasks / "banking77.yaml").read_text()
    result = tune(str(run), "--no-calibrate", "--target", "0.95")
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "no threshold's accepted items reach 95.0% with 95% confidence: the run has 40 items; 95.0% needs at least "
        "59 accepted items, all right (more if any is wrong): label more items, or lower --target or --confidence"]
    assert (tasks / "banking77.yaml").read_text() == before
    assert tune(str(run), "--no-calibrate", "--target", "0.9").exit_code == 0  # 29 all right suffice for 0.9


def test_tune_refuses_a_confidence_outside_its_range(tasks, tmp_path):
    run = tmp_path / "run.jsonl"
    write_run(run, "small", [0.9] * 80, [True] * 80)
    for value in ("1", "0.2"):
        result = tune(str(run), "--confidence", value)
        assert result.exit_code == 2 and "--confidence" in result.output


def test_the_written_threshold_accepts_exactly_the_items_its_bound_was_shown_on(tasks, tmp_path):
    from shared.core.policy import accepts

    # confidences 4e-7 apart: a threshold rounded to 6 decimals would take in, or leave out, neighbouring items
    confidences = [0.8 + i * 4e-7 for i in range(100)]
    run = tmp_path / "run.jsonl"
    write_run(run, "small", confidences, [i >= 10 for i in range(100)])  # the 10 least confident are wrong
    assert tune(str(run), "--no-calibrate", "--target", "0.9").exit_code == 0
    task = TaskCatalog(tasks).get("banking77")
    bound = task.threshold_bounds["small"]
    accepted = accepts(np.asarray(confidences), task.threshold)
    assert 90 < bound.accepted < 100 and int(accepted.sum()) == bound.accepted
    assert int(np.asarray([i >= 10 for i in range(100)])[accepted].sum()) == bound.correct == 90

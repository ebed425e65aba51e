"""eval -> report -> tune on real dataset rows: the embedded tier for real, a frontier over HTTP."""

from __future__ import annotations

import json
import shutil

import numpy as np

import pytest
import yaml
from typer.testing import CliRunner

from shared.cli import app
from shared.foundation.tasks import TaskCatalog
from shared.evaluation.run_analysis import EvalRecord, load_runs
from tests.azure_wire import AzureWireServer, Scripted, chat_completion
from tests.conftest import REPO, dataset_rows

runner = CliRunner()


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks", tasks)
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(tasks))
    rows = dataset_rows("banking77", limit=4, stride=211)
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path, data, rows


def invoke(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def gold_answering_frontier(rows):
    """A frontier that answers the gold label (half-sure), so the cascade has something to buy."""
    gold = {r["text"]: r["label"] for r in rows}

    def reply(request):
        label = gold[request.body["messages"][-1]["content"]]
        content = json.dumps({"label": label}, separators=(",", ":"))
        tokens = [('{"label":"', -0.01), (label, -0.7), ('"}', -0.01)]
        return Scripted(body=chat_completion(content, tokens=tokens, prompt_tokens=900, completion_tokens=9))

    return reply


def test_eval_report_tune_with_a_frontier_run(workspace, monkeypatch):
    tmp, data, rows = workspace
    small_run, frontier_run = tmp / "small.jsonl", tmp / "frontier.jsonl"
    invoke("eval", "banking77", "--data", str(data), "--tiers", "small", "--out", str(small_run))
    records = [json.loads(line) for line in small_run.read_text().splitlines()]
    assert sorted(r["id"] for r in records) == sorted(r["id"] for r in rows)
    assert all(r["tier"] == "small" and r["outcome"] == "answered" and 0 < r["raw_confidence"] <= 1 for r in records)
    assert {r["gold"] for r in records} == {r["label"] for r in rows}

    # resumable: nothing is evaluated twice
    result = invoke("eval", "banking77", "--data", str(data), "--tiers", "small", "--out", str(small_run))
    assert "0 item x tier pairs" in result.output and len(small_run.read_text().splitlines()) == len(rows)

    with AzureWireServer() as wire:
        wire.default = gold_answering_frontier(rows)
        for key, value in {"BACKEND": "azure_openai", "ENDPOINT": wire.url, "MODEL": "gpt-4o", "API_KEY": "k"}.items():
            monkeypatch.setenv(f"SMALLFIRST_FRONTIER_{key}", value)
        invoke("eval", "banking77", "--data", str(data), "--tiers", "frontier", "--out", str(frontier_run))
    frontier = [json.loads(line) for line in frontier_run.read_text().splitlines()]
    assert all(r["answer"] == r["gold"] for r in frontier) and frontier[0]["cost_usd"] > 0

    # Four items can show no more than 0.05 ** (1 / 4) = 0.47 with 95% confidence (all right), so the target is 0.4.
    out = tmp / "report"
    invoke("report", str(small_run), "--out", str(out), "--frontier-run", str(frontier_run), "--target", "0.4")
    markdown = (out / "report.md").read_text()
    for section in ("Quality, latency and cost per tier", "Calibration", "Top confusions", "Where the small model fails",
                    "Simulated cascade", "Recommended threshold"):
        assert f"## {section}" in markdown
    assert (out / "cascade.png").stat().st_size > 1000 and (out / "reliability-small.png").exists()
    html = (out / "report.html").read_text()
    assert "data:image/png;base64," in html and "<table>" in html
    recommendation = json.loads((out / "summary.json").read_text())["recommendation"]
    # The frontier is always right here, and 3 of 4 right shows only 0.25, so every wrong small answer must
    # escalate; the cheapest such threshold is the lowest candidate above the most confident wrong answer.
    confidences = [r["raw_confidence"] for r in records]
    wrong = [r["raw_confidence"] for r in records if r["answer"] != r["gold"]]
    candidates = sorted(c for c in confidences if not wrong or c > max(wrong))
    expected = candidates[0] if candidates else float(np.nextafter(max(confidences), 2.0))
    assert recommendation["target"] == pytest.approx(0.4)
    assert recommendation["threshold"] == pytest.approx(expected)
    # the report states the bound it chose by, in words and as data, as tune writes it
    assert recommendation["bound"]["scope"] == "cascade" and recommendation["bound"]["items"] == 4
    assert recommendation["bound"]["accuracy_lower_bound"] == pytest.approx(0.05 ** (1 / 4))
    assert "cascade answers >= 47.2% accurate with 95% confidence on 4 items" in markdown

    task_file = tmp / "tasks" / "banking77.yaml"
    task_file.write_text("# banking intents: keep this comment\n" + task_file.read_text())
    invoke("tune", "banking77", str(small_run), "--frontier-run", str(frontier_run), "--target", "0.4")
    assert task_file.read_text().startswith("# banking intents: keep this comment\n")  # only tune's keys change
    tuned = yaml.safe_load(task_file.read_text())
    assert tuned["threshold_source"].startswith("tuned ") and "small.jsonl" in tuned["threshold_source"]
    assert tuned["calibration"]["tier"] == "small" and tuned["calibration"]["x"] == sorted(tuned["calibration"]["x"])
    bound = tuned["threshold_bounds"]["small"]
    assert (bound["scope"], bound["items"], bound["correct"], bound["target"]) == ("cascade", 4, 4, 0.4)
    assert bound["accuracy_lower_bound"] == pytest.approx(0.05 ** (1 / 4))
    task = TaskCatalog(tmp / "tasks").get("banking77")  # still a valid task file
    assert task.threshold == pytest.approx(tuned["threshold"]) and task.calibration is not None

    # the report on the tuned task compares calibrated confidences, as the cascade and tune do
    invoke("report", str(small_run), "--out", str(tmp / "report2"), "--frontier-run", str(frontier_run),
           "--target", "0.4")
    again = json.loads((tmp / "report2" / "summary.json").read_text())["recommendation"]
    assert again["threshold"] == pytest.approx(tuned["threshold"], abs=1e-6)
    assert "through the task's calibration map" in (tmp / "report2" / "report.md").read_text()

    compare_out = tmp / "compare"
    invoke("compare", str(small_run), str(frontier_run), "--out", str(compare_out))
    assert "A:small" in (compare_out / "compare.md").read_text()


def test_extraction_eval_and_single_tier_report(tmp_path, monkeypatch):
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(REPO / "tasks"))
    data = tmp_path / "receipts.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in dataset_rows("sroie", limit=1, stride=7)))
    run = tmp_path / "run.jsonl"
    invoke("eval", "receipt", "--data", str(data), "--out", str(run))
    record = json.loads(run.read_text())
    assert record["kind"] == "extraction" and set(record["field_confidence"]) == {"company", "date", "address", "total"}
    invoke("report", str(run), "--out", str(tmp_path / "report"))
    markdown = (tmp_path / "report" / "report.md").read_text()
    assert "| total exact |" in markdown and "field-level F1" in markdown and "One tier only" in markdown


def _records(tier: str, answers: list[str], golds: list[str], task: str = "banking77") -> str:
    return "".join(EvalRecord(tier=tier, outcome="answered", answer=a, confidence=0.9, raw_confidence=0.9,
                              task=task, kind="classification", id=str(i), gold=g).model_dump_json() + "\n"
                   for i, (a, g) in enumerate(zip(answers, golds)))


def _main(*args: str, env: dict[str, str] | None = None):
    """The console entry point in a process of its own, as a user runs it."""
    import os
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", "from shared.cli.app import main; main()", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})})
    return done.returncode, done.stdout + done.stderr


def test_a_run_of_another_task_is_refused_by_eval_tune_report_and_compare_and_nothing_is_written(tmp_path):
    other = tmp_path / "banking.jsonl"
    other.write_text(_records("trained", ["card_arrival"] * 2, ["card_arrival"] * 2))
    tickets = tmp_path / "tickets.jsonl"
    tickets.write_text(_records("trained", ["billing", "other"], ["billing", "account"], task="support_ticket"))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": f"n{i}", "text": t, "label": "billing"}) + "\n"
                            for i, t in enumerate(["refund me", "charged twice"])))
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks", tasks)
    task_file = (tasks / "support_ticket.yaml").read_text()
    before = other.read_bytes()
    for args in (["eval", "support_ticket", "--data", str(data), "--tiers", "trained", "--out", str(other)],
                 ["tune", "support_ticket", str(other), "--tier", "trained"],
                 ["report", str(tickets), "--frontier-run", str(other), "--out", str(tmp_path / "report")],
                 ["compare", str(tickets), str(other), "--out", str(tmp_path / "compare")]):
        code, output = _main(*args, env={"SMALLFIRST_TASKS_DIR": str(tasks)})
        assert code != 0 and "Traceback" not in output, output
        assert "a run of banking77, not of support_ticket" in " ".join(output.split()), output
    assert other.read_bytes() == before and (tasks / "support_ticket.yaml").read_text() == task_file


def test_a_run_file_mixing_tasks_is_refused_and_one_repeating_a_pair_counts_it_once(tmp_path):
    from shared.errors import InputError
    from shared.evaluation.run_analysis import read_run

    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(_records("small", ["a"], ["a"]) + _records("small", ["billing"], ["billing"], task="support_ticket"))
    for task in (None, "support_ticket"):
        with pytest.raises(InputError, match=r"several tasks \(banking77, support_ticket\)"):
            read_run(mixed, task)
    repeated = tmp_path / "repeated.jsonl"
    repeated.write_text(_records("small", ["a", "b"], ["a", "b"]) + _records("small", ["x", "y"], ["a", "b"]))
    runs = load_runs(repeated, "banking77")
    assert [(r.id, r.answer) for r in runs["small"].records] == [("0", "x"), ("1", "y")]  # the last of each


def test_a_frontier_run_sharing_no_item_with_the_run_is_one_line_not_a_table_of_nan(tmp_path):
    small, frontier = tmp_path / "small.jsonl", tmp_path / "frontier.jsonl"
    small.write_text(_records("small", ["a"], ["a"]))
    frontier.write_text(_records("frontier", ["a"], ["a"]).replace('"id":"0"', '"id":"elsewhere"'))
    code, output = _main("report", str(small), "--frontier-run", str(frontier), "--out", str(tmp_path / "report"))
    assert code != 0 and "share no item ids" in output and "Traceback" not in output, output


def test_eval_resumed_after_a_line_cut_short_keeps_every_record(tmp_path, monkeypatch):
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks", tasks)
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(tasks))
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": str(i), "text": t, "label": "billing"}) + "\n"
                            for i, t in enumerate(["refund me", "charged twice", "invoice wrong", "card declined"])))
    run = tmp_path / "run.jsonl"
    complete = _records("trained", ["billing"], ["billing"], task="support_ticket")
    cut = (complete.replace('"id":"0"', '"id":"1"').replace('"gold":"billing"', '"gold":"bïlling"')).encode()
    run.write_bytes(complete.encode() + cut[:cut.index("ï".encode()) + 1])  # killed inside a character of item 1
    invoke("eval", "support_ticket", "--data", str(data), "--tiers", "trained", "--out", str(run))
    from shared.evaluation.run_analysis import read_run

    assert sorted(r.id for r in read_run(run, "support_ticket")) == ["0", "1", "2", "3"]


def test_a_frontier_run_recorded_as_small_never_replaces_the_small_tier(tmp_path):
    golds = ["card_arrival", "top_up_failed", "lost_or_stolen_card"]
    small = tmp_path / "small.jsonl"
    small.write_text(_records("small", ["wrong"] * 3, golds))
    frontier = tmp_path / "frontier.jsonl"
    frontier.write_text(_records("small", golds, golds))  # a frontier model evaluated under the tier name small
    runs = load_runs(small, "banking77", frontier)
    assert set(runs) == {"small", "frontier"}
    assert runs["small"].correct == [False] * 3 and runs["frontier"].correct == [True] * 3


def test_eval_applies_the_same_input_budget_as_the_cascade(catalog):
    from shared.core.cascade import Cascade
    from shared.core.config import Settings
    from shared.evaluation.tier_eval import LabelledItem, evaluate_many

    task = catalog.get("support_ticket").model_copy(update={"max_input_chars": 10})
    item = LabelledItem(id="long", text="a ticket far longer than ten characters", label="other")
    (record,) = evaluate_many(Cascade(Settings.from_env({}), tasks=catalog), task, [item], "small")
    assert record.outcome == "too_large" and not record.answered and record.gold == "other"


def test_report_and_tune_on_a_run_file_that_is_not_text_say_so_without_a_traceback(tmp_path):
    import subprocess
    import sys

    from tests.conftest import REPO

    run = tmp_path / "run.jsonl"
    run.write_bytes(b"\xfa\xfb{\x00")
    for args, code in ((["report", str(run), "--out", str(tmp_path / "report")], 2), (["tune", "banking77", str(run)], 1)):
        done = subprocess.run([sys.executable, "-c", "from shared.cli.app import main; main()", *args], cwd=REPO,
                              capture_output=True, text=True, timeout=120)
        output = done.stdout + done.stderr
        assert done.returncode == code and "not UTF-8 text" in output and "Traceback" not in output, output


@pytest.mark.parametrize("rows, problem", [
    (['{"text": "no id", "label": "billing"}'], r"data.jsonl:1: .*id: Field required"),
    (['{"id": "a", "text": "no gold"}'], r"data.jsonl:1: .*gold answer"),
    (['{"id": "a", "text": "", "label": "billing"}'], r"data.jsonl:1: .*text"),
    (['{"id": "a", "text": " \\n\\t ", "label": "billing"}'], r"data.jsonl:1: .*text: Value error, the text is blank"),
    (['{"id": "a", "text": "x", "label": "billing"}', "", "not json"], r"data.jsonl:3: "),
    (['[1, 2]'], r"data.jsonl:1: "),
    (['{"id": "a", "text": "x", "label": "billing"}', '{"id": "a", "text": "y", "label": "other"}'],
     r"data.jsonl:2: id 'a' repeats line 1"),
    (['{"id": "a", "text": "x", "expected": {"total": 1e999}}'], r"data.jsonl:1: .*not JSON: 1e999 is beyond"),
    (['{"id": "a", "text": "x", "expected": {"total": NaN}}'], r"data.jsonl:1: .*not JSON: NaN is not JSON"),
], ids=["no-id", "no-gold", "empty-text", "blank-text", "not-json", "not-an-object", "repeated-id", "beyond-a-float", "nan"])
def test_a_labelled_file_with_a_bad_row_is_an_input_error_naming_its_line(tmp_path, rows, problem):
    from shared.errors import InputError
    from shared.evaluation.tier_eval import load_labelled

    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(InputError, match=problem):
        load_labelled(path)


def test_numbered_rows_are_read_and_gold_of_the_wrong_kind_or_unknown_labels_are_caught_before_a_run(tmp_path, catalog):
    from shared.errors import InputError
    from shared.evaluation.tier_eval import check_gold, load_labelled

    path = tmp_path / "data.jsonl"
    path.write_text('{"id": 7, "text": "refund", "label": "billing"}\n{"id": 8, "text": "hm", "label": "gadgets"}\n')
    items = load_labelled(path)
    assert [item.id for item in items] == ["7", "8"]
    assert check_gold(catalog.get("support_ticket"), items, str(path)) == ["gadgets"]
    with pytest.raises(InputError, match="data.jsonl: 2 rows have no 'expected'.*receipt"):
        check_gold(catalog.get("receipt"), items, str(path))
    (tmp_path / "bad.jsonl").write_bytes(b'\xff{"id": "a"}\n')
    with pytest.raises(InputError, match="not UTF-8"):
        load_labelled(tmp_path / "bad.jsonl")


def test_a_folder_where_a_file_goes_and_a_file_where_a_folder_goes_are_usage_errors(tmp_path):
    run = tmp_path / "run.jsonl"
    run.write_text(_records("small", ["a"], ["a"]))
    a_file = tmp_path / "a_file"
    a_file.write_text("")
    for args, problem in ((["run", "banking77", "--input", str(run), "--output", str(tmp_path)], "is a directory"),
                          (["report", str(run), "--out", str(a_file)], "is a file"),
                          (["compare", str(run), str(run), "--out", str(a_file)], "is a file"),
                          (["eval", "banking77", "--data", str(run), "--out", str(tmp_path)], "is a directory"),
                          (["tune", "banking77", str(run), "--frontier-run", str(tmp_path)], "is a directory")):
        result = runner.invoke(app, args)
        words = " ".join(result.output.replace("│", " ").split())  # the message wraps inside rich's box
        assert result.exit_code == 2 and problem in words, result.output


def test_compare_with_a_run_that_holds_no_records_says_so(tmp_path):
    run, empty = tmp_path / "run.jsonl", tmp_path / "empty.jsonl"
    run.write_text(_records("small", ["a"], ["a"]))
    empty.write_text("")
    result = runner.invoke(app, ["compare", str(run), str(empty), "--out", str(tmp_path / "compare")])
    assert result.exit_code == 2 and "holds no records" in result.output
    assert not (tmp_path / "compare").exists()

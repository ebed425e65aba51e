"""`smallfirst stats` on local files: the tables, the window, the HTML page, and one-line errors for bad sources."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from localdev.azurite import ACCOUNT, KEY, free_port
from shared.cli import app
from shared.foundation.records import ResultRecord
from shared.errors import InputError
from shared.monitoring.stats_sources import local_results, parse_records
from tests.azure_wire import Scripted, chat_completion
from tests.conftest import write_ticket_task
from tests.monitoring.records import result, shadow

runner = CliRunner()
NOW = datetime.now(timezone.utc)


def write_jsonl(path: Path, records) -> Path:
    path.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def files(tmp_path) -> tuple[Path, Path]:
    """Ten items today (8 accepted at $0.001 against $0.01 all-frontier, 2 escalated at $0.011), one 30 days
    ago, and 4 shadow pairs today of which 3 agree."""
    today = [result(f"i{n}", at=NOW, cost=0.001) for n in range(8)]
    today += [result(f"e{n}", "escalated", at=NOW, outcomes=("low_confidence", "accepted"), cost=0.011)
              for n in range(2)]
    old = [result("old", at=NOW - timedelta(days=30))]
    results = write_jsonl(tmp_path / "results.jsonl", today + old)
    pairs = write_jsonl(tmp_path / "shadow.jsonl", [shadow(f"i{n}", agree=n < 3, at=NOW) for n in range(4)])
    return results, pairs


def stats(*args: str):
    return runner.invoke(app, ["stats", *args], env={"COLUMNS": "200"})


def test_stats_prints_volume_saving_and_live_accuracy_of_the_last_days(files):
    results, pairs = files
    outcome = stats("--results", str(results), "--shadow", str(pairs))
    assert outcome.exit_code == 0, outcome.output
    # 10 items in the default 7 days (the one of 30 days ago is outside): $0.030 against $0.100.
    assert "10 items; cost $0.0300, saving $0.0700 (70.0%) against all-frontier" in outcome.output
    assert "live accuracy 75.0% (95% interval 30.1% - 95.4%, 4 shadow pairs)" in outcome.output
    assert re.search(r"all days\s*│\s*10\s*│\s*80\.0%\s*│\s*20\.0%", outcome.output)


def test_days_zero_reads_every_day(files):
    results, _ = files
    outcome = stats("--results", str(results), "--days", "0")
    assert outcome.exit_code == 0, outcome.output
    assert "11 items" in outcome.output and "all days, UTC" in outcome.output


def test_a_task_with_no_records_says_so(files):
    results, _ = files
    outcome = stats("receipt", "--results", str(results))
    assert outcome.exit_code == 0 and "no records of receipt since" in outcome.output


def test_html_writes_one_self_contained_page_with_the_five_plots(files, tmp_path):
    results, pairs = files
    page = tmp_path / "stats.html"
    outcome = stats("--results", str(results), "--shadow", str(pairs), "--html", str(page))
    assert outcome.exit_code == 0, outcome.output
    text = page.read_text(encoding="utf-8")
    assert len(re.findall(r'<img alt="[^"]+" src="data:image/png;base64,', text)) == 5
    assert not re.search(r'(src|href)="(?!data:)', text)  # nothing loaded from elsewhere
    assert "saving $0.0700 (70.0%)" in text


@pytest.mark.parametrize("content, message", [
    ('{"id": "a", "task": "ticket", "status": "accepted"}\n{not json\n',
     "line 2: not JSON (Expecting property name enclosed in double quotes at column 2)"),
    ('{"id": "a", "task": "ticket", "status": "done"}\n', "line 1: not a ResultRecord (status: Input should be"),
    ('{"id": "a", "task": "ticket", "status": "accepted", "cost_usd": Infinity}\n', "line 1: not JSON (Infinity"),
    ('{"id": "a", "task": "ticket", "status": "accepted", "cost_usd": 1e999}\n', "line 1: not JSON (1e999 is beyond"),
    ("[" * 100_000 + "]" * 100_000 + "\n", "line 1: not JSON (nested too deeply"),
], ids=["not-json", "not-a-record", "infinity", "beyond-a-float", "nested-too-deeply"])
def test_an_unreadable_results_file_is_one_line_naming_it_and_the_line(tmp_path, content, message):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(content)
    outcome = stats("--results", str(bad))
    assert outcome.exit_code == 2
    assert message in outcome.output and str(bad) in outcome.output
    assert "Traceback" not in outcome.output and len(outcome.output.strip().splitlines()) == 1


def test_a_missing_file_is_one_line(tmp_path):
    outcome = stats("--shadow", str(tmp_path / "nowhere.jsonl"))
    assert outcome.exit_code == 2 and "nowhere.jsonl: No such file or directory" in outcome.output
    assert "Traceback" not in outcome.output


def test_without_files_or_a_storage_connection_it_says_which_setting_to_set(monkeypatch):
    for name in ("DataStorage", "DataStorage__blobServiceUri", "DataStorage__serviceUri"):
        monkeypatch.delenv(name, raising=False)
    outcome = stats()
    assert outcome.exit_code == 2 and "set DataStorage or DataStorage__blobServiceUri" in outcome.output
    assert "Traceback" not in outcome.output


def test_an_unreachable_storage_account_is_one_line_naming_the_container(monkeypatch):
    closed = free_port()  # bound and released: nothing listens there
    monkeypatch.setenv("DataStorage", f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
                                      f"BlobEndpoint=http://127.0.0.1:{closed}/{ACCOUNT};")
    outcome = stats()
    assert outcome.exit_code == 2 and "Traceback" not in outcome.output
    assert outcome.output.startswith("container results: ") and "Connection refused" in outcome.output
    assert len(outcome.output.strip().splitlines()) == 1


def test_a_malformed_connection_string_is_one_line(monkeypatch):
    monkeypatch.setenv("DataStorage", "not a connection string")
    outcome = stats()
    assert outcome.exit_code == 2 and "Connection string is either blank or malformed" in outcome.output
    assert "Traceback" not in outcome.output


def test_a_json_file_may_hold_one_record_a_list_or_the_http_apis_batch_answer(tmp_path):
    one, other = result("a").model_dump(mode="json"), result("b").model_dump(mode="json")
    for body, ids in ((one, ["a"]), ([one, other], ["a", "b"]), ({"results": [one, other]}, ["a", "b"])):
        assert [r.id for r in parse_records("x.json", json.dumps(body).encode(), ResultRecord)] == ids
    (tmp_path / "r.json").write_text(json.dumps(one))
    assert [s.source for s in local_results([tmp_path / "r.json"])] == [str(tmp_path / "r.json")]


def test_a_file_of_another_format_is_refused_by_name():
    with pytest.raises(InputError, match=r"items\.csv: not a \.json or \.jsonl file"):
        parse_records("items.csv", b"a,b\n", ResultRecord)


def test_stats_reads_what_smallfirst_run_writes(tmp_path, wire, monkeypatch):
    """Real result records: the cascade on an OpenAI-compatible tier sure of 'charged' tickets only."""
    def reply(request):
        sure = "charged" in request.body["messages"][-1]["content"]
        logprob = -0.01 if sure else -3.0
        tokens = [('{"label":"', -0.01), ("billing", logprob), ('"}', -0.01)]
        return Scripted(body=chat_completion('{"label":"billing"}', tokens=tokens))

    wire.default = reply
    for key, value in {"SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": wire.url,
                       "SMALLFIRST_SMALL_LOGPROBS": "true", "SMALLFIRST_SMALL_PRICE_IN_PER_M": "0.125",
                       "SMALLFIRST_SMALL_PRICE_OUT_PER_M": "0.5",
                       "SMALLFIRST_TASKS_DIR": str(write_ticket_task(tmp_path / "tasks"))}.items():
        monkeypatch.setenv(key, value)
    items = tmp_path / "items.jsonl"
    texts = ["I was charged twice"] * 6 + ["my screen is blank"] * 4
    items.write_text("".join(json.dumps({"id": f"t{n}", "text": t}) + "\n" for n, t in enumerate(texts)))
    ran = runner.invoke(app, ["run", "ticket", "--input", str(items), "--output", str(tmp_path / "results.jsonl")])
    assert ran.exit_code == 0, ran.output

    outcome = stats("ticket", "--results", str(tmp_path / "results.jsonl"))
    assert outcome.exit_code == 0, outcome.output
    assert re.search(r"all days\s*│\s*10\s*│\s*60\.0%\s*│\s*0\.0%\s*│\s*40\.0%", outcome.output)
    saving = re.search(r"10 items; cost \$([\d.]+), saving \$([\d.]+) \(([\d.]+)%\)", outcome.output)
    assert saving and float(saving[1]) > 0 and 0 < float(saving[3]) < 100  # Phi-4 prices against gpt-4o's
    assert re.search(r"all days\s*│\s*4\s*│", outcome.output)  # 4 low_confidence attempts
    assert "no shadow pairs for live accuracy" in outcome.output


def test_stats_reports_confidence_drift_against_the_tuning_reference(files, tmp_path):
    tasks_dir = write_ticket_task(tmp_path / "tasks")
    task_file = tasks_dir / "ticket.yaml"
    first_tier = json.loads(files[0].read_text().splitlines()[0])["attempts"][0]["tier"]
    # Tuned on confidences all below 0.1; the live answers in `files` are far more confident: a shift.
    task_file.write_text(task_file.read_text() + f"confidence_reference: {{{first_tier}: [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]}}\n")
    out = runner.invoke(app, ["stats", "--results", str(files[0]), "--days", "0"],
                        env={"COLUMNS": "200", "SMALLFIRST_TASKS_DIR": str(tasks_dir)})
    assert out.exit_code == 0, out.output
    assert re.search(rf"confidence drift of {first_tier} .* PSI \d+\.\d{{3}} \(shifted: re-tune the threshold\)",
                     out.output)

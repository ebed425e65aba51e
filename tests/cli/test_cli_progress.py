"""Progress bars on stderr where a person watches a terminal, and never in --json output: `stats` reading the
containers and `review` loading its queue, against Azurite; `review --json` and `--list` list the queue."""

from __future__ import annotations

import io
import json
import os
from datetime import datetime, timezone

import pytest
from rich.console import Console
from typer.testing import CliRunner

from shared.cli import common
from shared.cli import app
from shared.pipeline.blob_names import Containers, InputBlob
from tests.monitoring.records import result

pytestmark = pytest.mark.azurite
runner = CliRunner()
TASK = "support_ticket"  # the repository's task: review looks tasks up in the settings' tasks folder
NOW = datetime.now(timezone.utc)


@pytest.fixture(scope="module")
def written(storage):
    """Two results of one input, one of them waiting for review."""
    source = InputBlob(TASK, "progress.jsonl")
    waiting = result("p2", "needs_review", task=TASK, at=NOW, outcomes=("low_confidence",), tiers=("small",))
    lines = "".join(r.model_dump_json() + "\n" for r in [result("p1", task=TASK, at=NOW), waiting])
    storage.write(Containers().results, source.result_lines, lines, content_type="application/json", metadata={})
    storage.write(Containers().review, source.review, waiting.model_dump_json() + "\n",
                  content_type="application/json", metadata={})
    return storage


@pytest.fixture
def terminal(written, emulator, monkeypatch) -> io.StringIO:
    """The CLI's stderr console as a terminal (the test runner's is not), its output kept; DataStorage is Azurite."""
    monkeypatch.setattr(os, "environ", {**os.environ, "DataStorage": emulator.connection_string})
    shown = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=shown, force_terminal=True, width=120))
    return shown


def test_stats_from_storage_draws_a_bar_per_container_on_a_terminal(terminal):
    answer = runner.invoke(app, ["stats", TASK])
    assert answer.exit_code == 0, answer.output
    assert "reading results/" in terminal.getvalue() and "reading review/" in terminal.getvalue()


def test_stats_json_from_storage_stays_clean_json_with_no_bar_even_on_a_terminal(terminal):
    answer = runner.invoke(app, ["stats", TASK, "--json"])
    assert answer.exit_code == 0, answer.output
    [task] = json.loads(answer.stdout)["tasks"]
    assert task["total"]["volume"] == 2
    assert "reading" not in terminal.getvalue()


def test_stats_draws_no_bar_where_stderr_is_not_a_terminal(written, emulator, monkeypatch):
    monkeypatch.setattr(os, "environ", {**os.environ, "DataStorage": emulator.connection_string})
    answer = runner.invoke(app, ["stats", TASK])
    assert answer.exit_code == 0, answer.output
    assert "reading results/" not in answer.output


def test_review_json_lists_the_waiting_items_as_clean_json_with_no_bar(terminal):
    answer = runner.invoke(app, ["review", TASK, "--json"])
    assert answer.exit_code == 0, answer.output
    [item] = json.loads(answer.stdout)
    assert (item["record"]["id"], item["record"]["status"], item["source"]) == ("p2", "needs_review",
                                                                                 f"{TASK}/progress.jsonl")
    assert "review queue" not in terminal.getvalue()


def test_review_list_shows_a_bar_while_the_queue_loads_then_lists_without_asking(terminal):
    answer = runner.invoke(app, ["review", TASK, "--list"], env={"COLUMNS": "200"})
    assert answer.exit_code == 0, answer.output
    assert "reading the review queue of support_ticket" in terminal.getvalue()
    assert "1 item(s) wait in review" in answer.stdout and "p2" in answer.stdout
    assert "[a]ccept" not in answer.output

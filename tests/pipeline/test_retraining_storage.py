"""Learning from production in storage, on a real Azurite: results joined to their inputs, corrections, and the
scheduled retrain function promoting a head into the models container, which the trained tier then answers with."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
from datetime import datetime, timedelta, timezone

import pytest
from azure.storage.blob import BlobServiceClient

from localdev.azurite import Azurite
from shared.core.config import Settings
from shared.foundation.tasks import TaskCatalog
from shared.core.tiers.trained import TrainedTier
from shared.learning.activation import latest_activation
from shared.learning.classifier import NOVELTY_CONFIDENCE_METHOD
from shared.pipeline.production_data import from_storage
from shared.pipeline.blob_names import Containers, correction
from tests.conftest import REPO
from tests.pipeline.test_production_data import correction as correction_record
from tests.pipeline.test_production_data import result

pytestmark = pytest.mark.azurite
NOW = datetime.now(timezone.utc)


def registered(name: str):
    """The app's function of that name, as the host indexes it (once per process: localdev.host caches it)."""
    from function_app import app
    from localdev.host import indexed_functions

    [function] = [f for f in indexed_functions(app) if f.get_function_name() == name]
    return function


def jsonl(rows: list[dict]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in rows).encode("utf-8")


def put_input_and_results(blobs: BlobServiceClient, name: str, rows: list[dict], results: dict[str, list[dict]],
                          *, results_sha256: str | None = None) -> None:
    """incoming/support_ticket/<name> and its result blobs (by suffix), with the metadata the pipeline writes."""
    data = jsonl([{"id": r["id"], "text": r["text"]} for r in rows])
    blobs.get_blob_client("incoming", f"support_ticket/{name}").upload_blob(data, overwrite=True)
    sha = results_sha256 or hashlib.sha256(data).hexdigest()
    for suffix, records in results.items():
        blobs.get_blob_client("results", f"support_ticket/{name}{suffix}").upload_blob(
            jsonl(records), overwrite=True, metadata={"source_sha256": sha})


@pytest.fixture(scope="module")
def storage():
    """Azurite holding the support-ticket train and dev splits as production: frontier answers in a whole-file
    result, in the parts of a fanned-out one, one item the trained tier answered itself, results of an input that
    has changed since, and corrections."""
    rows = [json.loads(line) for split in ("train", "dev")
            for line in (REPO / f"tasks/data/support_ticket/{split}.jsonl").read_text().splitlines()]
    with Azurite() as emulator:
        blobs = BlobServiceClient.from_connection_string(emulator.connection_string)
        for container in Containers().all():
            blobs.create_container(container)
        whole, parted, changed = rows[:150], rows[150:310], rows[310:]
        put_input_and_results(blobs, "whole.jsonl", whole, {
            ".jsonl": [result(r["id"], r["label"], finished_at=NOW) for r in whole[1:]]
            + [result(whole[0]["id"], "other", tier="trained", finished_at=NOW)]})
        put_input_and_results(blobs, "parted.jsonl", parted, {
            "/part-00000.jsonl": [result(r["id"], r["label"], finished_at=NOW) for r in parted[:80]],
            "/part-00001.jsonl": [result(r["id"], r["label"], finished_at=NOW) for r in parted[80:]]})
        put_input_and_results(blobs, "changed.jsonl", changed,
                              {".jsonl": [result(r["id"], r["label"], finished_at=NOW) for r in changed]},
                              results_sha256="0" * 64)
        blobs.get_blob_client("results", "support_ticket/parted.jsonl/manifest.json").upload_blob(b"{}")
        for row in changed:  # people corrected the items whose results can no longer be joined
            blobs.get_blob_client("corrections", correction("support_ticket", "support_ticket/changed.jsonl",
                                                            row["id"])).upload_blob(
                json.dumps(correction_record(row["id"], row["text"], row["label"], at=NOW)))
        yield emulator, blobs, len(rows)


def test_results_in_storage_are_joined_to_the_input_content_they_came_from(storage):
    _, blobs, total = storage
    built = from_storage(blobs, "support_ticket", frontier_tiers={"frontier"},
                         allowed_labels=["billing", "technical", "account", "other"],
                         since=NOW - timedelta(days=1))
    assert built.reports["results"].used == 149 + 160
    assert built.reports["results"].skipped == {"not answered by a frontier tier": 1,
                                                "input gone or changed since its results": total - 310}
    assert built.reports["corrections"].used == total - 310
    assert {e.provenance for e in built.examples} == {"frontier", "correction"}


def test_nothing_older_than_the_window_is_used(storage):
    _, blobs, _ = storage
    built = from_storage(blobs, "support_ticket", frontier_tiers={"frontier"}, since=NOW + timedelta(minutes=5))
    assert built.examples == [] and built.reports["results"].used == 0


@pytest.fixture
def app_env(storage, tmp_path):
    emulator, _, _ = storage
    tasks = tmp_path / "tasks"
    shutil.copytree(REPO / "tasks", tasks)
    text = (tasks / "support_ticket.yaml").read_text()
    (tasks / "support_ticket.yaml").write_text(
        "\n".join(line for line in text.splitlines() if not line.startswith("trained_head:")) + "\n")
    env = {"DataStorage": emulator.connection_string, "SMALLFIRST_TASKS_DIR": str(tasks),
           "SMALLFIRST_RETRAIN_TASKS": "support_ticket, receipt", "SMALLFIRST_TRAINED_HEADS_STORE": "blob",
           "SMALLFIRST_FRONTIER_BACKEND": "openai_compatible", "SMALLFIRST_FRONTIER_ENDPOINT": "http://127.0.0.1:9"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    from functions import services
    services.reset()
    yield env
    services.reset()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_the_timer_function_retrains_promotes_into_blob_storage_and_the_tier_answers_with_the_new_head(app_env):
    function = registered("retrain_heads")
    assert function.get_trigger().get_dict_repr()["schedule"] == "%SMALLFIRST_RETRAIN_SCHEDULE%"
    function.get_user_function()(timer=None)

    config = Settings.from_env(app_env).tiers["trained"]
    tier = TrainedTier(config)
    activation = latest_activation(tier.head_store, "support_ticket")
    assert activation is not None and activation.decision.startswith("support_ticket/decisions/")
    decision = json.loads(tier.head_store.read(activation.decision))
    assert decision["promote"] and decision["candidate_version"] == activation.version
    assert tier.head_store.list("receipt/") == []  # an extraction task is reported, not retrained

    task = TaskCatalog(REPO / "tasks").get("support_ticket").model_copy(update={"trained_head": None})
    answer = tier.classify(task, "I was charged twice for my subscription")
    assert answer.confidence_method == NOVELTY_CONFIDENCE_METHOD and answer.value == "billing"
    assert tier.active_head(task).version == activation.version


def test_the_timer_function_does_nothing_when_no_tasks_are_listed(app_env, storage, monkeypatch):
    from functions import services

    _, blobs, _ = storage
    monkeypatch.setenv("SMALLFIRST_RETRAIN_TASKS", "")
    services.reset()
    before = list(blobs.get_container_client("models").list_blob_names())
    registered("retrain_heads").get_user_function()(timer=None)
    assert list(blobs.get_container_client("models").list_blob_names()) == before


def test_smallfirst_retrain_runs_the_same_champion_challenger_now_records_its_decision_and_prints_each_fitting_step(
        app_env):
    """Its stderr is no terminal here, so each step of fitting is a line of its own."""
    from typer.testing import CliRunner

    from shared.cli import app

    tier = TrainedTier(Settings.from_env(app_env).tiers["trained"])
    decisions_before = [k for k in tier.head_store.list("support_ticket/decisions/")]
    result = CliRunner().invoke(app, ["retrain", "support_ticket", "--days", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "results: 309 examples" in result.output and "corrections: " in result.output
    decisions = tier.head_store.list("support_ticket/decisions/")
    assert len(decisions) == len(decisions_before) + 1
    decision = json.loads(tier.head_store.read(sorted(decisions)[-1]))
    verdict = "promoted" if decision["promote"] else "kept the active head"
    assert f"support_ticket: {verdict}" in " ".join(result.output.split())
    steps = [line for line in result.output.splitlines() if line.startswith("fitting ")]
    finished = [step for step in steps if "iteration" not in step]  # a long final fit also says it is at work
    done = [int(step.split()[1].split("/")[0]) for step in finished]  # the total grows as the search plans more
    assert len(done) > 10 and done == list(range(1, len(done) + 1))
    assert sum("C = " in step and "fold " in step for step in finished) > 5
    assert finished[-1].startswith(f"fitting {len(done)}/{len(done)}: final fit")

    refused = CliRunner().invoke(app, ["retrain", "receipt"])
    assert refused.exit_code == 2 and "extraction task" in refused.output


def test_smallfirst_retrain_on_a_terminal_draws_the_fitting_steps_on_a_bar_not_as_lines(app_env, monkeypatch):
    from rich.console import Console
    from typer.testing import CliRunner

    from shared.cli import app, common

    terminal = io.StringIO()
    monkeypatch.setattr(common, "console", Console(file=terminal, force_terminal=True, width=160))
    result = CliRunner().invoke(app, ["retrain", "support_ticket", "--days", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "fitting: final fit" in terminal.getvalue()  # the bar's last state, drawn when it stops
    assert not [line for line in result.output.splitlines() if line.startswith("fitting ")]


def test_retrain_scheduled_tells_its_fit_progress_every_step_of_fitting_it_logs(app_env, storage, caplog):
    from shared.core.cascade import Cascade
    from shared.learning.classifier import FitStep
    from shared.pipeline.retraining import retrain_scheduled

    _, blobs, _ = storage
    heard: list[FitStep] = []
    with caplog.at_level(logging.INFO, logger="shared.learning.classifier"):
        [outcome] = retrain_scheduled(Cascade.from_env(), blobs, tasks=["support_ticket"], days=2,
                                      fit_progress=heard.append)
    assert outcome.decision is not None, outcome.not_trained
    logged = [r.getMessage() for r in caplog.records if r.name == "shared.learning.classifier"]
    assert len(heard) > 10 and heard[-1].phase == "final fit"
    assert [f"fitting a head, step {s.done}/{s.total}: {s.describe()}" for s in heard] == logged

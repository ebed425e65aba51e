"""The command line's conventions: --version, --json on the table commands, `smallfirst settings` with each value's
source and secrets masked, settings read from local.settings.json and .env, and the unknown-price warning."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from shared.cli import app
from tests.monitoring.records import result

runner = CliRunner()
UNPRICED_FRONTIER = {"SMALLFIRST_FRONTIER_BACKEND": "azure_openai",
                     "SMALLFIRST_FRONTIER_ENDPOINT": "http://127.0.0.1:9/",  # nothing listens: the probe fails fast
                     "SMALLFIRST_FRONTIER_MODEL": "my-fine-tuned-phi", "SMALLFIRST_FRONTIER_API_KEY": "sk-secret-1234"}


@pytest.fixture(autouse=True)
def local_folder(tmp_path, monkeypatch):
    """Each test in a folder of its own (where the CLI looks for local.settings.json and .env), with an environment
    the CLI's loader may change without leaking into other tests, and only the trained tier by default."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(os, "environ", {key: value for key, value in os.environ.items()
                                        if not key.startswith("SMALLFIRST_") and key != "DataStorage"})
    os.environ["SMALLFIRST_LOCAL_PROFILE"] = "trained"
    return tmp_path


def settings_rows(output: str) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads(output)["settings"]}


def test_version_prints_the_installed_package_version():
    answer = runner.invoke(app, ["--version"])
    assert answer.exit_code == 0 and answer.output.strip() == f"smallfirst {version('smallfirst')}"


def test_settings_say_whether_each_value_came_from_the_environment_local_settings_json_dotenv_or_the_default(
        local_folder):
    (local_folder / "local.settings.json").write_text(json.dumps({"Values": {
        "SMALLFIRST_CONCURRENCY": "12", "SMALLFIRST_CHUNK_ITEMS": "50",
        "DataStorage": "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0a2V5;EndpointSuffix=core.windows.net"}}))
    (local_folder / ".env").write_text("SMALLFIRST_CHUNK_ITEMS=70\nSMALLFIRST_MAX_BATCH_ITEMS=30\n")
    os.environ["SMALLFIRST_CONCURRENCY"] = "4"
    answer = runner.invoke(app, ["settings", "--json"])
    assert answer.exit_code == 0, answer.output
    rows = settings_rows(answer.stdout)
    assert (rows["SMALLFIRST_CONCURRENCY"]["value"], rows["SMALLFIRST_CONCURRENCY"]["source"]) == ("4", "environment")
    assert (rows["SMALLFIRST_CHUNK_ITEMS"]["value"], rows["SMALLFIRST_CHUNK_ITEMS"]["source"]) == \
        ("50", "local.settings.json")  # local.settings.json wins over .env
    assert (rows["SMALLFIRST_MAX_BATCH_ITEMS"]["value"], rows["SMALLFIRST_MAX_BATCH_ITEMS"]["source"]) == ("30", ".env")
    assert (rows["SMALLFIRST_CLAIM_TTL_S"]["value"], rows["SMALLFIRST_CLAIM_TTL_S"]["source"]) == ("60.0", "default")
    storage = rows["DataStorage"]
    assert storage["source"] == "local.settings.json" and "c2VjcmV0a2V5" not in storage["value"]
    assert "AccountKey=****" in storage["value"] and "AccountName=acct" in storage["value"]


def test_settings_mask_an_api_key_and_warn_of_a_tier_whose_model_has_no_known_price():
    os.environ.update(UNPRICED_FRONTIER)
    answer = runner.invoke(app, ["settings", "--json"])
    assert answer.exit_code == 0, answer.output
    assert "sk-secret-1234" not in answer.output
    rows = settings_rows(answer.stdout)
    assert rows["SMALLFIRST_FRONTIER_API_KEY"]["value"] == "****"
    assert rows["SMALLFIRST_FRONTIER_PRICE_IN_PER_M"] == {"group": "tier frontier", "value": None,
                                                          "name": "SMALLFIRST_FRONTIER_PRICE_IN_PER_M",
                                                          "source": "default (unknown)"}
    [warning] = json.loads(answer.stdout)["warnings"]
    assert "my-fine-tuned-phi" in warning and "SMALLFIRST_FRONTIER_PRICE_IN_PER_M" in warning


def test_settings_show_a_listed_models_price_and_where_it_came_from():
    os.environ.update({**UNPRICED_FRONTIER, "SMALLFIRST_FRONTIER_MODEL": "gpt-4.1-mini"})
    rows = settings_rows(runner.invoke(app, ["settings", "--json"]).stdout)
    assert rows["SMALLFIRST_FRONTIER_PRICE_OUT_PER_M"]["value"] == "1.6"
    assert rows["SMALLFIRST_FRONTIER_PRICE_OUT_PER_M"]["source"] == "default (price list: gpt-4.1-mini)"


def test_health_json_gives_each_tiers_state_and_the_unknown_price_warning():
    os.environ.update(UNPRICED_FRONTIER)
    answer = runner.invoke(app, ["health", "--json"])
    assert answer.exit_code == 1  # the frontier's endpoint is unreachable
    tiers = {tier["tier"]: tier for tier in json.loads(answer.stdout)}
    assert tiers["trained"]["ok"] is True and tiers["trained"]["warning"] is None
    assert tiers["frontier"]["ok"] is False and tiers["frontier"]["price"] is None
    assert "no known price" in tiers["frontier"]["warning"]
    assert "warning: tier frontier" in answer.stderr


def test_tasks_json_lists_each_task_with_its_kind_and_labels_or_fields():
    answer = runner.invoke(app, ["tasks", "--json"])
    assert answer.exit_code == 0, answer.output
    tasks = {task["task"]: task for task in json.loads(answer.stdout)}
    assert tasks["support_ticket"]["kind"] == "classification" and "billing" in tasks["support_ticket"]["labels"]
    assert any(task["kind"] == "extraction" and task["fields"] for task in tasks.values())


def test_stats_json_gives_the_summary_of_local_results(local_folder):
    records = [result(f"i{n}", at=datetime.now(timezone.utc), cost=0.001) for n in range(3)]
    path = local_folder / "results.jsonl"
    path.write_text("".join(record.model_dump_json() + "\n" for record in records), encoding="utf-8")
    answer = runner.invoke(app, ["stats", "--results", str(path), "--json"])
    assert answer.exit_code == 0, answer.output
    [task] = json.loads(answer.stdout)["tasks"]
    assert task["task"] == "ticket" and task["total"]["volume"] == 3
    assert task["total"]["cost_usd"] == pytest.approx(0.003)


def test_a_local_settings_file_that_is_not_json_is_one_line(local_folder):
    (local_folder / "local.settings.json").write_text("{not json")
    answer = runner.invoke(app, ["tasks"])
    assert answer.exit_code != 0 and "local.settings.json is not JSON" in str(answer.exception or answer.output)


def test_stats_reads_its_storage_connection_from_local_settings_json_alone(local_folder, emulator):
    (local_folder / "local.settings.json").write_text(json.dumps({"Values": {
        "DataStorage": emulator.connection_string}}))
    answer = runner.invoke(app, ["stats", "--json"])
    assert answer.exit_code == 0, answer.output
    assert json.loads(answer.stdout)["tasks"] == [] and "in the DataStorage storage account" in answer.stderr


def test_classify_warns_first_of_a_tier_of_the_task_whose_model_has_no_known_price():
    os.environ.update(UNPRICED_FRONTIER)
    answer = runner.invoke(app, ["classify", "support_ticket", "I was charged twice this month"])
    assert "warning: tier frontier (model 'my-fine-tuned-phi') has no known price" in answer.stderr
    assert json.loads(answer.stdout)["task"] == "support_ticket"  # the run goes on


def test_stats_leaves_items_without_an_all_frontier_price_out_of_the_saving_and_says_so(local_folder):
    now = datetime.now(timezone.utc)
    records = [result("priced", at=now, cost=0.001, counterfactual=0.01),
               result("unpriced", at=now, cost=0.0, counterfactual=None)]  # its frontier's price was unknown
    path = local_folder / "results.jsonl"
    path.write_text("".join(record.model_dump_json() + "\n" for record in records), encoding="utf-8")
    answer = runner.invoke(app, ["stats", "--results", str(path)])
    assert answer.exit_code == 0, answer.output
    assert "2 items; cost $0.0010, saving $0.0090" in answer.stdout.replace("\n", " ")
    assert "1 items left out: no all-frontier price" in answer.stdout.replace("\n", " ")

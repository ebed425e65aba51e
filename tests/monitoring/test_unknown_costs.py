"""A tier whose model has no known price records its cost as unknown, not as zero: the cascade's records say so, old
records read as known, and stats shows the cost as unknown, leaves those items out of the saving and names the
prices it used."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from shared.cli import app
from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item, ResultRecord
from shared.monitoring.stats import SourcedResult, summarise
from shared.monitoring.stats_prices import task_prices
from shared.monitoring.stats_tables import headline, price_table
from tests.azure_wire import AzureWireServer, Scripted, chat_completion
from tests.monitoring.records import result

TASK_YAML = """\
kind: classification
instruction: Route the customer support ticket to the team that should handle it.
threshold: 0.5
target_accuracy: 0.95
tiers: [small, frontier]
labels: [{name: billing}, {name: technical}, {name: other}]
"""


def reply(label: str, logprob: float) -> Scripted:
    tokens = [('{"label":"', -0.01), (label, logprob), ('"}', -0.01)]
    return Scripted(body=chat_completion(f'{{"label":"{label}"}}', tokens=tokens, prompt_tokens=300,
                                         completion_tokens=6))


def text_of(request) -> str:
    return request.body["messages"][-1]["content"]


@pytest.fixture
def unpriced_small(tmp_path):
    """A small tier on a fine-tuned model no price list knows (sure of "sure" tickets, refusing "refuse" ones with a
    400 before any token, unsure of the rest) and a gpt-4o frontier, each on a loopback server."""
    refused = Scripted(400, {"error": {"code": "BadRequest", "message": "refused"}})
    (tmp_path / "ticket.yaml").write_text(TASK_YAML)
    with AzureWireServer() as small, AzureWireServer() as frontier:
        small.default = lambda request: refused if "refuse" in text_of(request) else reply(
            "billing", -0.01 if "sure" in text_of(request) else -3.0)
        frontier.default = lambda request: reply("technical", -0.01)
        yield Settings.from_env({
            "SMALLFIRST_TASKS_DIR": str(tmp_path), "SMALLFIRST_LOCAL_PROFILE": "trained",
            "SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": small.url,
            "SMALLFIRST_SMALL_MODEL": "support-ft-2026", "SMALLFIRST_SMALL_LOGPROBS": "true",
            "SMALLFIRST_FRONTIER_BACKEND": "azure_openai", "SMALLFIRST_FRONTIER_ENDPOINT": frontier.url,
            "SMALLFIRST_FRONTIER_MODEL": "gpt-4o", "SMALLFIRST_FRONTIER_API_KEY": "k"})


def test_an_unpriced_small_tier_records_unknown_costs_and_stats_shows_them_unknown_not_zero(unpriced_small, tmp_path,
                                                                                             monkeypatch):
    cascade = Cascade(unpriced_small)
    task = cascade.tasks.get("ticket")
    records = cascade.run_batch(task, [Item(id="a", text="sure: charged twice"), Item(id="b", text="hmm")])
    assert [r.status for r in records] == ["accepted", "escalated"]
    assert all(not r.cost_known for r in records)
    assert [a.cost_known for a in records[1].attempts] == [False, True]  # the frontier's cost is known
    assert records[0].cost_usd == 0.0 and records[1].cost_usd > 0  # the small tier's tokens counted at zero
    assert json.loads(records[0].model_dump_json())["cost_known"] is False  # written out for the record's readers

    total = summarise([SourcedResult("run", r) for r in records]).tasks[0].total
    assert (total.cost_unknown, total.priced, total.counterfactual_cost_usd) == (2, 0, 0.0)

    run = tmp_path / "results.jsonl"
    run.write_text("".join(r.model_dump_json() + "\n" for r in records), encoding="utf-8")
    monkeypatch.setenv("SMALLFIRST_TASKS_DIR", str(tmp_path))
    answer = CliRunner().invoke(app, ["stats", "--results", str(run)], env={"COLUMNS": "250"})
    assert answer.exit_code == 0, answer.output
    assert f"2 items; cost ${records[1].cost_usd:.4f} + unknown (2 items), saving $0.0000 (-) against " \
           "all-frontier, 2 items left out: a tier with no known price" in answer.output
    as_json = CliRunner().invoke(app, ["stats", "--results", str(run), "--json"])
    [stats] = json.loads(as_json.stdout)["tasks"]
    assert (stats["total"]["cost_unknown"], stats["total"]["priced"]) == (2, 0)
    assert [price["tier"] for price in stats["prices"] if price["baseline"]] == ["frontier"]


def test_an_unpriced_tier_that_failed_before_any_token_leaves_the_items_cost_known(unpriced_small):
    cascade = Cascade(unpriced_small)
    [record] = cascade.run_batch(cascade.tasks.get("ticket"), [Item(id="r", text="refuse this one")])
    assert [(a.tier, a.outcome, a.tokens_in) for a in record.attempts] == [("small", "error", 0),
                                                                          ("frontier", "accepted", 300)]
    assert record.cost_known and record.cost_usd > 0


def test_a_record_written_before_costs_could_be_unknown_reads_as_known():
    old = {"id": "1", "task": "ticket", "status": "accepted", "cost_usd": 0.002,
           "attempts": [{"tier": "small", "outcome": "accepted", "cost_usd": 0.002}]}
    record = ResultRecord.model_validate(old)
    assert record.cost_known and record.attempts[0].cost_known


def test_a_known_cost_item_beside_an_unknown_one_keeps_its_saving_and_the_headline_names_both_reasons():
    now = datetime.now(timezone.utc)
    unknown = result("u", at=now, cost=0.0)
    unknown.attempts[0].cost_known = False
    records = [result("k", at=now, cost=0.001, counterfactual=0.01), unknown,
               result("old", at=now, cost=0.001, counterfactual=None)]
    stats = summarise([SourcedResult("run", r) for r in records]).tasks[0]
    assert (stats.total.priced, stats.total.cost_unknown) == (1, 1)
    assert stats.total.saving_usd == pytest.approx(0.009)
    assert ("2 items left out: a tier with no known price or no all-frontier price" in headline(stats)
            and "cost $0.0020 + unknown (1 items)" in headline(stats))


def test_the_price_table_names_each_tiers_model_price_and_source_and_the_unknown_one(unpriced_small):
    task = Cascade(unpriced_small).tasks.get("ticket")
    rows = {row[0]: row for row in price_table(summarise(
        [SourcedResult("run", result("a"))], prices={"ticket": task_prices(task, unpriced_small)}).tasks[0]).rows}
    assert rows["small"][1:] == ["support-ft-2026", "unknown", "unknown", "unknown", "none: set its PRICE_* settings"]
    assert rows["frontier (all-frontier baseline)"][1:] == ["gpt-4o", "$2.5", "$1.25", "$10", "price list: gpt-4o"]


def test_the_first_unpriced_attempt_of_a_tier_is_logged_once_as_a_warning(unpriced_small, caplog):
    cascade = Cascade(unpriced_small)
    with caplog.at_level("WARNING", logger="shared.core.run_tier"):
        cascade.run_batch(cascade.tasks.get("ticket"), [Item(id="a", text="sure: one"), Item(id="b", text="sure: 2")])
        cascade.run_batch(cascade.tasks.get("ticket"), [Item(id="c", text="sure: three")])
    warned = [r.getMessage() for r in caplog.records if "no known price" in r.getMessage()]
    assert warned == ["tier small (model 'support-ft-2026') has no known price: its costs are recorded as unknown and "
                      "left out of savings until SMALLFIRST_SMALL_PRICE_IN_PER_M and SMALLFIRST_SMALL_PRICE_OUT_PER_M "
                      "are set"]  # once, for the small tier only: the frontier's gpt-4o is priced

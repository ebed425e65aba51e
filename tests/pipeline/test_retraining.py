"""`training_examples`: what `smallfirst train` and retraining learn from, gathered by one function."""

from __future__ import annotations

from datetime import timedelta

from shared.core.config import Settings
from shared.foundation.tasks import TaskCatalog
from shared.pipeline.retraining import training_examples
from shared.learning.training_data import LabelledExample
from tests.conftest import REPO
from tests.pipeline.test_production_data import NOW, correction, result, write_jsonl

# small2 is a frontier by role too, but before frontier in the task's tiers
SETTINGS = Settings.from_env({
    "SMALLFIRST_SMALL2_BACKEND": "openai_compatible", "SMALLFIRST_SMALL2_ENDPOINT": "http://127.0.0.1:9",
    "SMALLFIRST_SMALL2_ROLE": "frontier",
    "SMALLFIRST_FRONTIER_BACKEND": "openai_compatible", "SMALLFIRST_FRONTIER_ENDPOINT": "http://127.0.0.1:9",
})
TASK = TaskCatalog(REPO / "tasks").get("support_ticket")  # tiers: trained, small, small2, frontier


def test_only_the_answers_of_the_tasks_frontier_its_last_frontier_tier_are_learned(tmp_path):
    texts = {"a": "refund my order", "b": "the app crashes", "c": "reset my password"}
    items = write_jsonl(tmp_path / "items.jsonl", [{"id": i, "text": text} for i, text in texts.items()])
    results = write_jsonl(tmp_path / "results.jsonl", [result("a", "billing", tier="frontier"),
                                                       result("b", "technical", tier="small2"),
                                                       result("c", "account", tier="small")])
    gathered = training_examples(TASK, SETTINGS, since=None, results=[results], inputs=[items])
    assert [(e.label, e.source) for e in gathered.examples] == [("billing", "frontier:a")]
    assert gathered.production.reports["results"].skipped == {"not answered by a frontier tier": 2}


def test_gold_comes_first_and_is_reported_with_the_production_sources(tmp_path):
    gold = [LabelledExample(text="charged twice", label="billing", provenance="gold", source="g1")]
    corrections = write_jsonl(tmp_path / "corrections.jsonl", [correction("c", "cannot log in", "account")])
    gathered = training_examples(TASK, SETTINGS, since=None, gold=gold, corrections=[corrections])
    assert [(e.label, e.provenance) for e in gathered.examples] == [("billing", "gold"), ("account", "correction")]
    assert {source: report.used for source, report in gathered.sources.items()} == {
        "gold": 1, "results": 0, "corrections": 1}


def test_production_older_than_since_is_left_out(tmp_path):
    corrections = write_jsonl(tmp_path / "corrections.jsonl", [correction("c", "cannot log in", "account")])
    gathered = training_examples(TASK, SETTINGS, since=NOW + timedelta(days=1), corrections=[corrections])
    assert gathered.examples == [] and gathered.production.reports["corrections"].used == 0

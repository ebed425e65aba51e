"""`smallfirst eval` asks the trained tier for its items in batches (EVAL_BATCH_ITEMS per call of the real local
MiniLM, counted on its own embed_metered), with the records each item gets alone."""

from __future__ import annotations

import asyncio

import pytest

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.evaluation.run_analysis import EvalRecord
from shared.evaluation.tier_eval import EVAL_BATCH_ITEMS, LabelledItem, evaluate_many, run_eval
from tests.core.test_batched_trained_tier import DEV, embed_calls, english_ticket  # noqa: F401 (a fixture)


def test_eval_embeds_the_trained_tiers_items_in_batches_with_the_records_of_one_at_a_time(
        tmp_path, catalog, embed_calls):  # noqa: F811
    task = english_ticket(catalog)  # support_ticket on its MiniLM head
    items = [LabelledItem(**row) for row in DEV]
    assert len(items) > EVAL_BATCH_ITEMS  # so there are two calls
    cascade = Cascade(Settings.from_env({}), tasks=catalog)
    out = tmp_path / "run.jsonl"
    assert asyncio.run(run_eval(cascade, task, items, ["trained"], out, concurrency=2)) == len(items)
    assert sorted(embed_calls) == sorted([EVAL_BATCH_ITEMS, len(items) - EVAL_BATCH_ITEMS])
    records = {r.id: r for r in map(EvalRecord.model_validate_json, out.read_text().splitlines())}
    assert set(records) == {item.id for item in items}
    for item in items:
        (alone,) = evaluate_many(cascade, task, [item], "trained")
        assert (records[item.id].answer, records[item.id].gold) == (alone.answer, item.label)
        assert records[item.id].confidence == pytest.approx(alone.confidence, abs=1e-6)
    assert asyncio.run(run_eval(cascade, task, items, ["trained"], out, concurrency=2)) == 0  # resumed: none left

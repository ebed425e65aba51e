"""Cascade routing: the real embedded small tier, and Azure tiers on the local wire server."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest

from shared.cascade import Engine, NoTierError
from shared.config import Settings
from shared.results import Item
from shared.tiers.factory import TierRegistry
from tests.azure_wire import AzureWireServer, Scripted, chat_completion

ITEM = Item(id="t-1", text="I was charged twice for my subscription, please refund me")
LABEL_TOKENS = [('{"', -0.01), ("label", -0.01), ('":"', -0.02), ("bill", -0.1), ("ing", -0.05), ('"}', -0.03)]


def frontier_env(url: str) -> dict[str, str]:
    return {
        "SMALLFIRST_FRONTIER_BACKEND": "azure_openai",
        "SMALLFIRST_FRONTIER_ENDPOINT": url,
        "SMALLFIRST_FRONTIER_MODEL": "gpt-4o",
        "SMALLFIRST_FRONTIER_API_KEY": "k",
        "SMALLFIRST_FRONTIER_MAX_ATTEMPTS": "2",
    }


def make_engine(env: dict[str, str], catalog, embedded=None) -> Engine:
    settings = Settings.from_env(env)
    registry = TierRegistry(settings)
    if embedded is not None and settings.tiers["small"].backend == "embedded":
        registry.add(embedded)
    return Engine(settings, registry, catalog)


def with_threshold(catalog, name: str, threshold: float):
    return catalog.get(name).model_copy(update={"threshold": threshold})


def test_confident_small_answer_is_accepted_without_frontier(wire, catalog, embedded):
    engine = make_engine(frontier_env(wire.url), catalog, embedded)
    record = engine.process(with_threshold(catalog, "support_ticket", 0.0), ITEM)
    assert record.status == "accepted" and record.tier == "small"
    assert record.answer in {"billing", "technical", "account", "other"}
    assert record.cost_usd == 0.0 and wire.requests == []
    assert [a.outcome for a in record.attempts] == ["accepted"]


def test_low_confidence_escalates_to_frontier(wire, catalog, embedded):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS,
                                                     prompt_tokens=1000, completion_tokens=10)))
    engine = make_engine(frontier_env(wire.url), catalog, embedded)
    record = engine.process(with_threshold(catalog, "support_ticket", 1.0), ITEM)
    assert record.status == "escalated" and record.tier == "frontier" and record.answer == "billing"
    small, frontier = record.attempts
    assert small.outcome == "low_confidence" and "threshold" in small.reason and small.answer is not None
    assert frontier.outcome == "accepted" and frontier.tokens_in == 1000
    assert record.cost_usd == pytest.approx((1000 * 2.5 + 10 * 10.0) / 1e6)  # gpt-4o default prices
    assert record.confidence == pytest.approx(frontier.confidence)


def test_no_frontier_means_needs_review_with_the_draft(catalog, embedded):
    engine = make_engine({}, catalog, embedded)
    record = engine.process(with_threshold(catalog, "support_ticket", 1.0), ITEM)
    assert record.status == "needs_review" and record.tier == "small"
    assert record.answer in {"billing", "technical", "account", "other"}
    assert record.attempts[0].outcome == "low_confidence"


def test_invalid_output_escalates(catalog):
    with AzureWireServer() as small, AzureWireServer() as frontier:
        small.default = Scripted(body=chat_completion("I think it is about money"))
        frontier.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
        env = {**frontier_env(frontier.url), "SMALLFIRST_SMALL_BACKEND": "foundry",
               "SMALLFIRST_SMALL_ENDPOINT": small.url, "SMALLFIRST_SMALL_API_KEY": "k"}
        record = make_engine(env, catalog).process(catalog.get("support_ticket"), ITEM)
    assert record.status == "escalated" and record.answer == "billing"
    assert record.attempts[0].outcome == "invalid_output"
    assert record.attempts[0].tokens_in == 5 * 42  # the k samples were paid for, and are counted


def test_oversize_input_skips_the_small_tier(wire, catalog, embedded):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    env = {**frontier_env(wire.url), "SMALLFIRST_SMALL_MAX_INPUT_TOKENS": "10"}
    record = make_engine(env, catalog, embedded).process(catalog.get("support_ticket"), ITEM)
    assert [a.outcome for a in record.attempts] == ["too_large", "accepted"]
    assert record.status == "escalated"


def test_tier_failure_after_retries_escalates_then_fails(catalog):
    with AzureWireServer() as small, AzureWireServer() as frontier:
        small.default = Scripted(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}})
        frontier.default = Scripted(500, {"error": {"code": "InternalServerError", "message": "boom"}})
        env = {**frontier_env(frontier.url), "SMALLFIRST_SMALL_BACKEND": "foundry", "SMALLFIRST_SMALL_ENDPOINT": small.url,
               "SMALLFIRST_SMALL_API_KEY": "k", "SMALLFIRST_SMALL_SAMPLES": "2", "SMALLFIRST_SMALL_MAX_ATTEMPTS": "2"}
        record = make_engine(env, catalog).process(catalog.get("support_ticket"), ITEM)
        assert len(frontier.requests) == 2  # retried once, then given up
    assert record.status == "failed" and record.answer is None
    assert [a.outcome for a in record.attempts] == ["error", "error"]
    assert "small" in record.error and "frontier" in record.error


def test_no_configured_tier_is_an_error(catalog):
    engine = make_engine({}, catalog)
    frontier_only = catalog.get("support_ticket").model_copy(update={"tiers": ["frontier"]})
    with pytest.raises(NoTierError):
        engine.process(frontier_only, ITEM)


def test_task_routed_straight_to_frontier(wire, catalog, embedded):
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    engine = make_engine(frontier_env(wire.url), catalog, embedded)
    frontier_only = catalog.get("support_ticket").model_copy(update={"tiers": ["frontier"]})
    record = engine.process(frontier_only, ITEM)
    assert record.status == "accepted" and record.tier == "frontier" and len(record.attempts) == 1


def test_async_batch_keeps_order_and_runs_concurrently(wire, catalog):
    in_flight, peak, lock = [0], [0], threading.Lock()

    def slow_reply(request):
        with lock:
            in_flight[0] += 1
            peak[0] = max(peak[0], in_flight[0])
        time.sleep(0.2)
        with lock:
            in_flight[0] -= 1
        label = "billing" if "bill" in request.body["messages"][-1]["content"] else "technical"
        tokens = [('{"label":"', -0.01), (label, -0.01), ('"}', -0.01)]
        return Scripted(body=chat_completion(json.dumps({"label": label}, separators=(",", ":")), tokens=tokens))

    wire.default = slow_reply
    engine = make_engine(frontier_env(wire.url), catalog)
    task = catalog.get("support_ticket").model_copy(update={"tiers": ["frontier"]})
    items = [Item(id=str(i), text="bill me" if i % 2 else "crash") for i in range(8)]
    records = asyncio.run(engine.process_batch(task, items, concurrency=4))
    assert [r.id for r in records] == [str(i) for i in range(8)]
    assert [r.answer for r in records] == ["technical", "billing"] * 4
    assert 2 <= peak[0] <= 4


def test_concurrent_first_use_creates_one_tier():
    registry = TierRegistry(Settings.from_env({}))
    barrier = threading.Barrier(8)
    got = []

    def first_use():
        barrier.wait()
        got.append(registry.get("small"))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(tier) for tier in got}) == 1

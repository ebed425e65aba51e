"""Cascade routing: the real embedded small tier, and Azure tiers on the local wire server."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time

import pytest

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item
from shared.core.tiers.registry import TierRegistry
from shared.errors import ConfigError, NoTierError, SmallfirstError
from shared.learning.classifier import NOVELTY_CONFIDENCE_METHOD
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


def make_cascade(env: dict[str, str], catalog, embedded=None) -> Cascade:
    settings = Settings.from_env(env)
    registry = TierRegistry(settings)
    if embedded is not None and settings.tiers["small"].backend == "embedded":
        registry.add(embedded)
    return Cascade(settings, registry, catalog)


def small_first(catalog, **update):
    """support_ticket routed small -> small2 -> frontier: these tests are about the LLM tiers and the frontier."""
    return catalog.get("support_ticket").model_copy(update={"tiers": ["small", "small2", "frontier"], **update})


def test_confident_small_answer_is_accepted_without_frontier(wire, catalog, embedded):
    cascade = make_cascade(frontier_env(wire.url), catalog, embedded)
    record = cascade.process(small_first(catalog, threshold=0.0), ITEM)
    assert record.status == "accepted" and record.tier == "small"
    assert record.answer in {"billing", "technical", "account", "other"}
    assert record.cost_usd == 0.0 and wire.requests == []
    assert [a.outcome for a in record.attempts] == ["accepted"]


def test_low_confidence_escalates_to_frontier(wire, catalog, embedded):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS,
                                                     prompt_tokens=1000, completion_tokens=10)))
    cascade = make_cascade(frontier_env(wire.url), catalog, embedded)
    record = cascade.process(small_first(catalog, threshold=1.0), ITEM)
    assert record.status == "escalated" and record.tier == "frontier" and record.answer == "billing"
    small, frontier = record.attempts
    assert small.outcome == "low_confidence" and "threshold" in small.reason and small.answer is not None
    assert frontier.outcome == "accepted" and frontier.tokens_in == 1000
    assert frontier.reason is None  # an accepted answer carries no below-threshold reason
    assert record.cost_usd == pytest.approx((1000 * 2.5 + 10 * 10.0) / 1e6)  # gpt-4o default prices
    assert record.confidence == pytest.approx(frontier.confidence)
    assert record.counterfactual_cost_usd == pytest.approx(record.cost_usd)  # the frontier's own usage
    assert record.finished_at is not None


def test_no_frontier_means_needs_review_with_the_draft(catalog, embedded):
    cascade = make_cascade({}, catalog, embedded)
    record = cascade.process(small_first(catalog, threshold=1.0), ITEM)
    assert record.status == "needs_review" and record.tier == "small"
    assert record.answer in {"billing", "technical", "account", "other"}
    assert record.attempts[0].outcome == "low_confidence"


def test_invalid_output_escalates(catalog):
    with AzureWireServer() as small, AzureWireServer() as frontier:
        small.default = Scripted(body=chat_completion("I think it is about money"))
        frontier.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
        env = {**frontier_env(frontier.url), "SMALLFIRST_SMALL_BACKEND": "foundry",
               "SMALLFIRST_SMALL_ENDPOINT": small.url, "SMALLFIRST_SMALL_API_KEY": "k",
               "SMALLFIRST_SMALL_MODEL": "Phi-4"}  # priced by its model
        record = make_cascade(env, catalog).process(small_first(catalog), ITEM)
    assert record.status == "escalated" and record.answer == "billing"
    assert record.attempts[0].outcome == "invalid_output"
    assert record.attempts[0].tokens_in == 5 * 42  # the k samples were paid for, and are counted
    assert record.attempts[0].cost_usd == pytest.approx((5 * 42 * 0.125 + 5 * 7 * 0.5) / 1e6)  # Phi-4 prices


def test_oversize_input_skips_the_small_tier(wire, catalog):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    env = {**frontier_env(wire.url), "SMALLFIRST_SMALL_MAX_INPUT_TOKENS": "10"}
    record = make_cascade(env, catalog).process(small_first(catalog), ITEM)  # its own small tier, never loaded
    assert [a.outcome for a in record.attempts] == ["too_large", "accepted"]
    assert record.status == "escalated"


def test_tier_failure_after_retries_escalates_then_fails(catalog):
    with AzureWireServer() as small, AzureWireServer() as frontier:
        small.default = Scripted(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}})
        frontier.default = Scripted(500, {"error": {"code": "InternalServerError", "message": "boom"}})
        env = {**frontier_env(frontier.url), "SMALLFIRST_SMALL_BACKEND": "foundry", "SMALLFIRST_SMALL_ENDPOINT": small.url,
               "SMALLFIRST_SMALL_API_KEY": "k", "SMALLFIRST_SMALL_SAMPLES": "2", "SMALLFIRST_SMALL_MAX_ATTEMPTS": "2"}
        record = make_cascade(env, catalog).process(small_first(catalog), ITEM)
        assert len(frontier.requests) == 2  # retried once, then given up
    assert record.status == "failed" and record.answer is None
    assert [a.outcome for a in record.attempts] == ["error", "error"]
    assert "small" in record.error and "frontier" in record.error


def test_no_configured_tier_is_an_error(catalog):
    cascade = make_cascade({}, catalog)
    frontier_only = catalog.get("support_ticket").model_copy(update={"tiers": ["frontier"]})
    with pytest.raises(NoTierError):
        cascade.process(frontier_only, ITEM)


def test_no_configured_tier_is_not_a_config_error(catalog):
    """Every setting is valid; this deployment just cannot serve the task (HTTP 503, not a startup failure)."""
    cascade = make_cascade({}, catalog)
    frontier_only = catalog.get("support_ticket").model_copy(update={"tiers": ["frontier"]})
    with pytest.raises(NoTierError) as raised:
        cascade.process(frontier_only, ITEM)
    assert isinstance(raised.value, SmallfirstError) and not isinstance(raised.value, ConfigError)


def test_task_routed_straight_to_frontier(wire, catalog, embedded):
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    cascade = make_cascade(frontier_env(wire.url), catalog, embedded)
    frontier_only = catalog.get("support_ticket").model_copy(update={"tiers": ["frontier"]})
    record = cascade.process(frontier_only, ITEM)
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
    cascade = make_cascade(frontier_env(wire.url), catalog)
    task = catalog.get("support_ticket").model_copy(update={"tiers": ["frontier"]})
    items = [Item(id=str(i), text="bill me" if i % 2 else "crash") for i in range(8)]
    records = asyncio.run(cascade.process_batch(task, items, concurrency=4))
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


def test_frontier_role_comes_from_config_not_from_the_tier_name(wire, catalog, embedded):
    """small2 configured with role frontier is the last word: accepted below the (small) threshold."""
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=[('{"label":"billing"}', -1.0)])))
    env = {"SMALLFIRST_SMALL2_BACKEND": "azure_openai", "SMALLFIRST_SMALL2_ENDPOINT": wire.url,
           "SMALLFIRST_SMALL2_MODEL": "gpt-4o", "SMALLFIRST_SMALL2_API_KEY": "k", "SMALLFIRST_SMALL2_ROLE": "frontier"}
    record = make_cascade(env, catalog, embedded).process(small_first(catalog, threshold=1.0), ITEM)
    assert record.status == "escalated" and record.tier == "small2"
    assert record.attempts[-1].outcome == "accepted" and record.confidence == pytest.approx(math.exp(-1.0))


def test_frontier_answer_below_the_frontier_threshold_goes_to_review(wire, catalog, embedded):
    wire.default = Scripted(body=chat_completion('{"label":"billing"}', tokens=[('{"label":"billing"}', -1.0)]))
    task = small_first(catalog, threshold=1.0, frontier_threshold=0.9)
    record = make_cascade(frontier_env(wire.url), catalog, embedded).process(task, ITEM)
    assert record.status == "needs_review"
    assert [a.outcome for a in record.attempts] == ["low_confidence", "low_confidence"]
    assert "frontier's threshold 0.9" in record.attempts[-1].reason


def test_calibration_maps_the_confidence_the_threshold_is_compared_with(wire, catalog, embedded):
    from shared.foundation.tasks import Calibration

    # every raw confidence maps to 0.2, so even a certain small answer is below a 0.5 threshold
    flat = Calibration(tier="small", x=[0.0, 1.0], y=[0.2, 0.2])
    task = small_first(catalog, threshold=0.5, calibration=flat)
    record = make_cascade({}, catalog, embedded).process(task, ITEM)
    small = record.attempts[0]
    assert small.outcome == "low_confidence" and small.confidence == pytest.approx(0.2)
    assert small.raw_confidence is not None and small.raw_confidence != pytest.approx(0.2)


def test_trained_tier_answers_first_with_its_calibrated_head(wire, catalog, embedded):
    record = make_cascade(frontier_env(wire.url), catalog, embedded).process(catalog.get("support_ticket"), ITEM)
    assert record.tier == "trained" and record.status == "accepted" and record.answer == "billing"
    assert record.attempts[0].confidence_method == NOVELTY_CONFIDENCE_METHOD  # the shipped head's
    assert wire.requests == [] and record.cost_usd == 0.0


def test_an_item_the_frontier_never_saw_is_priced_at_the_frontier_rate_for_its_estimated_prompt(catalog, embedded):
    env = {**frontier_env("http://127.0.0.1:9"), "SMALLFIRST_FRONTIER_PRICE_IN_PER_M": "100",
           "SMALLFIRST_FRONTIER_PRICE_OUT_PER_M": "0"}
    task = catalog.get("support_ticket")
    record = make_cascade(env, catalog, embedded).process(task, ITEM)
    assert record.tier == "trained" and record.cost_usd == 0.0
    longer = make_cascade(env, catalog, embedded).process(task, Item(id="t-2", text=ITEM.text * 20))
    # The estimate is the frontier's prompt for the item (labels and all), so it grows with the item's text.
    assert record.counterfactual_cost_usd > 100 * 50 / 1e6
    assert longer.counterfactual_cost_usd - record.counterfactual_cost_usd == pytest.approx(
        100 * (task.estimate_tokens(ITEM.text * 20) - task.estimate_tokens(ITEM.text)) / 1e6, abs=100 * 2 / 1e6)


def test_three_tiers_trained_small_frontier_escalate_in_order(wire, catalog, embedded):
    wire.script.append(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS)))
    task = catalog.get("support_ticket").model_copy(update={"threshold": 1.0, "tier_thresholds": {"trained": 1.0},
                                                           "calibration": None})
    record = make_cascade(frontier_env(wire.url), catalog, embedded).process(task, ITEM)
    assert [(a.tier, a.outcome) for a in record.attempts] == [
        ("trained", "low_confidence"), ("small", "low_confidence"), ("frontier", "accepted")]
    assert "trained's threshold 1.0" in record.attempts[0].reason
    assert record.status == "escalated" and record.tier == "frontier"


def test_a_head_that_does_not_fit_the_task_is_refused_and_the_item_escalates(catalog, embedded):
    from shared.foundation.tasks import Label

    relabelled = catalog.get("support_ticket").model_copy(update={
        "labels": [*catalog.get("support_ticket").labels, Label(name="shipping", description="parcels")]})
    record = make_cascade({}, catalog, embedded).process(relabelled.model_copy(update={"threshold": 0.0}), ITEM)
    trained = record.attempts[0]
    assert trained.outcome == "error" and "label" in trained.reason
    assert record.tier == "small"


def test_a_task_with_no_head_is_answered_zero_shot_with_low_confidence(catalog, embedded):
    task = catalog.get("support_ticket").model_copy(update={"trained_head": None})
    record = make_cascade({}, catalog, embedded).process(task, ITEM)
    trained = record.attempts[0]
    assert trained.confidence_method.startswith("zero-shot") and trained.raw_confidence <= 0.625
    assert trained.outcome == "low_confidence" and len(record.attempts) == 2


def _foundry_small(wire) -> dict[str, str]:
    return {"SMALLFIRST_SMALL_BACKEND": "foundry", "SMALLFIRST_SMALL_ENDPOINT": wire.url,
            "SMALLFIRST_SMALL_API_KEY": "k", "SMALLFIRST_SMALL_SAMPLES": "5"}


def _labels(*labels: str) -> list[Scripted]:
    return [Scripted(body=chat_completion(json.dumps({"label": label}))) for label in labels]


def test_sample_agreement_stops_at_acceptance_once_enough_samples_agree(wire, catalog):
    wire.script.extend(_labels(*["billing"] * 5))
    record = make_cascade(_foundry_small(wire), catalog).process(small_first(catalog, threshold=0.8), ITEM)
    small = record.attempts[0]
    assert len(wire.requests) == 4  # 4 of 5 agreeing settles 0.8; the fifth would change nothing
    assert small.outcome == "accepted" and small.answer == "billing" and small.confidence == pytest.approx(0.8)
    assert small.tokens_in == 4 * 42


def test_sample_agreement_stops_at_escalation_once_the_threshold_is_out_of_reach(wire, catalog):
    wire.script.extend(_labels("billing", "technical", "billing", "technical", "billing"))
    record = make_cascade(_foundry_small(wire), catalog).process(small_first(catalog, threshold=0.8), ITEM)
    small = record.attempts[0]
    assert len(wire.requests) == 4  # 2 + 1 remaining can no longer make 4 of 5
    assert small.outcome == "low_confidence" and small.confidence == pytest.approx(0.4)
    assert record.status == "needs_review"  # no frontier configured


@pytest.mark.parametrize("backend", ["openai_compatible", "foundry"])
def test_samples_share_one_request_and_one_prompt_where_the_endpoint_takes_n(wire, catalog, backend):
    from tests.azure_wire import chat_completion_choices

    wire.default = lambda request: Scripted(body=chat_completion_choices(
        [json.dumps({"label": "billing"})] * (request.body.get("n") or 1)))
    env = {"SMALLFIRST_SMALL_BACKEND": backend, "SMALLFIRST_SMALL_ENDPOINT": wire.url, "SMALLFIRST_SMALL_API_KEY": "k",
           "SMALLFIRST_SMALL_SAMPLES": "5", "SMALLFIRST_SMALL_SAMPLES_PER_REQUEST": "5"}
    record = make_cascade(env, catalog).process(small_first(catalog, threshold=0.8), ITEM)
    small = record.attempts[0]
    assert [r.body.get("n") for r in wire.requests] == [5]  # all k choices in one request: one prompt billed
    assert small.outcome == "accepted" and small.tokens_in == 42 and small.tokens_out == 5 * 7


def test_a_tier_raising_what_no_tier_should_escalates_that_item_and_the_batch_goes_on(wire, catalog, embedded):
    """Text that is not Unicode (built past Item's validation) makes the trained tier's tokenizer raise (TypeError in
    MiniLM's, UnicodeEncodeError in USE-m's, which support_ticket's languages give it)."""
    wire.default = lambda request: Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS))
    task = catalog.get("support_ticket").model_copy(update={"tiers": ["trained", "frontier"]})
    broken = Item.model_construct(id="broken", text="refund \ud800 me")
    records = make_cascade(frontier_env(wire.url), catalog, embedded).run_batch(task, [broken, ITEM])
    assert [(a.tier, a.outcome) for a in records[0].attempts][0] == ("trained", "error")
    assert "failed unexpectedly: UnicodeEncodeError" in records[0].attempts[0].reason
    assert records[0].attempts[-1].tier == "frontier"
    assert (records[1].id, records[1].tier, records[1].status) == (ITEM.id, "trained", "accepted")

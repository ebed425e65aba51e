"""The routing rules in shared/core/policy.py: the frontier of a task, the input-budget skip, the stop rule and the
status rules, and the counterfactual's reference frontier that follows from them."""

from __future__ import annotations

from shared.core.config import Settings
from shared.core.policy import frontier_of, item_status, over_input_budget, settles
from shared.foundation.records import Attempt
from shared.core.savings import reference_frontier
from shared.foundation.tasks import ClassificationTask

REMOTE = {"SMALLFIRST_SMALL2_BACKEND": "azure_openai", "SMALLFIRST_SMALL2_ENDPOINT": "https://a.openai.azure.com/",
          "SMALLFIRST_SMALL2_ROLE": "frontier", "SMALLFIRST_SMALL2_PRICE_IN_PER_M": "1",
          "SMALLFIRST_FRONTIER_BACKEND": "azure_openai", "SMALLFIRST_FRONTIER_ENDPOINT": "https://b.openai.azure.com/",
          "SMALLFIRST_FRONTIER_PRICE_IN_PER_M": "7", "SMALLFIRST_LOCAL_PROFILE": "trained"}


def task(tiers: list[str]) -> ClassificationTask:
    return ClassificationTask(name="ticket", instruction="Route the ticket.", labels=["billing", "other"],
                              tiers=tiers)


def test_the_frontier_is_the_last_configured_frontier_role_among_the_tasks_own_tiers():
    tiers = Settings.from_env(REMOTE).tiers
    assert frontier_of(task(["trained", "small2", "frontier"]), tiers) == "frontier"
    assert frontier_of(task(["trained", "small2"]), tiers) == "small2"  # frontier is configured, but not the task's
    assert frontier_of(task(["trained"]), tiers) is None
    assert frontier_of(task(["trained", "small"]), Settings.from_env({"SMALLFIRST_LOCAL_PROFILE": "trained"}).tiers) \
        is None  # small is not configured


def test_the_counterfactual_is_priced_at_the_tasks_frontier_else_gpt_4o():
    settings = Settings.from_env(REMOTE)
    assert reference_frontier(task(["trained", "small2"]), settings).prices[0] == 1.0
    assert reference_frontier(task(["trained", "frontier"]), settings).prices[0] == 7.0
    fallback = reference_frontier(task(["trained"]), settings)
    assert (fallback.model, fallback.prices) == ("gpt-4o", (2.5, 10.0))


def test_a_tier_is_skipped_unasked_for_an_item_over_its_input_budget():
    tiers = Settings.from_env({**REMOTE, "SMALLFIRST_FRONTIER_MAX_INPUT_TOKENS": "10"}).tiers
    short, long = "charged twice", "charged twice " * 20
    assert over_input_budget(tiers["frontier"], task(["frontier"]), short) is None
    refused = over_input_budget(tiers["frontier"], task(["frontier"]), long)
    assert refused is not None and refused.outcome == "too_large" and refused.tier == "frontier"
    assert over_input_budget(tiers["small2"], task(["small2"]), long) is None  # its own budget is the default 6000


def attempt(tier: str, outcome: str, confidence: float | None = None) -> Attempt:
    return Attempt(tier=tier, outcome=outcome, confidence=confidence, answer="billing" if confidence else None)


def test_the_first_accepted_attempt_settles_the_item_and_nothing_else_does():
    assert settles(attempt("small", "accepted", 0.9))
    assert not any(settles(attempt("small", outcome, 0.4))
                   for outcome in ("low_confidence", "answered", "error", "too_large", "invalid_output", "truncated"))


def test_the_status_rules():
    first, late = attempt("small", "accepted", 0.9), attempt("frontier", "accepted", 0.8)
    unsure, less_sure = attempt("small", "low_confidence", 0.6), attempt("frontier", "low_confidence", 0.4)
    assert item_status([first]) == ("accepted", first)
    assert item_status([unsure, late]) == ("escalated", late)
    assert item_status([unsure, less_sure]) == ("needs_review", unsure)  # the most confident draft
    assert item_status([attempt("small", "error"), attempt("frontier", "error")]) == ("failed", None)
    assert item_status([attempt("small", "too_large"), attempt("frontier", "error")]) == ("needs_review", None)

"""Prices by model from one list: a listed model is priced, PRICE_* settings win, a model not listed has no known
price (a warning naming the settings to set) and the savings claim no counterfactual for a frontier priced so."""

from __future__ import annotations

import pytest

from shared.core.config import Settings, TierConfig
from shared.core.prices import MODEL_PRICES
from shared.core.savings import counterfactual_cost_usd
from shared.foundation.records import Item
from shared.foundation.tasks import ClassificationTask

FRONTIER = {"SMALLFIRST_FRONTIER_BACKEND": "azure_openai", "SMALLFIRST_FRONTIER_ENDPOINT": "https://x.openai.azure.com",
            "SMALLFIRST_LOCAL_PROFILE": "trained"}
TASK = ClassificationTask(name="ticket", instruction="Route the ticket.", labels=["billing", "other"],
                          tiers=["trained", "frontier"])


def frontier(**settings: str) -> TierConfig:
    return Settings.from_env({**FRONTIER, **{f"SMALLFIRST_FRONTIER_{k.upper()}": v for k, v in settings.items()}}
                             ).tiers["frontier"]


@pytest.mark.parametrize("model", ["gpt-5.4-mini", "gpt-4.1-mini", "GPT-4o", "Phi-4"])
def test_a_listed_model_is_priced_from_the_list_whatever_its_backend_and_case(model):
    tier = frontier(model=model)
    listed = MODEL_PRICES[model.lower()]
    assert tier.prices == (listed.in_per_m, listed.out_per_m)
    assert tier.price_source == f"price list: {model}" and tier.price_warning is None


def test_a_gpt_4_1_mini_frontier_is_not_priced_as_gpt_4o():
    assert frontier(model="gpt-4.1-mini").cost_usd(1_000_000, 1_000_000) == pytest.approx(0.40 + 1.60)


def test_price_settings_win_over_the_list_and_price_a_model_not_listed():
    assert frontier(model="gpt-4o", price_in_per_m="3", price_out_per_m="12").prices == (3.0, 12.0)
    custom = frontier(model="support-ft-2026", price_in_per_m="0.5", price_out_per_m="2")
    assert custom.price_source == "PRICE_* settings" and custom.price_warning is None


@pytest.mark.parametrize("settings", [{"model": "support-ft-2026"}, {}, {"model": "support-ft", "price_in_per_m": "1"}])
def test_a_model_not_listed_without_both_price_settings_has_no_known_price_and_a_warning_naming_them(settings):
    tier = frontier(**settings)
    assert tier.price_source is None
    assert "no known price" in tier.price_warning
    assert "SMALLFIRST_FRONTIER_PRICE_IN_PER_M" in tier.price_warning
    assert "SMALLFIRST_FRONTIER_PRICE_OUT_PER_M" in tier.price_warning


def test_the_local_tiers_are_free_and_warn_of_nothing():
    for tier in Settings.from_env({}).tiers.values():
        assert tier.prices == (0.0, 0.0) and tier.price_source == "runs locally, free" and tier.price_warning is None


def test_no_counterfactual_is_claimed_at_a_frontier_with_no_known_price():
    item = Item(id="1", text="I was charged twice")
    assert counterfactual_cost_usd(TASK, item, [], "billing", frontier(model="support-ft-2026")) is None
    assert counterfactual_cost_usd(TASK, item, [], "billing", frontier(model="gpt-4.1-mini")) > 0

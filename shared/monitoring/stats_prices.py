"""The prices behind a task's savings: each of its tiers' and the all-frontier baseline's, with where each comes from.

Records keep what items cost, not the prices they were costed at, so these are the prices of the settings that
read the records (the app's own when stats runs with its settings)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.core.config import Settings, TierConfig
from shared.core.savings import reference_frontier
from shared.foundation.tasks import AnyTask


class TierPrice(BaseModel):
    """USD per 1M tokens; None where the tier's price is unknown (`source` None)."""

    tier: str
    model: str | None
    baseline: bool  # the tier the all-frontier counterfactual is priced at
    in_per_m: float | None
    cached_in_per_m: float | None
    out_per_m: float | None
    source: str | None


def tier_price(tier: TierConfig, baseline: bool) -> TierPrice:
    known = tier.price_source is not None
    price_in, price_out = tier.prices
    return TierPrice(tier=tier.name, model=tier.model, baseline=baseline, in_per_m=price_in if known else None,
                     cached_in_per_m=tier.price_cached_in if known else None,
                     out_per_m=price_out if known else None, source=tier.price_source)


def task_prices(task: AnyTask, settings: Settings) -> list[TierPrice]:
    """The task's configured tiers in order, then the baseline where the task has no frontier of its own."""
    frontier = reference_frontier(task, settings)
    tiers = [settings.tiers[name] for name in task.tiers if name in settings.tiers]
    prices = [tier_price(tier, tier is frontier) for tier in tiers]
    if all(tier is not frontier for tier in tiers):
        prices.append(tier_price(frontier, True).model_copy(update={"source": f"no frontier configured: "
                                                                              f"{frontier.price_source}"}))
    return prices

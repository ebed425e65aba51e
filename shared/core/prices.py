"""List prices by model: what a tier costs when its PRICE_* settings do not say (USD per 1M tokens).

Looked up by the tier's model (its `SMALLFIRST_<TIER>_MODEL`, case-insensitive, exact): a deployment named other
than its model, a fine-tuned model or one not listed here has no known price, and `smallfirst health` and
`smallfirst settings` warn until its PRICE_* settings are set. Global Standard pay-as-you-go prices, checked
2026-12-06. Microsoft's own pricing page (https://azure.microsoft.com/pricing/details/cognitive-services/openai-service/)
is not reachable from here; the figures were taken from secondary sources that quote it:
https://aicosthub.com/guides/azure-openai-pricing-2026 (GPT-5.4 family, gpt-4o, gpt-4o-mini; "last verified
2026-04-01"), https://www.finout.io/blog/azure-openai-pricing (gpt-4.1, gpt-4.1-mini, gpt-4.1-nano, gpt-5) and
https://explore.oreate.ai/posts/breaking-down-gpt41-pricing-on-azure-openai-service (gpt-4.1 cached input); Phi-4
serverless (Foundry) and text-embedding-3-small are the list prices this project has used since its first release.
Check them against Microsoft's page before relying on a saving.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelPrice:
    in_per_m: float
    out_per_m: float
    # cached input (a repeated prompt prefix of 1,024+ tokens) where the provider discounts it; None: as input
    cached_in_per_m: float | None = None


MODEL_PRICES: dict[str, ModelPrice] = {
    "gpt-5.4": ModelPrice(2.50, 15.00),
    "gpt-5.4-mini": ModelPrice(0.75, 4.50),  # infra's default frontier
    "gpt-5.4-nano": ModelPrice(0.20, 1.25),
    "gpt-5": ModelPrice(1.25, 10.00),
    "gpt-4.1": ModelPrice(2.00, 8.00, cached_in_per_m=0.50),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60, cached_in_per_m=0.10),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40, cached_in_per_m=0.03),
    "gpt-4o": ModelPrice(2.50, 10.00, cached_in_per_m=1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.60),
    "phi-4": ModelPrice(0.125, 0.50),  # serverless (Foundry)
    "text-embedding-3-small": ModelPrice(0.02, 0.0),  # input only: an embedding has no output tokens
}


def model_price(model: str | None) -> ModelPrice | None:
    """The listed price of `model`, or None where it is not listed."""
    return MODEL_PRICES.get(model.lower()) if model else None

"""List prices by model: what a tier costs when its PRICE_* settings do not say (USD per 1M tokens).

Looked up by the tier's model (its `SMALLFIRST_<TIER>_MODEL`, case-insensitive, exact): a deployment named other
than its model, a fine-tuned model or one not listed here has no known price: `smallfirst health` and
`smallfirst settings` warn, and its attempts record their cost as unknown until its PRICE_* settings are set.

Sources, checked 2026-12-06. Global Standard pay-as-you-go prices. Microsoft's own pricing pages,
https://azure.microsoft.com/pricing/details/cognitive-services/openai-service/ (Azure OpenAI in Foundry Models) and
https://azure.microsoft.com/pricing/details/phi-3/ (Phi models, serverless), are not in the reference corpus this
project can search, and the one capture of the Azure OpenAI page found there (api-evangelist/microsoft-azure-openai,
plans/microsoft-azure-openai-plans-pricing.yml, read 2026-10-07) says its figures render only by script ("$-" in
the page text), so no figure below could be checked against Microsoft's page. Microsoft's machine-readable price
list, the Azure Retail Prices API (https://learn.microsoft.com/rest/api/cost-management/retail-prices/azure-retail-prices,
https://prices.azure.com/api/retail/prices), is the way to check them; it is not reachable from here. The figures
come from secondary sources that quote Microsoft's page:
- gpt-4o, gpt-4o-mini: a transcription of Microsoft's page captured 2026-05-22 (timcsy/ai-api,
  deploy/prices/azure-2026-05.yaml) and https://aicosthub.com/guides/azure-openai-pricing-2026 ("last verified
  2026-04-01"), which agree;
- GPT-5.4 family: https://aicosthub.com/guides/azure-openai-pricing-2026;
- gpt-4.1, gpt-4.1-mini, gpt-4.1-nano, gpt-5: https://www.finout.io/blog/azure-openai-pricing; gpt-4.1's cached
  input prices: https://explore.oreate.ai/posts/breaking-down-gpt41-pricing-on-azure-openai-service;
- Phi-4 serverless: Artificial Analysis's Azure figures ($0.13 in, $0.50 out, quoted at
  https://shadabchow.com/blogs/ai-models/129_phi-4) agree with the $0.125/$0.50 this project has used since its first
  release; a lower figure quoted as Foundry's ($0.065/$0.14, https://hokai.io/hub/models/phi-4) is other hosts'
  price (OpenRouter, DeepInfra), so not taken;
- text-embedding-3-small: the list price this project has used since its first release (no current source found).
Check a price against Microsoft's page or the Retail Prices API before relying on a saving, or set PRICE_*.
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

"""Token cost from a tier's price table (USD per 1M input / output tokens)."""

from __future__ import annotations


def cost_usd(tokens_in: int, tokens_out: int, prices: tuple[float, float]) -> float:
    price_in, price_out = prices
    return (tokens_in * price_in + tokens_out * price_out) / 1_000_000

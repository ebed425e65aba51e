"""The stats of one task as tables of text, one row per day and one for the whole window: the terminal shows
them with rich, the HTML page with shared/evaluation/render.py."""

from __future__ import annotations

from dataclasses import dataclass

from shared.monitoring.stats import ESCALATION_REASONS, STATUSES, PeriodStats, Proportion, TaskStats


@dataclass(frozen=True)
class TextTable:
    title: str
    headers: list[str]
    rows: list[list[str]]


def usd(value: float) -> str:
    return f"${value:,.2f}" if abs(value) >= 1 else f"${value:.4f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def estimate(proportion: Proportion) -> tuple[str, str, str]:
    """(n, share, 95% interval) as text; dashes when there is nothing to estimate from."""
    if not proportion.n:
        return "0", "-", "-"
    low, high = proportion.interval
    return str(proportion.n), percent(proportion.value), f"{low:.1%} - {high:.1%}"


def cost(period: PeriodStats) -> str:
    """The cost, never a bare figure where a tier with no known price counted its tokens at zero."""
    if not period.cost_unknown:
        return usd(period.cost_usd)
    if period.cost_unknown == period.volume and not period.cost_usd:
        return "unknown"
    return f"{usd(period.cost_usd)} + unknown ({period.cost_unknown} items)"


def headline(stats: TaskStats) -> str:
    total = stats.total
    pairs, accuracy, interval = estimate(total.live_accuracy)
    live = (f"live accuracy {accuracy} (95% interval {interval}, {pairs} shadow pairs)" if total.live_accuracy.n
            else "no shadow pairs for live accuracy")
    # an item whose own cost is unknown, or without a counterfactual (its frontier's price unknown, or a record
    # older than counterfactuals), is left out of the saving rather than compared at a price of zero
    reasons = [why for why, left_out in (("a tier with no known price", total.cost_unknown),
                                         ("no all-frontier price", total.volume - total.cost_unknown - total.priced))
               if left_out > 0]
    unpriced = (f", {total.volume - total.priced} items left out: {' or '.join(reasons)}"
                if total.priced < total.volume else "")
    return (f"{total.volume} items; cost {cost(total)}, saving {usd(total.saving_usd)} "
            f"({percent(total.saving_share)}) against all-frontier{unpriced}; {live}")


def _periods(stats: TaskStats) -> list[tuple[str, PeriodStats]]:
    return [(period.day.isoformat(), period) for period in stats.days] + [("all days", stats.total)]


def outcome_table(stats: TaskStats) -> TextTable:
    rows = [[label, str(p.volume), *(percent(p.share(s)) for s in STATUSES), percent(p.escalation_rate)]
            for label, p in _periods(stats)]
    return TextTable("Volume and outcomes (share of items)", ["day", "items", *STATUSES, "escalation rate"], rows)


def routing_table(stats: TaskStats) -> TextTable:
    rows = [[label, *(str(p.escalation_reasons.get(r, 0)) for r in ESCALATION_REASONS),
             ", ".join(f"{tier} {n}" for tier, n in p.tiers.items()) or "-"] for label, p in _periods(stats)]
    return TextTable("Escalation reasons (attempts) and answering tier (items)",
                     ["day", *ESCALATION_REASONS, "items by answering tier"], rows)


def cost_table(stats: TaskStats) -> TextTable:
    def row(label: str, p: PeriodStats) -> list[str]:
        priced = "" if p.priced == p.volume else f" ({p.priced} of {p.volume} items)"
        return [label, cost(p), usd(p.counterfactual_cost_usd) + priced, usd(p.saving_usd),
                percent(p.saving_share), f"{p.latency_ms['p50']:.0f}", f"{p.latency_ms['p95']:.0f}"]

    return TextTable("Cost against all-frontier, and latency",
                     ["day", "cost", "all-frontier cost", "saving", "saving %", "latency p50 (ms)", "p95 (ms)"],
                     [row(label, p) for label, p in _periods(stats)])


def accuracy_table(stats: TaskStats) -> TextTable:
    rows = [[label, *estimate(p.live_accuracy), *estimate(p.draft_accuracy)] for label, p in _periods(stats)]
    return TextTable("Live accuracy of accepted answers (shadow pairs) and of review drafts (corrections)",
                     ["day", "shadow pairs", "accuracy", "95% interval", "reviewed drafts", "kept", "95% interval"],
                     rows)


def price_table(stats: TaskStats) -> TextTable:
    def per_m(value: float | None) -> str:
        return "unknown" if value is None else f"${value:g}"

    rows = [[price.tier + (" (all-frontier baseline)" if price.baseline else ""), price.model or "-",
             per_m(price.in_per_m), per_m(price.cached_in_per_m), per_m(price.out_per_m),
             price.source or "none: set its PRICE_* settings"] for price in stats.prices]
    return TextTable("Prices the savings use (USD per 1M tokens; the settings this command read, as records keep "
                     "costs, not prices)", ["tier", "model", "input", "cached input", "output", "source"], rows)


def task_tables(stats: TaskStats) -> list[TextTable]:
    tables = [outcome_table(stats), routing_table(stats), cost_table(stats)]
    return tables + ([price_table(stats)] if stats.prices else []) + [accuracy_table(stats)]

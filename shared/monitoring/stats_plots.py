"""The plots of the stats page, as PNG files (matplotlib's Agg backend, as the evaluation report's)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.evaluation.plots import _pyplot
from shared.monitoring.stats import PeriodStats

DPI = 100


def _labels(days: list[PeriodStats]) -> list[str]:
    return [p.day.isoformat() if p.day else "all" for p in days]


def _save(fig, ax, path: Path, labels: list[str]) -> None:
    ax.set_xticks(range(len(labels)), labels, rotation=30 if len(labels) > 6 else 0, ha="right" if len(labels) > 6 else "center")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    _pyplot().close(fig)


def volume_by_tier_plot(days: list[PeriodStats], path: Path) -> None:
    plt = _pyplot()
    tiers = list(dict.fromkeys(tier for p in days for tier in p.tiers))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    bottom = np.zeros(len(days))
    for tier in tiers:
        counts = np.array([p.tiers.get(tier, 0) for p in days])
        ax.bar(range(len(days)), counts, bottom=bottom, label=tier)
        bottom += counts
    ax.set(ylabel="items", title="Volume by answering tier")
    if tiers:  # a window of shadow pairs alone has no items
        ax.legend(fontsize=8)
    _save(fig, ax, path, _labels(days))


def escalation_plot(days: list[PeriodStats], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = range(len(days))
    ax.plot(x, [p.escalation_rate for p in days], "-o", label="escalation rate (first tier did not settle)")
    ax.plot(x, [p.share("needs_review") for p in days], "-s", label="needs review")
    ax.plot(x, [p.share("failed") for p in days], "-^", label="failed")
    ax.set(ylabel="share of items", ylim=(0, 1.02), title="Escalation rate")
    ax.legend(fontsize=8)
    _save(fig, ax, path, _labels(days))


def cost_plot(days: list[PeriodStats], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    x = np.arange(len(days))
    ax.bar(x - 0.2, [p.counterfactual_cost_usd for p in days], width=0.4, color="tab:red", label="all-frontier")
    ax.bar(x + 0.2, [p.priced_cost_usd for p in days], width=0.4, color="tab:green", label="actual")
    for i, p in enumerate(days):
        if p.saving_share is not None:
            ax.annotate(f"-{p.saving_share:.0%}", (i + 0.2, p.priced_cost_usd), ha="center", va="bottom", fontsize=8)
    ax.set(ylabel="USD", title="Cost against the all-frontier counterfactual")
    ax.legend(fontsize=8)
    _save(fig, ax, path, _labels(days))


def confidence_plot(confidences: dict[str, list[float]], path: Path) -> None:
    plt = _pyplot()
    tiers = list(confidences) or ["(no answers)"]
    fig, axes = plt.subplots(1, len(tiers), figsize=(3.2 * len(tiers) + 0.8, 3.2), squeeze=False)
    for ax, tier in zip(axes[0], tiers):
        ax.hist(confidences.get(tier, []), bins=20, range=(0, 1), color="tab:blue")
        ax.set(xlabel="confidence", ylabel="answers", title=f"{tier} ({len(confidences.get(tier, []))})", xlim=(0, 1))
    fig.suptitle("Confidence per tier")
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def accuracy_plot(days: list[PeriodStats], path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    scored = [(i, p.live_accuracy) for i, p in enumerate(days) if p.live_accuracy.n]
    if scored:
        x = [i for i, _ in scored]
        value = np.array([a.value for _, a in scored])
        low, high = np.array([a.interval for _, a in scored]).T
        ax.errorbar(x, value, yerr=[value - low, high - value], fmt="o", capsize=4, label="accuracy, 95% interval")
        for i, a in scored:
            ax.annotate(f"n={a.n}", (i, a.interval[0]), xytext=(0, -5), textcoords="offset points", ha="center",
                        va="top", fontsize=7)
        ax.legend(fontsize=8, loc="lower left")
    else:
        ax.text(0.5, 0.5, "no shadow pairs in this window", ha="center", va="center", transform=ax.transAxes)
    ax.set(ylabel="accepted answers right", ylim=(0, 1.05), xlim=(-0.5, len(days) - 0.5),
           title="Live accuracy of accepted answers (shadow pairs)")
    _save(fig, ax, path, _labels(days))

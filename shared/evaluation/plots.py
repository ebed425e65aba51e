"""The report's plots, as PNG files (matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from shared.evaluation import cascade_simulation
from shared.foundation import metrics


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def reliability_plot(name: str, confidences: list[float], correct: list[bool], path: Path) -> None:
    plt = _pyplot()
    bins = metrics.reliability(confidences, correct)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    centers = [(b.low + b.high) / 2 for b in bins]
    ax.bar(centers, [b.accuracy for b in bins], width=0.09, alpha=0.7, label="accuracy in bin")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for c, b in zip(centers, bins):
        if b.count:
            ax.annotate(str(b.count), (c, b.accuracy), ha="center", va="bottom", fontsize=7)
    ece = metrics.expected_calibration_error(confidences, correct)
    ax.set(xlabel=f"{name} confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.05),
           title=f"Reliability: {name} (ECE {ece:.3f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cascade_plot(points: list[cascade_simulation.CascadePoint], rec: cascade_simulation.Recommendation | None, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    costs = [p.cost_per_item * 1e6 for p in points]
    ax.plot(costs, [p.accuracy for p in points], "-", color="tab:blue", label="cascade over thresholds")
    all_small, all_frontier = points[0], points[-1]
    ax.scatter([all_small.cost_per_item * 1e6], [all_small.accuracy], color="tab:green", zorder=3, label="all small")
    ax.scatter([all_frontier.cost_per_item * 1e6], [all_frontier.accuracy], color="tab:red", zorder=3, label="all frontier")
    if rec:
        ax.scatter([rec.cost_per_item * 1e6], [rec.accuracy], marker="*", s=160, color="gold", edgecolor="k", zorder=4,
                   label=f"recommended t={rec.threshold:.3f}")
        ax.axhline(rec.target, color="grey", linestyle=":", linewidth=1, label="target accuracy")
    ax.set(xlabel="cost per 1M items (USD)", ylabel="accuracy", title="Simulated cascade: accuracy vs cost")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def coverage_plot(name: str, confidences: list[float], correct: list[bool], path: Path) -> None:
    plt = _pyplot()
    conf, ok = np.asarray(confidences), np.asarray(correct, float)
    thresholds = np.unique(conf)
    coverage = [(conf >= t).mean() for t in thresholds]
    acc = [ok[conf >= t].mean() for t in thresholds]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(coverage, acc, "-o", markersize=2)
    ax.set(xlabel="share of items accepted (confidence >= threshold)", ylabel="accuracy of accepted items",
           title=f"{name}: accuracy vs coverage", xlim=(0, 1.02), ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)

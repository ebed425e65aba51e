"""The stats as one self-contained HTML page: the tables, and the plots inlined as PNG data URIs
(shared/evaluation/render.py, as the evaluation report)."""

from __future__ import annotations

import tempfile
from datetime import datetime, timezone
from pathlib import Path

from shared.evaluation.render import Block, render_html
from shared.monitoring.stats import StatsSummary, TaskStats
from shared.monitoring.stats_plots import accuracy_plot, confidence_plot, cost_plot, escalation_plot, volume_by_tier_plot
from shared.monitoring.stats_tables import headline, task_tables


def _task_blocks(stats: TaskStats, folder: Path) -> list[Block]:
    blocks: list[Block] = [("h2", f"Task `{stats.task}`"), ("p", headline(stats))]
    plots = [("volume", volume_by_tier_plot, "volume by answering tier per day"),
             ("escalation", escalation_plot, "escalation rate per day"),
             ("cost", cost_plot, "cost against the all-frontier counterfactual per day"),
             ("accuracy", accuracy_plot, "live accuracy of accepted answers with its 95% interval per day")]
    for name, plot, alt in plots:
        image = f"{stats.task}-{name}.png"
        plot(stats.days, folder / image)
        blocks.append(("img", image, alt))
    confidence_plot(stats.confidences, folder / f"{stats.task}-confidence.png")
    blocks.append(("img", f"{stats.task}-confidence.png", "confidence histogram per tier"))
    for table in task_tables(stats):
        blocks += [("p", f"**{table.title}**"), ("table", table.headers, table.rows)]
    return blocks


def stats_page(summary: StatsSummary, origin: str) -> str:
    """The page for `summary`; `origin` says where the records were read from."""
    window = f"from {summary.since.isoformat()}" if summary.since else "all days"
    blocks: list[Block] = [
        ("h1", "smallfirst stats"),
        ("p", f"Records from {origin}, {window} (UTC); generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC."),
    ]
    if summary.undated:
        blocks.append(("p", f"{summary.undated} result records carry no `finished_at` and are in no day."))
    if not summary.tasks:
        blocks.append(("p", "No records in this window."))
    with tempfile.TemporaryDirectory(prefix="smallfirst-stats-") as folder:
        for stats in summary.tasks:
            blocks += _task_blocks(stats, Path(folder))
        return render_html(blocks, Path(folder), "smallfirst stats")

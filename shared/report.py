"""`smallfirst report` and `compare`: Markdown + self-contained HTML with PNG plots, from eval run files."""

from __future__ import annotations

import base64
import html
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from shared import metrics
from shared.evaluation import EvalRecord, read_run
from shared.tasks import ClassificationTask, ExtractionTask

Block = tuple  # ("h2", text) | ("p", text) | ("table", headers, rows) | ("img", filename, alt)


@dataclass
class TierRun:
    """One tier's records from one run file, in item order."""

    name: str
    records: list[EvalRecord]
    kind: str
    correct: list[bool] = field(init=False)

    def __post_init__(self) -> None:
        self.correct = [r.outcome == "ok" and metrics.is_correct(self.kind, r.answer, r.gold) for r in self.records]

    @property
    def confidences(self) -> list[float]:
        return [r.confidence if r.confidence is not None else 0.0 for r in self.records]

    @property
    def costs(self) -> list[float]:
        return [r.cost_usd for r in self.records]


def tier_runs(records: list[EvalRecord], label: str = "") -> dict[str, TierRun]:
    by_tier: dict[str, list[EvalRecord]] = {}
    for record in records:
        by_tier.setdefault(record.tier, []).append(record)
    return {f"{label}{tier}": TierRun(f"{label}{tier}", sorted(rs, key=lambda r: r.id), rs[0].kind)
            for tier, rs in by_tier.items()}


def align(a: TierRun, b: TierRun) -> tuple[TierRun, TierRun]:
    """The two tiers restricted to the items both answered, in the same order."""
    common = {r.id for r in a.records} & {r.id for r in b.records}
    pick = lambda run: TierRun(run.name, [r for r in run.records if r.id in common], run.kind)  # noqa: E731
    return pick(a), pick(b)


def quality_rows(run: TierRun, task: ClassificationTask | ExtractionTask) -> list[tuple[str, str]]:
    ok = [r.outcome == "ok" for r in run.records]
    answers = [r.answer if r.outcome == "ok" else None for r in run.records]
    golds = [r.gold for r in run.records]
    rows = [("items", str(len(run.records))), ("valid answers", f"{np.mean(ok):.1%}")]
    if isinstance(task, ClassificationTask):
        rows += [("accuracy", f"{metrics.accuracy(golds, answers):.3f}"), ("macro-F1", f"{metrics.macro_f1(golds, answers):.3f}")]
        if task.allow_none and task.none_label:
            p, r = metrics.none_label_precision_recall(golds, answers, task.none_label)
            rows += [(f"'{task.none_label}' precision", f"{p:.3f}"), (f"'{task.none_label}' recall", f"{r:.3f}")]
    else:
        rows.append(("all fields exact", f"{np.mean(run.correct):.3f}"))
        rows += [(f"{f} exact", f"{v:.3f}") for f, v in metrics.field_exact_match(answers, golds).items()]
        rows.append(("field-level F1", f"{metrics.field_f1(answers, golds):.3f}"))
    latency = metrics.percentiles([r.latency_ms for r in run.records])
    rows += [(f"latency {k} (ms)", f"{v:.0f}") for k, v in latency.items()]
    cost = float(np.mean(run.costs)) if run.records else 0.0
    rows += [("cost per item (USD)", f"{cost:.6f}"), ("cost per 1M items (USD)", f"{cost * 1e6:,.0f}"),
             ("ECE (10 bins)", f"{metrics.expected_calibration_error(run.confidences, run.correct):.3f}")]
    return rows


def reliability_plot(run: TierRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = metrics.reliability(run.confidences, run.correct)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    centers = [(b.low + b.high) / 2 for b in bins]
    ax.bar(centers, [b.accuracy for b in bins], width=0.09, alpha=0.7, label="accuracy in bin")
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    for c, b in zip(centers, bins):
        if b.count:
            ax.annotate(str(b.count), (c, b.accuracy), ha="center", va="bottom", fontsize=7)
    ax.set(xlabel=f"{run.name} confidence", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.05),
           title=f"Reliability: {run.name} (ECE {metrics.expected_calibration_error(run.confidences, run.correct):.3f})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def cascade_plot(points: list[metrics.CascadePoint], rec: metrics.Recommendation | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def coverage_plot(run: TierRun, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    conf, ok = np.asarray(run.confidences), np.asarray(run.correct, float)
    thresholds = np.unique(conf)
    coverage = [(conf >= t).mean() for t in thresholds]
    acc = [ok[conf >= t].mean() for t in thresholds]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(coverage, acc, "-o", markersize=2)
    ax.set(xlabel="share of items accepted (confidence >= threshold)", ylabel="accuracy of accepted items",
           title=f"{run.name}: accuracy vs coverage", xlim=(0, 1.02), ylim=(0, 1.02))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def default_target(frontier: TierRun) -> float:
    return float(np.mean(frontier.correct)) - 0.01


def build_report(run_path: Path, out_dir: Path, task: ClassificationTask | ExtractionTask, *,
                 frontier_run: Path | None = None, small: str = "small", frontier: str = "frontier",
                 target: float | None = None) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = tier_runs(read_run(run_path))
    if frontier_run is not None:
        extra = tier_runs(read_run(frontier_run))
        if frontier not in extra:
            frontier = next(iter(extra))
        runs[frontier] = extra[frontier]
    blocks: list[Block] = [("h1", f"smallfirst evaluation: {task.name}"),
                           ("p", f"Run file `{run_path.name}`" + (f", frontier from `{frontier_run.name}`" if frontier_run else "")
                            + f"; generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Task kind: {task.kind}.")]
    summary: dict[str, Any] = {"task": task.name, "tiers": {}}
    blocks.append(("h2", "Quality, latency and cost per tier"))
    names = list(runs)
    per_tier = {name: dict(quality_rows(runs[name], task)) for name in names}
    metric_names = list(next(iter(per_tier.values())))
    blocks.append(("table", ["metric", *names], [[m, *(per_tier[n].get(m, "") for n in names)] for m in metric_names]))
    summary["tiers"] = per_tier
    blocks.append(("h2", "Calibration"))
    for name in names:
        image = f"reliability-{name}.png"
        reliability_plot(runs[name], out_dir / image)
        blocks.append(("img", image, f"reliability diagram for {name}"))
    if isinstance(task, ClassificationTask):
        blocks.append(("h2", "Top confusions"))
        for name in names:
            run = runs[name]
            confusions = metrics.top_confusions([r.gold for r in run.records],
                                                [r.answer if r.outcome == "ok" else None for r in run.records])
            blocks.append(("p", f"**{name}**"))
            blocks.append(("table", ["gold", "predicted", "count"], [[g, p, str(c)] for g, p, c in confusions]))
    if small in runs and frontier in runs:
        s, f = align(runs[small], runs[frontier])
        blocks.append(("h2", "Where the small model fails"))
        table = metrics.co_failure(s.correct, f.correct)
        blocks.append(("table", ["both right", "only small wrong", "only frontier wrong", "both wrong"],
                       [[str(table[k]) for k in ("both_right", "only_small_wrong", "only_frontier_wrong", "both_wrong")]]))
        points = metrics.simulate_cascade(s.confidences, s.correct, s.costs, f.correct, f.costs)
        goal = target if target is not None else default_target(f)
        conf = np.asarray(s.confidences)

        def correct_at(t: float) -> np.ndarray:
            return np.where(conf >= t, s.correct, f.correct)

        rec = metrics.recommend_threshold(points, goal, correct_at, float(np.mean(f.costs)) or None)
        blocks.append(("h2", "Simulated cascade"))
        cascade_plot(points, rec, out_dir / "cascade.png")
        blocks.append(("img", "cascade.png", "accuracy vs cost over thresholds"))
        sampled = points[:: max(1, len(points) // 12)] + [points[-1]]
        blocks.append(("table", ["threshold", "accuracy", "escalation", "cost per 1M items (USD)"],
                       [[f"{p.threshold:.3f}", f"{p.accuracy:.3f}", f"{p.escalation_rate:.1%}", f"{p.cost_per_item * 1e6:,.0f}"]
                        for p in sampled]))
        blocks.append(("h2", "Recommended threshold"))
        if rec:
            saving = f"; {rec.saving_vs_frontier:.0%} cheaper than all-frontier" if rec.saving_vs_frontier is not None else ""
            blocks.append(("p", f"**{rec.threshold:.3f}**: cascade accuracy {rec.accuracy:.3f} "
                                f"(95% bootstrap interval {rec.accuracy_ci[0]:.3f}-{rec.accuracy_ci[1]:.3f}) against a target of "
                                f"{rec.target:.3f}; {rec.escalation_rate:.1%} of items escalate; "
                                f"${rec.cost_per_item * 1e6:,.0f} per 1M items{saving}."))
            summary["recommendation"] = rec.__dict__
        else:
            blocks.append(("p", f"No threshold reaches the target accuracy {goal:.3f}."))
    elif small in runs:
        run = runs[small]
        blocks.append(("h2", "One tier only: accept or send to review"))
        blocks.append(("p", "No frontier run was given (pass `--frontier-run` with a run recorded against a frontier tier "
                            "to simulate the cascade). Below: the lowest threshold whose accepted items reach each accuracy; "
                            "the rest would go to review."))
        coverage_plot(run, out_dir / "coverage.png")
        blocks.append(("img", "coverage.png", "accuracy vs coverage"))
        rows = []
        for goal in ([target] if target is not None else [0.5, 0.7, 0.8, 0.9, 0.95]):
            found = metrics.selective_threshold(run.confidences, run.correct, goal)
            cells = [f"{found[0]:.3f}", f"{found[1]:.3f}", f"{found[2]:.1%}"] if found else ["-", "-", "0%"]
            rows.append([f"{goal:.2f}", *cells])
        blocks.append(("table", ["target accuracy", "threshold", "accuracy of accepted", "accepted"], rows))
    (out_dir / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(blocks, out_dir, task.name), encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary


def build_comparison(run_a: Path, run_b: Path, out_dir: Path, task: ClassificationTask | ExtractionTask) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    a, b = tier_runs(read_run(run_a), "A:"), tier_runs(read_run(run_b), "B:")
    runs = {**a, **b}
    rows = {name: dict(quality_rows(run, task)) for name, run in runs.items()}
    names = list(runs)
    metric_names = list(next(iter(rows.values())))
    blocks: list[Block] = [("h1", f"smallfirst comparison: {task.name}"),
                           ("p", f"A = `{run_a.name}`, B = `{run_b.name}`."),
                           ("table", ["metric", *names], [[m, *(rows[n].get(m, "") for n in names)] for m in metric_names])]
    for tier_a in a:
        tier_b = "B:" + tier_a[2:]
        if tier_b in b:
            x, y = align(a[tier_a], b[tier_b])
            same = np.mean([r.answer == q.answer for r, q in zip(x.records, y.records)]) if x.records else 0.0
            blocks.append(("p", f"{tier_a[2:]}: the two runs give the same answer on {same:.1%} of {len(x.records)} shared items; "
                                f"co-failure: {metrics.co_failure(x.correct, y.correct)}."))
    (out_dir / "compare.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out_dir / "compare.html").write_text(render_html(blocks, out_dir, task.name), encoding="utf-8")


def render_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            lines += ["#" * int(kind[1]) + " " + block[1], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + [""]
        elif kind == "img":
            lines += [f"![{block[2]}]({block[1]})", ""]
    return "\n".join(lines)


def render_html(blocks: list[Block], out_dir: Path, title: str) -> str:
    def inline(text: str) -> str:
        escaped = html.escape(text)
        parts = escaped.split("**")
        escaped = "".join(f"<b>{p}</b>" if i % 2 else p for i, p in enumerate(parts))
        parts = escaped.split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    body: list[str] = []
    for block in blocks:
        kind = block[0]
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{inline(block[1])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{inline(block[1])}</p>")
        elif kind == "table":
            head = "".join(f"<th>{inline(h)}</th>" for h in block[1])
            rows = "".join("<tr>" + "".join(f"<td>{inline(str(c))}</td>" for c in row) + "</tr>" for row in block[2])
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif kind == "img":
            data = base64.b64encode((out_dir / block[1]).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">')
    style = ("body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>")

"""`smallfirst report` and `compare`: Markdown + self-contained HTML with PNG plots, from eval run files."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from shared.core.policy import AcceptancePolicy, accepts
from shared.foundation.tasks import AnyTask, ClassificationTask
from shared.evaluation import guarantees
from shared.foundation import answers, metrics
from shared.evaluation.plots import cascade_plot, coverage_plot, reliability_plot
from shared.evaluation.render import Block, render_html, render_markdown
from shared.evaluation.run_analysis import FRONTIER, SMALL, TierRun, aligned, analyse_cascade, load_runs, read_run, tier_runs


def calibration_pairs(run: TierRun) -> tuple[list[float], list[bool]]:
    """(confidence, right?) pairs: one per item for classification, one per field for extraction, where
    whole-item exact match is rare and per-field confidence is what the tier reports."""
    if run.kind == "classification":
        return run.raw_confidences, run.correct
    confidences, correct = [], []
    for record in run.records:
        right = answers.fields_correct(record.answer if record.answered else None, record.gold)
        for name, ok in right.items():
            confidences.append((record.field_confidence or {}).get(name, 0.0))
            correct.append(ok)
    return confidences, correct


def ece_cell(confidences: list[float], correct: list[bool]) -> str:
    if len(set(correct)) < 2:  # all right or all wrong: the error only restates the mean confidence
        return f"n/a (every one {'right' if correct and correct[0] else 'wrong'})"
    return f"{metrics.expected_calibration_error(confidences, correct):.3f}"


def quality_rows(run: TierRun, task: AnyTask) -> list[tuple[str, str]]:
    ok = [r.answered for r in run.records]
    answers = [r.answer if r.answered else None for r in run.records]
    golds = [r.gold for r in run.records]
    rows = [("items", str(len(run.records))), ("valid answers", f"{np.mean(ok):.1%}")]
    truncated = sum(r.outcome == "truncated" for r in run.records)
    if truncated:
        rows.append(("cut off at the output-token limit", str(truncated)))
    if isinstance(task, ClassificationTask):
        rows += [("accuracy", f"{metrics.accuracy(golds, answers):.3f}"), ("macro-F1", f"{metrics.macro_f1(golds, answers):.3f}")]
        if task.allow_none and task.none_label:
            p, r = metrics.none_label_precision_recall(golds, answers, task.none_label)
            rows += [(f"in-scope accuracy (gold not '{task.none_label}')",
                      f"{metrics.inscope_accuracy(golds, answers, task.none_label):.3f}"),
                     (f"'{task.none_label}' precision", f"{p:.3f}"), (f"'{task.none_label}' recall", f"{r:.3f}")]
    else:
        rows.append(("all fields exact", f"{np.mean(run.correct):.3f}"))
        rows += [(f"{f} exact", f"{v:.3f}") for f, v in metrics.field_exact_match(answers, golds).items()]
        rows.append(("field-level F1", f"{metrics.field_f1(answers, golds):.3f}"))
    latency = metrics.percentiles([r.latency_ms for r in run.records])
    rows += [(f"latency {k} (ms)", f"{v:.0f}") for k, v in latency.items()]
    cost = float(np.mean(run.costs)) if run.records else 0.0
    unit = "item" if run.kind == "classification" else "field"
    unpriced = sum(not r.cost_known for r in run.records)
    if unpriced:  # a model with no known price records no cost: a sum of the rest would read as a real figure
        rows += [("cost per item (USD)", f"unknown ({unpriced} of {len(run.records)} items unpriced: set PRICE_*)"),
                 ("cost per 1M items (USD)", "unknown")]
    else:
        rows += [("cost per item (USD)", f"{cost:.6f}"), ("cost per 1M items (USD)", f"{cost * 1e6:,.0f}")]
    rows.append((f"ECE (10 bins, per {unit}, raw confidence)", ece_cell(*calibration_pairs(run))))
    return rows


def _quality_table(runs: dict[str, TierRun], task: AnyTask) -> tuple[Block, dict[str, dict[str, str]]]:
    per_tier = {name: dict(quality_rows(run, task)) for name, run in runs.items()}
    metric_names = list(dict.fromkeys(m for rows in per_tier.values() for m in rows))
    table = ("table", ["metric", *runs], [[m, *(per_tier[n].get(m, "") for n in runs)] for m in metric_names])
    return table, per_tier


def build_report(run_path: Path, out_dir: Path, task: AnyTask, *, frontier_run: Path | None = None,
                 target: float | None = None) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = load_runs(run_path, task.name, frontier_run)
    policy = AcceptancePolicy(task)
    blocks: list[Block] = [("h1", f"smallfirst evaluation: {task.name}"),
                           ("p", f"Run file `{run_path.name}`" + (f", frontier from `{frontier_run.name}`" if frontier_run else "")
                            + f"; generated {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC. Task kind: {task.kind}.")]
    blocks.append(("h2", "Quality, latency and cost per tier"))
    table, per_tier = _quality_table(runs, task)
    blocks.append(table)
    summary: dict[str, Any] = {"task": task.name, "tiers": per_tier}
    blocks.append(("h2", "Calibration"))
    for name, run in runs.items():
        image = f"reliability-{name}.png"
        reliability_plot(name, *calibration_pairs(run), out_dir / image)
        blocks.append(("img", image, f"reliability diagram for {name}"))
    if isinstance(task, ClassificationTask):
        blocks.append(("h2", "Top confusions"))
        for name, run in runs.items():
            confusions = metrics.top_confusions([r.gold for r in run.records],
                                                [r.answer if r.answered else None for r in run.records])
            blocks.append(("p", f"**{name}**"))
            blocks.append(("table", ["gold", "predicted", "count"], [[g, p, str(c)] for g, p, c in confusions]))
    # The cheaper tier the cascade would try first: `small`, or else the one tier that is not the frontier.
    cheap = SMALL if SMALL in runs else next((name for name in runs if name != FRONTIER), None)
    if cheap and FRONTIER in runs:
        analysis = analyse_cascade(runs[cheap], runs[FRONTIER], lambda c: policy.calibrated(cheap, c), target)
        blocks += _cascade_blocks(analysis, out_dir, calibrated=task.calibration is not None)
        if analysis.recommendation:
            summary["recommendation"] = {**analysis.recommendation.__dict__,
                                         "bound": analysis.recommendation.bound.model_dump()}
    elif cheap:
        blocks += _single_tier_blocks(runs[cheap], policy, out_dir, target)
    (out_dir / "report.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out_dir / "report.html").write_text(render_html(blocks, out_dir, task.name), encoding="utf-8")
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    return summary


def _cascade_blocks(analysis, out_dir: Path, *, calibrated: bool) -> list[Block]:
    table = analysis.co_failure
    blocks: list[Block] = [
        ("h2", "Where the small model fails"),
        ("table", ["both right", "only small wrong", "only frontier wrong", "both wrong"],
         [[str(table[k]) for k in ("both_right", "only_small_wrong", "only_frontier_wrong", "both_wrong")]]),
        ("h2", "Simulated cascade"),
        ("p", "Thresholds apply to the small tier's confidence " + (
            "through the task's calibration map, as the cascade compares it." if calibrated else "as the tier reports it "
            "(the task has no calibration map).")),
    ]
    points, rec = analysis.points, analysis.recommendation
    cascade_plot(points, rec, out_dir / "cascade.png")
    blocks.append(("img", "cascade.png", "accuracy vs cost over thresholds"))
    sampled = points[:: max(1, len(points) // 12)] + [points[-1]]
    blocks.append(("table", ["threshold", "accuracy", "escalation", "cost per 1M items (USD)"],
                   [[f"{p.threshold:.3f}", f"{p.accuracy:.3f}", f"{p.escalation_rate:.1%}", f"{p.cost_per_item * 1e6:,.0f}"]
                    for p in sampled]))
    blocks.append(("h2", "Recommended threshold"))
    unpriced = sorted({r.tier for run in (analysis.small, analysis.frontier) for r in run.records if not r.cost_known})
    if unpriced:
        blocks.append(("p", f"Costs count {', '.join(unpriced)} at $0: its model has no known price (set PRICE_*), "
                            "so no saving is claimed."))
    if rec:
        saving = (f"; {rec.saving_vs_frontier:.0%} cheaper than all-frontier"
                  if rec.saving_vs_frontier is not None and not unpriced else "")
        blocks.append(("p", f"**{rec.threshold:.3f}**: {rec.bound.statement}, against a target of {rec.target:.3f} "
                            f"(measured {rec.accuracy:.3f}, 95% bootstrap interval {rec.accuracy_ci[0]:.3f}-"
                            f"{rec.accuracy_ci[1]:.3f}); {rec.escalation_rate:.1%} of items escalate; "
                            f"${rec.cost_per_item * 1e6:,.0f} per 1M items{saving}."))
    else:
        blocks.append(("p", f"No threshold is shown to reach the target accuracy {analysis.target:.3f} with the "
                            "stated confidence on this run."))
    return blocks


def _single_tier_blocks(run: TierRun, policy: AcceptancePolicy, out_dir: Path, target: float | None) -> list[Block]:
    confidences = [policy.calibrated(run.name, c) for c in run.raw_confidences]
    coverage_plot(run.name, confidences, run.correct, out_dir / "coverage.png")
    correct = np.asarray(run.correct, dtype=bool)
    rows = []
    for goal in ([target] if target is not None else [0.5, 0.7, 0.8, 0.9, 0.95]):
        chosen = guarantees.select_accepted(confidences, run.correct, goal).chosen
        if chosen is None:
            rows.append([f"{goal:.2f}", "-", "-", "-", "0%"])
            continue
        keep = accepts(np.asarray(confidences, dtype=float), chosen.threshold)
        rows.append([f"{goal:.2f}", f"{chosen.threshold:.3f}", f"{chosen.bound:.3f}", f"{correct[keep].mean():.3f}",
                     f"{chosen.accepted / len(confidences):.1%}"])
    return [
        ("h2", "One tier only: accept or send to review"),
        ("p", "No frontier run was given (pass `--frontier-run` with a run recorded against a frontier tier "
              "to simulate the cascade). Below, for each target: the lowest threshold whose accepted items are shown "
              f"to reach it with {guarantees.DEFAULT_CONFIDENCE:.0%} confidence (a one-sided Clopper-Pearson bound, "
              "thresholds tested from the highest down, as `smallfirst tune` chooses); the rest would go to review."),
        ("img", "coverage.png", "accuracy vs coverage"),
        ("table", ["target accuracy", "threshold", f"lower bound ({guarantees.DEFAULT_CONFIDENCE:.0%})",
                   "accuracy of accepted", "accepted"], rows),
    ]


def build_comparison(run_a: Path, run_b: Path, out_dir: Path, task: AnyTask) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    a, b = tier_runs(read_run(run_a, task.name), "A:"), tier_runs(read_run(run_b, task.name), "B:")
    table, _ = _quality_table({**a, **b}, task)
    blocks: list[Block] = [("h1", f"smallfirst comparison: {task.name}"),
                           ("p", f"A = `{run_a.name}`, B = `{run_b.name}`."), table]
    for tier_a in a:
        tier_b = "B:" + tier_a[2:]
        if tier_b in b:
            x, y = aligned(a[tier_a], b[tier_b])
            same = np.mean([r.answer == q.answer for r, q in zip(x.records, y.records)]) if x.records else 0.0
            blocks.append(("p", f"{tier_a[2:]}: the two runs give the same answer on {same:.1%} of {len(x.records)} shared items; "
                                f"co-failure: {metrics.co_failure(x.correct, y.correct)}."))
    (out_dir / "compare.md").write_text(render_markdown(blocks), encoding="utf-8")
    (out_dir / "compare.html").write_text(render_html(blocks, out_dir, task.name), encoding="utf-8")

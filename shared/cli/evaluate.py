"""Tiers judged on labelled data: `eval` (each tier's answers recorded), `report`, `tune`, `compare`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from shared.cli.common import (RUN_HELP, TASK_ARGUMENT, console, find_task, load_cascade, progress_bar,
                               warn_of_unknown_prices, working)
from shared.core.cascade import Cascade
from shared.foundation.tasks import AnyTask
from shared.errors import some_of


def eval_command(
    task: str = TASK_ARGUMENT,
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help='labelled .jsonl: {"id","text","label"|"expected"}'),
    tiers: str = typer.Option("small", "--tiers", help="comma-separated tier names, each evaluated separately"),
    out: Path = typer.Option(..., "--out", dir_okay=False, help="run file (.jsonl); an existing one is resumed"),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="a seeded random sample of this many items"),
    seed: int = typer.Option(0, "--seed", help="the random seed of --sample (the same seed, the same items)"),
    concurrency: int = typer.Option(4, "--concurrency", min=1, help="items in flight at once, per tier"),
) -> None:
    """Run labelled items through each tier separately and record answers, confidences, tokens, latency, cost."""
    import asyncio

    from shared.evaluation.tier_eval import check_gold, load_labelled, run_eval
    from shared.evaluation.run_analysis import done_pairs

    cascade = load_cascade()
    spec = find_task(cascade, task)
    items = load_labelled(data, sample, seed)
    if unknown := check_gold(spec, items, str(data)):
        console.print(f"[yellow]{sum(item.label in unknown for item in items)} rows have labels {spec.name} does "
                      f"not know ({some_of(unknown, 5)}): "
                      "no tier can get them right[/]")
    names = list(dict.fromkeys(name.strip() for name in tiers.split(",") if name.strip()))  # each tier once
    if not names:
        raise typer.BadParameter("name at least one tier", param_hint="--tiers")
    warn_of_unknown_prices(cascade, names)
    with progress_bar() as progress:
        bar = progress.add_task(f"{task} x {','.join(names)}", total=len(items) * len(names))
        progress.advance(bar, len(done_pairs(out, spec.name) & {(item.id, name) for item in items for name in names}))
        ran = asyncio.run(run_eval(cascade, spec, items, names, out, concurrency, lambda record: progress.advance(bar)))
    console.print(f"{ran} item x tier pairs evaluated -> {out}")


def _task_for_run(cascade: Cascade, run: Path) -> AnyTask:
    from shared.evaluation.run_analysis import read_run

    records = read_run(run)
    if not records:
        console.print(f"[red]{run} holds no records[/]")
        raise typer.Exit(2)
    return find_task(cascade, records[0].task)


def report(
    run: Path = typer.Argument(..., exists=True, dir_okay=False, help=RUN_HELP),
    out: Path = typer.Option(..., "--out", file_okay=False, help="folder for report.md, report.html and the plots"),
    frontier_run: Optional[Path] = typer.Option(None, "--frontier-run", exists=True, dir_okay=False,
                                                help="a second run used as the frontier"),
    target: Optional[float] = typer.Option(None, "--target", min=0.0, max=1.0,
                                           help="absolute target accuracy (default: frontier - 0.01)"),
) -> None:
    """Quality, latency, cost, calibration and the simulated cascade, from an eval run."""
    from shared.evaluation.report import build_report

    cascade = load_cascade()
    spec = _task_for_run(cascade, run)
    with working(f"report on {run.name}: tables, plots, the simulated cascade"):
        summary = build_report(run, out, spec, frontier_run=frontier_run, target=target)
    console.print(f"report -> {out / 'report.md'} and {out / 'report.html'}")
    if "recommendation" in summary:
        console.print(f"recommended threshold {summary['recommendation']['threshold']:.3f}")


def tune(
    task: str = TASK_ARGUMENT,
    run: Path = typer.Argument(..., exists=True, dir_okay=False, help=RUN_HELP),
    frontier_run: Optional[Path] = typer.Option(None, "--frontier-run", exists=True, dir_okay=False,
                                                help="a second run used as the frontier"),
    target: Optional[float] = typer.Option(None, "--target", min=0.0, max=1.0,
                                           help="absolute target accuracy to show (default: frontier - 0.01; "
                                                "one tier: 0.9)"),
    tier: str = typer.Option("small", "--tier", help="the cheaper tier to tune (its own threshold unless small)"),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate",
                                   help="fit an isotonic map first (off for a tier calibrated already)"),
    confidence: float = typer.Option(0.95, "--confidence", min=0.5, max=0.999,
                                     help="how sure the accuracy bound must be that the target is reached"),
) -> None:
    """Write the lowest threshold shown to reach the target accuracy, its bound and the tier's calibration into
    the task file.

    The bound is a one-sided Clopper-Pearson lower bound on the run, the thresholds tested from the highest down
    until one fails (so choosing among them does not inflate it): with --frontier-run on the cascade's accuracy,
    else on the accuracy of the items the tier accepts. If no threshold is shown to, it says what the run would
    need and exits 1."""
    from shared.evaluation.tuning import tune as tune_task

    cascade = load_cascade()
    find_task(cascade, task)
    try:
        with working(f"tuning {tier} of {task} on {run.name}"):
            result = tune_task(cascade.tasks.path_of(task), run, task=task, frontier_run=frontier_run,
                               target=target, tier=tier, calibrate=calibrate, confidence=confidence)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1)
    console.print(f"{task}: threshold {result['threshold']:.3f} ({result['source']})")


def compare(
    run_a: Path = typer.Argument(..., exists=True, dir_okay=False, help="the first eval run (.jsonl)"),
    run_b: Path = typer.Argument(..., exists=True, dir_okay=False, help="the second eval run (.jsonl)"),
    out: Path = typer.Option(..., "--out", file_okay=False, help="folder for compare.md and compare.html"),
) -> None:
    """Two runs side by side (e.g. a quantised vs a full-precision small model, or two prompts)."""
    from shared.evaluation.report import build_comparison

    cascade = load_cascade()
    task = _task_for_run(cascade, run_a)
    _task_for_run(cascade, run_b)  # a run with no records is said, not shown as a missing column
    build_comparison(run_a, run_b, out, task)
    console.print(f"comparison -> {out / 'compare.md'}")

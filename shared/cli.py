"""The `smallfirst` command line."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shared.cascade import Engine
from shared.items import InputError, parse_input
from shared.results import Item, ResultRecord
from shared.tasks import ClassificationTask, ExtractionTask

app = typer.Typer(help="Small model first; frontier only when needed.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True)


def _engine() -> Engine:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return Engine.from_env()


def _task(engine: Engine, name: str) -> ClassificationTask | ExtractionTask:
    try:
        return engine.tasks.get(name)
    except KeyError:
        console.print(f"[red]unknown task {name!r}[/]; known: {', '.join(engine.tasks.names())}")
        raise typer.Exit(2)


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )


@app.command()
def run(
    task: str,
    input: Path = typer.Option(..., "--input", "-i", exists=True, dir_okay=False, help=".jsonl/.json/.txt items"),
    output: Path = typer.Option(..., "--output", "-o", help="result records, one JSON per line"),
) -> None:
    """Run the cascade on every item of a file and write one result record per line."""
    engine = _engine()
    spec = _task(engine, task)
    try:
        parsed = parse_input(input.name, input.read_bytes())
    except InputError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    for error in parsed.errors:
        console.print(f"[yellow]line {error.line} skipped ({error.reason}): {error.message}[/]")
    counts: dict[str, int] = {}
    with output.open("w", encoding="utf-8") as out, progress_bar() as progress:
        bar = progress.add_task(task, total=len(parsed.items))
        for item in parsed.items:
            record = engine.process(spec, item)
            out.write(record.model_dump_json() + "\n")
            counts[record.status] = counts.get(record.status, 0) + 1
            progress.advance(bar)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(f"{len(parsed.items)} items -> {output} ({summary}); {len(parsed.errors)} lines skipped")


def _print_one(record: ResultRecord) -> None:
    sys.stdout.write(record.model_dump_json(indent=2) + "\n")


@app.command()
def classify(task: str, text: str) -> None:
    """Classify one text and print its result record."""
    engine = _engine()
    spec = _task(engine, task)
    if not isinstance(spec, ClassificationTask):
        console.print(f"[red]{task} is an {spec.kind} task[/]")
        raise typer.Exit(2)
    _print_one(engine.process(spec, Item(id="cli", text=text)))


@app.command()
def extract(task: str, file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Extract fields from one text file and print its result record."""
    engine = _engine()
    spec = _task(engine, task)
    if not isinstance(spec, ExtractionTask):
        console.print(f"[red]{task} is a {spec.kind} task[/]")
        raise typer.Exit(2)
    _print_one(engine.process(spec, Item(id=file.stem, text=file.read_text(encoding="utf-8"))))


@app.command()
def tasks() -> None:
    """List the task catalogue."""
    engine = _engine()
    table = Table("task", "kind", "labels / fields", "threshold", "tiers")
    for spec in engine.tasks.all():
        detail = (
            f"{len(spec.allowed_labels)} labels"
            if isinstance(spec, ClassificationTask)
            else ", ".join(spec.json_schema["properties"])
        )
        table.add_row(spec.name, spec.kind, detail, f"{spec.threshold:.2f}", ", ".join(engine.tiers.configured(spec.tiers)))
    Console().print(table)


@app.command()
def health() -> None:
    """Say which tiers are configured and whether each answers."""
    engine = _engine()
    failed = False
    for name in engine.settings.tiers:
        try:
            console.print(f"[green]{name}[/]: {engine.tiers.get(name).health()}")
        except Exception as exc:  # any failure here is the answer we want to show
            failed = True
            console.print(f"[red]{name}[/]: {exc}")
    raise typer.Exit(1 if failed else 0)


if __name__ == "__main__":
    app()

"""What each command family uses: the console, the cascade from the environment, a task by name, progress."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)

from shared.core.cascade import Cascade
from shared.foundation.tasks import AnyTask, ClassificationTask
from shared.errors import UnknownTaskError

console = Console(stderr=True, soft_wrap=True)  # one message, one line, whatever the width
# The positional TASK of every command that takes one.
TASK_ARGUMENT = typer.Argument(..., help="the task's name (smallfirst tasks lists them)", show_default=False)
RUN_HELP = "an eval run file (.jsonl, written by smallfirst eval)"


def load_cascade() -> Cascade:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return Cascade.from_env()


def find_task(cascade: Cascade, name: str) -> AnyTask:
    try:
        return cascade.tasks.get(name)
    except UnknownTaskError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2)


def find_classification_task(cascade: Cascade, name: str, why: str = "") -> ClassificationTask:
    spec = find_task(cascade, name)
    if not isinstance(spec, ClassificationTask):
        console.print(f"[red]{name} is an {spec.kind} task{why}[/]")
        raise typer.Exit(2)
    return spec


def warn_of_unknown_prices(cascade: Cascade, tiers: list[str]) -> None:
    """Before a command records costs: each of `tiers` whose model has no known price (its costs count as zero)."""
    for name in cascade.tiers.configured(tiers):
        if warning := cascade.settings.tiers[name].price_warning:
            console.print(f"[yellow]warning: {warning}[/]")


def progress_bar(shown: bool = True) -> Progress:
    """A bar on stderr while work runs; drawn only on a terminal (a log or a pipe would get every redraw) and when
    `shown` (False with --json, whose reader wants the answer alone)."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=not (shown and console.is_terminal))


@contextmanager
def working(description: str, shown: bool = True) -> Iterator[None]:
    """A pulsing bar with the time taken, for work that cannot count its steps (drawn as `progress_bar` is)."""
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                  console=console, disable=not (shown and console.is_terminal), transient=True) as progress:
        progress.add_task(description, total=None)
        yield

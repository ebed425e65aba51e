"""Running the cascade: `run` (a file of items), `classify` and `extract` (one item), `tasks`, `health`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import BinaryIO

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from shared.cli.common import (TASK_ARGUMENT, console, find_classification_task, find_task, load_cascade, progress_bar,
                               warn_of_unknown_prices)
from shared.foundation.records import Item, ResultRecord
from shared.foundation.tasks import ClassificationTask, ExtractionTask
from shared.errors import InputError, TaskError
from shared.pipeline.answering import AnswerService
from shared.pipeline.parsing import ParsedInput, parse_input

RUN_CHUNK_ITEMS = 256  # `smallfirst run`: items per batch, each batch on an event loop (and clients) of its own


def run(
    task: str = TASK_ARGUMENT,
    input: Path = typer.Option(..., "--input", "-i", exists=True, dir_okay=False, help=".jsonl/.json/.txt items"),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="result records, one JSON per line"),
) -> None:
    """Run the cascade on every item of a file and write one result record per line."""
    if output.exists() and os.path.samefile(output, input):  # also through a link, whatever the case
        raise InputError("output_is_input", f"{output} is the input: write the results to another file")
    cascade = load_cascade()
    spec = find_task(cascade, task)
    warn_of_unknown_prices(cascade, spec.tiers)
    try:
        parsed = parse_input(input.name, input.read_bytes())
    except InputError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2)
    _warn_skipped(input, parsed)
    counts: dict[str, int] = {}
    # Items go through as a batch does (`settings.concurrency` in flight), a chunk at a time, so records are
    # written in input order as they come and a stopped run keeps every chunk it finished.
    chunk = max(RUN_CHUNK_ITEMS, cascade.settings.concurrency)
    answers = AnswerService(cascade)
    try:
        out = output.open("wb", buffering=0)  # unbuffered: a failed write fails there, not again on closing
    except OSError as exc:  # a missing folder, no permission
        raise _unwritable(output, exc) from exc
    with out, progress_bar() as progress:
        bar = progress.add_task(task, total=len(parsed.items))
        for start in range(0, len(parsed.items), chunk):
            records = answers.answer(spec, parsed.items[start:start + chunk],
                                     on_record=lambda _record: progress.advance(bar))
            try:
                _write_all(out, "".join(record.model_dump_json() + "\n" for record in records).encode("utf-8"))
            except OSError as exc:  # a full disk: the chunks written before stay
                raise _unwritable(output, exc) from exc
            for record in records:
                counts[record.status] = counts.get(record.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    console.print(f"{len(parsed.items)} items -> {output} ({summary}); {len(parsed.errors)} lines skipped")


def _write_all(out: BinaryIO, data: bytes) -> None:
    """An unbuffered write may take part of the bytes (a disk filling up): the rest is written, or fails."""
    view = memoryview(data)
    while view:
        view = view[out.write(view):]


def _unwritable(output: Path, exc: OSError) -> InputError:
    return InputError("unwritable_output", f"cannot write {output}: {exc.strerror or exc}")


def _warn_skipped(path: Path, parsed: ParsedInput) -> None:
    for error in parsed.errors:
        console.print(f"{path}:{error.line}: skipped ({error.reason}): {error.message}", style="yellow",
                      markup=False, highlight=False)


def _print_one(record: ResultRecord) -> None:
    sys.stdout.write(record.model_dump_json(indent=2) + "\n")


def classify(task: str = TASK_ARGUMENT,
             text: str = typer.Argument(..., help="the text to classify (quote it)")) -> None:
    """Classify one text and print its result record."""
    cascade = load_cascade()
    spec = find_classification_task(cascade, task)
    warn_of_unknown_prices(cascade, spec.tiers)
    if not text.strip():
        raise InputError("empty_text", "the text is empty: nothing to classify")
    try:
        item = Item(id="cli", text=text)
    except ValidationError as exc:  # e.g. bytes of the command line that are not UTF-8
        raise InputError("invalid_item", exc.errors()[0]["msg"]) from exc
    _print_one(cascade.process(spec, item))


def extract(task: str = TASK_ARGUMENT,
            file: Path = typer.Argument(..., exists=True, dir_okay=False,
                                        help="the text to extract from: .txt, .md, or a .json item")) -> None:
    """Extract fields from one text file (.txt, .md, or a .json item) and print its result record."""
    cascade = load_cascade()
    spec = find_task(cascade, task)
    if not isinstance(spec, ExtractionTask):
        console.print(f"[red]{task} is a {spec.kind} task[/]")
        raise typer.Exit(2)
    warn_of_unknown_prices(cascade, spec.tiers)
    parsed = parse_input(file.name, file.read_bytes())  # an unusable file is an InputError: one line from main()
    _warn_skipped(file, parsed)
    if len(parsed.items) != 1:
        raise InputError("not_one_item", f"{file.name}: {len(parsed.items)} items; extract takes one (use run)")
    _print_one(cascade.process(spec, parsed.items[0]))


def tasks(as_json: bool = typer.Option(False, "--json", help="print the catalogue as JSON")) -> None:
    """List the task catalogue."""
    cascade = load_cascade()
    rows: list[dict[str, object]] = []
    for name, spec in cascade.tasks.each():
        if isinstance(spec, TaskError):
            rows.append({"task": name, "kind": "invalid", "error": str(spec)})
            continue
        rows.append({
            "task": spec.name, "kind": spec.kind, "threshold": spec.threshold,
            "tiers": cascade.tiers.configured(spec.tiers),
            **({"labels": list(spec.allowed_labels)} if isinstance(spec, ClassificationTask)
               else {"fields": list(spec.json_schema["properties"])}),
        })
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("task", "kind", "labels / fields", "threshold", "tiers")
    for row in rows:
        if row["kind"] == "invalid":
            table.add_row(str(row["task"]), "[red]invalid[/]", str(row["error"]), "", "")
            continue
        detail = f"{len(row['labels'])} labels" if "labels" in row else ", ".join(row["fields"])
        table.add_row(str(row["task"]), str(row["kind"]), detail, f"{row['threshold']:.2f}", ", ".join(row["tiers"]))
    Console().print(table)


def health(
    deep: bool = typer.Option(False, "--deep", help="have each tier answer a one-line request (endpoint tiers spend "
                                                    "tokens); by default each is only probed, spending none"),
    as_json: bool = typer.Option(False, "--json", help="print each tier's state as JSON"),
) -> None:
    """Say which tiers are configured and whether each is reachable, and warn of a tier with no known price."""
    from shared.core.backends import BACKENDS, Backend

    cascade = load_cascade()
    tiers: list[dict[str, object]] = []
    for name, config in cascade.settings.tiers.items():
        state: dict[str, object] = {"tier": name, "backend": config.backend.value, "model": config.model,
                                    "legacy": BACKENDS[config.backend].legacy, "price": config.price_source,
                                    "warning": config.price_warning}
        try:
            tier = cascade.tiers.get(name)
            state.update(ok=True, detail=tier.health() if deep else tier.probe())
        except Exception as exc:  # any failure here is the answer we want to show
            state.update(ok=False, detail=str(exc))
        if config.backend == Backend.TRAINED:
            from shared.learning.serving import embedder_kind

            tasks = [task for _, task in cascade.tasks.each() if not isinstance(task, TaskError) and name in task.tiers]
            state["embedders"] = {task.name: embedder_kind(config.embedder, task) for task in tasks}
            if state["ok"]:  # a declared language the task's embedder cannot read: those items always escalate
                heads = cascade.tiers.get(name).heads
                state["languages_outside"] = {task.name: outside for task in tasks
                                              if (outside := heads.languages_outside(task))}
        tiers.append(state)
    if as_json:
        sys.stdout.write(json.dumps(tiers, indent=2) + "\n")
    for state in [] if as_json else tiers:
        legacy = f" [yellow]{state['legacy']}[/]" if state["legacy"] else ""
        colour = "green" if state["ok"] else "red"
        console.print(f"[{colour}]{state['tier']}[/]{legacy}: {state['detail']}", highlight=False)
        if embedders := state.get("embedders"):
            console.print("  embeds " + ", ".join(f"{task} with {kind}" for task, kind in embedders.items()),
                          highlight=False)
        for task, outside in (state.get("languages_outside") or {}).items():
            console.print(f"  [yellow]{task} declares {', '.join(outside)}, which its embedder was not trained on: "
                          "its items in them escalate[/]", highlight=False)
    for state in tiers:
        if state["warning"]:
            console.print(f"[yellow]warning: {state['warning']}[/]")
    raise typer.Exit(0 if all(state["ok"] for state in tiers) else 1)

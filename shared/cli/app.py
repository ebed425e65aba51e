"""The `smallfirst` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import BinaryIO, NoReturn, Optional

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from shared.cli.smoke import smoke
from shared.core.cascade import Cascade
from shared.core.records import Item, ResultRecord
from shared.core.tasks import AnyTask, ClassificationTask, ExtractionTask
from shared.errors import InputError, SmallfirstError, TaskError, UnknownTaskError, some_of
from shared.pipeline.parsing import ParsedInput, parse_input

RUN_CHUNK_ITEMS = 256  # `smallfirst run`: items per batch, each batch on an event loop (and clients) of its own

app = typer.Typer(help="Small model first; frontier only when needed.", no_args_is_help=True, add_completion=False)
console = Console(stderr=True, soft_wrap=True)  # one message, one line, whatever the width


def main() -> None:
    """The console entry point: a SmallfirstError (unknown task, bad setting, unusable input) is one line that
    says what is wrong, not a traceback."""
    try:
        app()
    except SmallfirstError as exc:
        console.print(f"[red]smallfirst: {exc}[/]")
        sys.exit(2)


def _cascade() -> Cascade:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return Cascade.from_env()


def _task(cascade: Cascade, name: str) -> AnyTask:
    try:
        return cascade.tasks.get(name)
    except UnknownTaskError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2)


def _classification_task(cascade: Cascade, name: str, why: str = "") -> ClassificationTask:
    spec = _task(cascade, name)
    if not isinstance(spec, ClassificationTask):
        console.print(f"[red]{name} is an {spec.kind} task{why}[/]")
        raise typer.Exit(2)
    return spec


def progress_bar() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=console
    )


@app.command()
def run(
    task: str,
    input: Path = typer.Option(..., "--input", "-i", exists=True, dir_okay=False, help=".jsonl/.json/.txt items"),
    output: Path = typer.Option(..., "--output", "-o", dir_okay=False, help="result records, one JSON per line"),
) -> None:
    """Run the cascade on every item of a file and write one result record per line."""
    if output.exists() and os.path.samefile(output, input):  # also through a link, whatever the case
        raise InputError("output_is_input", f"{output} is the input: write the results to another file")
    cascade = _cascade()
    spec = _task(cascade, task)
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
    try:
        out = output.open("wb", buffering=0)  # unbuffered: a failed write fails there, not again on closing
    except OSError as exc:  # a missing folder, no permission
        raise _unwritable(output, exc) from exc
    with out, progress_bar() as progress:
        bar = progress.add_task(task, total=len(parsed.items))
        for start in range(0, len(parsed.items), chunk):
            records = cascade.run_batch(spec, parsed.items[start:start + chunk],
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


@app.command()
def classify(task: str, text: str) -> None:
    """Classify one text and print its result record."""
    cascade = _cascade()
    spec = _classification_task(cascade, task)
    if not text.strip():
        raise InputError("empty_text", "the text is empty: nothing to classify")
    try:
        item = Item(id="cli", text=text)
    except ValidationError as exc:  # e.g. bytes of the command line that are not UTF-8
        raise InputError("invalid_item", exc.errors()[0]["msg"]) from exc
    _print_one(cascade.process(spec, item))


@app.command()
def extract(task: str, file: Path = typer.Argument(..., exists=True, dir_okay=False)) -> None:
    """Extract fields from one text file (.txt, .md, or a .json item) and print its result record."""
    cascade = _cascade()
    spec = _task(cascade, task)
    if not isinstance(spec, ExtractionTask):
        console.print(f"[red]{task} is a {spec.kind} task[/]")
        raise typer.Exit(2)
    parsed = parse_input(file.name, file.read_bytes())  # an unusable file is an InputError: one line from main()
    _warn_skipped(file, parsed)
    if len(parsed.items) != 1:
        raise InputError("not_one_item", f"{file.name}: {len(parsed.items)} items; extract takes one (use run)")
    _print_one(cascade.process(spec, parsed.items[0]))


@app.command()
def tasks() -> None:
    """List the task catalogue."""
    cascade = _cascade()
    table = Table("task", "kind", "labels / fields", "threshold", "tiers")
    for name, spec in cascade.tasks.each():
        if isinstance(spec, TaskError):
            table.add_row(name, "[red]invalid[/]", str(spec), "", "")
            continue
        detail = (
            f"{len(spec.allowed_labels)} labels"
            if isinstance(spec, ClassificationTask)
            else ", ".join(spec.json_schema["properties"])
        )
        table.add_row(spec.name, spec.kind, detail, f"{spec.threshold:.2f}", ", ".join(cascade.tiers.configured(spec.tiers)))
    Console().print(table)


@app.command()
def health(
    deep: bool = typer.Option(False, "--deep", help="have each tier answer a one-line request (endpoint tiers spend "
                                                    "tokens); by default each is only probed, spending none"),
) -> None:
    """Say which tiers are configured and whether each is reachable."""
    from shared.core.config import LEGACY_BACKENDS

    cascade = _cascade()
    failed = False
    for name, config in cascade.settings.tiers.items():
        legacy = f" [yellow]{LEGACY_BACKENDS[config.backend]}[/]" if config.backend in LEGACY_BACKENDS else ""
        try:
            tier = cascade.tiers.get(name)
            console.print(f"[green]{name}[/]{legacy}: {tier.health() if deep else tier.probe()}")
        except Exception as exc:  # any failure here is the answer we want to show
            failed = True
            console.print(f"[red]{name}[/]: {exc}")
    raise typer.Exit(1 if failed else 0)


@app.command("eval")
def eval_command(
    task: str,
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help='labelled .jsonl: {"id","text","label"|"expected"}'),
    tiers: str = typer.Option("small", "--tiers", help="comma-separated tier names, each evaluated separately"),
    out: Path = typer.Option(..., "--out", dir_okay=False, help="run file (.jsonl); an existing one is resumed"),
    sample: Optional[int] = typer.Option(None, "--sample", min=1, help="a seeded random sample of this many items"),
    seed: int = typer.Option(0, "--seed"),
    concurrency: int = typer.Option(4, "--concurrency", min=1),
) -> None:
    """Run labelled items through each tier separately and record answers, confidences, tokens, latency, cost."""
    import asyncio

    from shared.evaluation.runner import check_gold, load_labelled, run_eval
    from shared.evaluation.runs import done_pairs

    cascade = _cascade()
    spec = _task(cascade, task)
    items = load_labelled(data, sample, seed)
    if unknown := check_gold(spec, items, str(data)):
        console.print(f"[yellow]{sum(item.label in unknown for item in items)} rows have labels {spec.name} does "
                      f"not know ({some_of(unknown, 5)}): "
                      "no tier can get them right[/]")
    names = list(dict.fromkeys(name.strip() for name in tiers.split(",") if name.strip()))  # each tier once
    if not names:
        raise typer.BadParameter("name at least one tier", param_hint="--tiers")
    with progress_bar() as progress:
        bar = progress.add_task(f"{task} x {','.join(names)}", total=len(items) * len(names))
        progress.advance(bar, len(done_pairs(out, spec.name) & {(item.id, name) for item in items for name in names}))
        ran = asyncio.run(run_eval(cascade, spec, items, names, out, concurrency, lambda record: progress.advance(bar)))
    console.print(f"{ran} item x tier pairs evaluated -> {out}")


def _task_for_run(cascade: Cascade, run: Path) -> AnyTask:
    from shared.evaluation.runs import read_run

    records = read_run(run)
    if not records:
        console.print(f"[red]{run} holds no records[/]")
        raise typer.Exit(2)
    return _task(cascade, records[0].task)


@app.command()
def report(
    run: Path = typer.Argument(..., exists=True, dir_okay=False),
    out: Path = typer.Option(..., "--out", file_okay=False, help="folder for report.md, report.html and the plots"),
    frontier_run: Optional[Path] = typer.Option(None, "--frontier-run", exists=True, dir_okay=False,
                                                help="a second run used as the frontier"),
    target: Optional[float] = typer.Option(None, "--target", min=0.0, max=1.0,
                                           help="absolute target accuracy (default: frontier - 0.01)"),
) -> None:
    """Quality, latency, cost, calibration and the simulated cascade, from an eval run."""
    from shared.evaluation.report import build_report

    cascade = _cascade()
    summary = build_report(run, out, _task_for_run(cascade, run), frontier_run=frontier_run, target=target)
    console.print(f"report -> {out / 'report.md'} and {out / 'report.html'}")
    if "recommendation" in summary:
        console.print(f"recommended threshold {summary['recommendation']['threshold']:.3f}")


@app.command()
def tune(
    task: str,
    run: Path = typer.Argument(..., exists=True, dir_okay=False),
    frontier_run: Optional[Path] = typer.Option(None, "--frontier-run", exists=True, dir_okay=False),
    target: Optional[float] = typer.Option(None, "--target", min=0.0, max=1.0),
    tier: str = typer.Option("small", "--tier", help="the cheaper tier to tune (its own threshold unless small)"),
    calibrate: bool = typer.Option(True, "--calibrate/--no-calibrate",
                                   help="fit an isotonic map first (off for a tier calibrated already)"),
) -> None:
    """Write the recommended threshold and the tier's calibration into the task file."""
    from shared.evaluation.tuning import tune as tune_task

    cascade = _cascade()
    _task(cascade, task)
    try:
        result = tune_task(cascade.tasks.path_of(task), run, task=task, frontier_run=frontier_run, target=target,
                           tier=tier, calibrate=calibrate)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1)
    console.print(f"{task}: threshold {result['threshold']:.3f} ({result['source']})")


@app.command()
def train(
    task: str,
    data: Optional[Path] = typer.Option(None, "--data", exists=True, dir_okay=False,
                                        help='labelled .jsonl: {"id","text","label"} or {"id","text","expected"} (extraction)'),
    from_results: list[Path] = typer.Option([], "--from-results", exists=True,
                                            help="result records (files or folders) whose frontier answers to learn"),
    inputs: list[Path] = typer.Option([], "--inputs", exists=True, help="the input files those results came from"),
    corrections: list[Path] = typer.Option([], "--corrections", exists=True,
                                           help="correction records (files or folders)"),
    from_storage: bool = typer.Option(False, "--from-storage",
                                      help="learn from the results/ and corrections/ containers of DataStorage"),
    days: Optional[int] = typer.Option(None, "--days", min=1, max=36_500,
                                      help="only production data of the last N days"),
    activate: bool = typer.Option(True, "--activate/--no-activate", help="make the new head the task's active one"),
) -> None:
    """Train the trained tier's head for a task (a classifier, or a line tagger for extraction), save it as a new
    version, and activate it.

    From labelled data (--data), from production (the frontier's answers in result records, joined to their
    inputs' texts, and people's corrections), or both; never from the trained tier's own answers."""
    from shared.learning.artifact import save_head
    from shared.learning.training import train_head

    cascade = _cascade()
    spec = _task(cascade, task)
    tier = cascade.tiers.get("trained")
    if isinstance(spec, ExtractionTask):
        if data is None:
            console.print("[red]an extraction head learns from labelled rows: give --data[/]")
            raise typer.Exit(2)
        artifact = _train_extraction(spec, tier, data)
        if activate:
            _activate_head(cascade, tier, spec.name, artifact.version)
        return
    training = _training_set(cascade, spec, data, from_results, inputs, corrections, from_storage, days)
    with progress_bar() as progress:
        bar = progress.add_task(f"embedding {len(training)} examples", total=len(training))
        try:
            head = train_head(tier.embedder, training, labels=[label.name for label in spec.labels],
                              none_label=spec.none_label if spec.allow_none else None,
                              none_reject_budget=spec.none_reject_budget,
                              none_recall_target=spec.none_recall_target,
                              progress=lambda done, total: progress.update(bar, completed=done))
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1)
    console.print("fitting: regularisation by cross-validation, then temperature and out-of-scope threshold")
    artifact = save_head(tier.head_store, task=spec.name, classifier=head, embedder=tier.embedder,
                         training_data=training.summary())
    metrics = artifact.cv_metrics
    console.print(f"{spec.name} head {artifact.version}: cross-validated accuracy {metrics.accuracy:.3f}, "
                  f"ECE {metrics.ece:.3f}, accuracy of the 80% most confident {metrics.selective_accuracy_80:.3f} "
                  f"({metrics.rows} examples) -> {tier.head_store.describe(f'{spec.name}/{artifact.version}')}")
    if artifact.none_label is not None:
        recall = "n/a (no none examples)" if metrics.oos_recall is None else f"{metrics.oos_recall:.3f}"
        console.print(f"out of scope: threshold {artifact.oos_threshold or 0.0:.3f} ({artifact.oos_threshold_rule}); "
                      f"cross-validated in-scope accuracy {metrics.inscope_accuracy:.3f}, none recall {recall}")
    if activate:
        _activate_head(cascade, tier, spec.name, artifact.version)


@app.command()
def retrain(
    task: str,
    days: Optional[int] = typer.Option(None, "--days", min=1, max=36_500, help="production data of the last N days "
                                                                    "(default: SMALLFIRST_RETRAIN_DAYS)"),
) -> None:
    """Retrain a task's head now, as the scheduled function does: from the frontier's answers and people's
    corrections in DataStorage (plus the head store's gold rows), a challenger judged against the active head on a
    held-out slice and promoted only if it is not worse; the decision is recorded either way."""
    from shared.learning.retrain import describe, retrain_scheduled
    from shared.pipeline.storage import blob_service

    cascade = _cascade()
    _classification_task(cascade, task, " (the trained tier's extraction heads learn from labelled rows: "
                                        "smallfirst train TASK --data ...)")
    [outcome] = retrain_scheduled(cascade, blob_service("DataStorage"), tasks=[task], days=days)
    _print_sources(outcome.sources)
    console.print(f"{task}: {describe(outcome)}")
    if outcome.decision is None:
        raise typer.Exit(1)


def _print_sources(reports) -> None:
    """What each source of training examples gave, and what it skipped and why (shared/learning/training_data.py)."""
    for source, report in reports.items():
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items())) or "none"
        console.print(f"{source}: {report.used} examples; skipped: {skipped}")


def _activate_head(cascade: Cascade, tier, task: str, version: str) -> None:
    """An activation record in the head store; with local heads the task file also names the head it ships with."""
    from shared.core.task_files import update_task_file
    from shared.learning.activation import activate

    activate(tier.head_store, task, version, reason="smallfirst train")
    if tier.config.heads_store == "local":
        path = cascade.tasks.path_of(task)
        update_task_file(path, {"trained_head": version})
        console.print(f"{path}: trained_head = {version}")


def _training_set(cascade: Cascade, spec: ClassificationTask, data: Path | None, from_results: list[Path],
                  inputs: list[Path], corrections: list[Path], from_storage: bool, days: int | None):
    """Gold rows and production examples, de-duplicated, with a summary of where they came from."""
    from datetime import datetime, timedelta, timezone

    from shared.pipeline.production_data import ProductionExamples, from_files
    from shared.learning.training_data import TrainingSet, read_labelled_jsonl

    if from_results and not inputs:
        console.print("[red]--from-results needs --inputs: result records carry no text[/]")
        raise typer.Exit(2)
    if not (data or from_results or corrections or from_storage):
        console.print("[red]nothing to learn from: give --data, --from-results, --corrections or --from-storage[/]")
        raise typer.Exit(2)
    try:
        gold = read_labelled_jsonl(data) if data else []
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1)
    since = datetime.now(timezone.utc) - timedelta(days=days) if days else None
    frontier = [name for name, tier in cascade.settings.tiers.items() if tier.role == "frontier"]
    production = ProductionExamples()
    if from_results or corrections:
        production = from_files(spec.name, results=from_results, inputs=inputs, corrections=corrections,
                                frontier_tiers=frontier, allowed_labels=spec.allowed_labels, since=since)
    if from_storage:
        from shared.pipeline.production_data import from_storage as read_storage
        from shared.pipeline.storage import blob_service

        production.extend(read_storage(blob_service("DataStorage"), spec.name, frontier_tiers=frontier,
                                       allowed_labels=spec.allowed_labels, since=since))
    if gold:
        console.print(f"gold: {len(gold)} rows from {data}")
    _print_sources(production.reports)
    training = TrainingSet([*gold, *production.examples])
    summary = training.summary()
    provenance = ", ".join(f"{n} {source}" for source, n in summary.by_provenance.items())
    console.print(f"training set: {summary.size} examples after de-duplication ({provenance or 'none'})")
    if training.disagreements:
        console.print(f"[yellow]{training.disagreements} texts were given more than one label: each keeps the "
                      "most trusted (correction, gold, frontier), then the latest[/]")
    return training


def _train_extraction(spec: ExtractionTask, tier, data: Path):
    """Fit a line tagger on {"id","text","expected"} rows and save it as a new version of the task's head."""
    from shared.learning.extraction_artifact import data_summary, save_extraction_head
    from shared.learning.training import train_extraction_head
    from shared.learning.training_data import read_extraction_jsonl

    try:
        rows = read_extraction_jsonl(data)
        with progress_bar() as progress:
            bar = progress.add_task(f"embedding the lines of {len(rows)} texts", total=None)
            console.print("embedding each distinct line, then per field: candidates, labels, cross-validated "
                          "regularisation and calibration")
            tagger = train_extraction_head(tier.embedder, rows, schema=spec.json_schema,
                                           progress=lambda done, total: progress.update(bar, completed=done, total=total))
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1)
    artifact = save_extraction_head(tier.head_store, task=spec.name, tagger=tagger,
                                    embedder=tier.embedder,
                                    training_data=data_summary([(row.text, row.expected) for row in rows]))
    metrics = artifact.cv_metrics
    fields = ", ".join(f"{name} {m.exact_match:.3f}" for name, m in metrics.fields.items())
    console.print(f"{spec.name} head {artifact.version}: cross-validated exact match {fields}; item accuracy "
                  f"{metrics.item_accuracy:.3f}, ECE {metrics.item_ece:.3f} (item confidence = {metrics.item_rule} "
                  f"of field confidences), accuracy of the 80% most confident {metrics.item_selective_accuracy_80:.3f}"
                  f" ({metrics.rows} texts) -> {tier.head_store.describe(f'{spec.name}/{artifact.version}')}")
    if never := [name for name, m in metrics.fields.items() if m.exact_match == 0.0]:
        console.print(f"[yellow]never extracted right in cross-validation: {', '.join(never)}. Do the expected "
                      "values appear in the texts as written? Every answer of this head will miss them.[/]")
    return artifact


@app.command("export-finetune")
def export_finetune(
    task: str,
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help='labelled .jsonl: {"id","text","label"}'),
    out: Path = typer.Option(..., "--out", file_okay=False, help="folder for train.jsonl and validation.jsonl"),
) -> None:
    """Labelled items as chat-format fine-tuning files: the small tier's own prompt, then the right label."""
    from shared.core.prompts import classification_messages
    from shared.learning.finetune_export import export_finetune_jsonl
    from shared.learning.training_data import read_labelled_jsonl

    cascade = _cascade()
    spec = _classification_task(cascade, task, ": fine-tuning files are written for classification")
    try:
        written = export_finetune_jsonl(read_labelled_jsonl(data), out, allowed_labels=spec.allowed_labels,
                                        prompt=lambda text: classification_messages(spec, text, json_answer=True))
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1)
    console.print(f"{written.train_rows} training rows -> {written.train_path}; "
                  f"{written.validation_rows} validation rows -> {written.validation_path}")


@app.command()
def compare(
    run_a: Path = typer.Argument(..., exists=True, dir_okay=False),
    run_b: Path = typer.Argument(..., exists=True, dir_okay=False),
    out: Path = typer.Option(..., "--out", file_okay=False, help="folder for compare.md and compare.html"),
) -> None:
    """Two runs side by side (e.g. a quantised vs a full-precision small model, or two prompts)."""
    from shared.evaluation.report import build_comparison

    cascade = _cascade()
    task = _task_for_run(cascade, run_a)
    _task_for_run(cascade, run_b)  # a run with no records is said, not shown as a missing column
    build_comparison(run_a, run_b, out, task)
    console.print(f"comparison -> {out / 'compare.md'}")



def _stats_failed(message: str) -> NoReturn:
    """One line, whatever the terminal's width; names and paths are printed as they are, not as markup."""
    console.print(message, style="red", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@app.command()
def stats(
    task: Optional[str] = typer.Argument(None, help="one task (default: every task found)"),
    days: int = typer.Option(7, "--days", min=0, max=36_500, help="the last N days, today (UTC) included; 0 for every day"),
    results: list[Path] = typer.Option([], "--results", help="a local result file (.json/.jsonl) to read instead of "
                                       "the containers; repeat for several"),
    shadow: list[Path] = typer.Option([], "--shadow", help="a local shadow file (.jsonl); repeat for several"),
    html: Optional[Path] = typer.Option(None, "--html", help="also write a self-contained HTML page with plots"),
) -> None:
    """Volume, outcomes, escalations, cost against all-frontier, latency and live accuracy, per task and day.

    Reads results/, review/, shadow/ and corrections/ of the DataStorage account, or only the local files given."""
    from datetime import datetime, timedelta, timezone

    from shared.core.config import Settings
    from shared.core.tasks import TaskCatalog
    from shared.operations.stats import confidence_drift, drift_level, summarise
    from shared.operations.stats_sources import ContainerRecords, interactive_store, local_results, local_shadows
    from shared.operations.stats_tables import headline, task_tables

    try:
        if results or shadow:
            origin = "local files"
            found, pairs, corrections = local_results(results), local_shadows(shadow), []
        else:
            from shared.pipeline.blob_names import DATA_CONNECTION

            origin = f"the {DATA_CONNECTION} storage account"
            records = ContainerRecords(interactive_store(DATA_CONNECTION), task=task)
            found, pairs, corrections = records.results(), records.shadows(), records.corrections()
    except KeyError as exc:  # no storage connection configured
        _stats_failed(exc.args[0])
    except ValueError as exc:  # an unreadable source (InputError) or a malformed connection string
        _stats_failed(str(exc))
    since = datetime.now(timezone.utc).date() - timedelta(days=days - 1) if days else None
    summary = summarise(found, pairs, corrections, task=task, since=since)
    catalog = TaskCatalog(Settings.from_env().tasks_dir)  # each task's tuning reference, for drift
    out = Console()
    window = f"since {since.isoformat()}" if since else "all days"
    if not summary.tasks:
        console.print(f"no records{f' of {task}' if task else ''} {window} in {origin}")
    for task_stats in summary.tasks:
        out.rule(f"{task_stats.task} ({window}, UTC)")
        out.print(headline(task_stats))
        for text_table in task_tables(task_stats):
            table = Table(*text_table.headers, title=text_table.title)
            for row in text_table.rows:
                table.add_row(*row)
            out.print(table)
        if task_stats.task in catalog.names():
            for tier, psi in confidence_drift(task_stats.confidences,
                                              catalog.get(task_stats.task).confidence_reference).items():
                out.print(f"confidence drift of {tier} against the run its threshold was tuned on: PSI {psi:.3f} "
                          f"({drift_level(psi)})")
    if summary.undated:
        console.print(f"[yellow]{summary.undated} result records carry no finished_at and are in no day[/]")
    if html is not None:
        from shared.operations.dashboard import stats_page

        try:
            html.write_text(stats_page(summary, origin), encoding="utf-8")
        except OSError as exc:
            _stats_failed(f"{html}: {exc.strerror or exc}")
        console.print(f"stats page -> {html}")


@app.command()
def review(
    task: str,
    by: str = typer.Option(None, "--by", help="who decides (recorded in each correction; default: $USER)"),
) -> None:
    """Work through the task's review queue: accept the draft, correct it, reject it, or skip.

    Reads and writes the review/, results/ and corrections/ containers of the DataStorage account."""
    import getpass

    from shared.operations.review import ReviewQueue
    from shared.operations.stats_sources import interactive_store
    from shared.pipeline.blob_names import DATA_CONNECTION

    cascade = _cascade()
    spec = _task(cascade, task)
    try:
        queue = ReviewQueue(interactive_store(DATA_CONNECTION), cascade.tasks)
        pending = queue.pending(spec.name)
    except KeyError as exc:  # no storage connection configured
        console.print(f"[red]{exc.args[0]}[/]")
        raise typer.Exit(2)
    who = by or getpass.getuser()
    out = Console()
    out.print(f"{len(pending)} item(s) of {spec.name} wait in review")
    decided = 0
    for n, item in enumerate(pending, 1):
        out.rule(f"{n}/{len(pending)}")
        out.print(f"item {_shown(item.record.id)} from {_shown(item.source)}", highlight=False, markup=False)
        if item.text:
            out.print(_shown(item.text, keep="\n\t"), highlight=False, markup=False)
        else:
            out.print("[dim](the input's text was not found)[/]")
        attempts = Table("tier", "outcome", "answer", "confidence")
        for attempt in item.record.attempts:
            attempts.add_row(attempt.tier, attempt.outcome, json.dumps(attempt.answer, ensure_ascii=False),
                             f"{attempt.confidence:.2f}" if attempt.confidence is not None else "-")
        out.print(attempts)
        out.print(f"draft: {json.dumps(item.record.answer, ensure_ascii=False)}", highlight=False, markup=False)
        choice = typer.prompt("[a]ccept / [c]orrect / [r]eject / [s]kip / [q]uit", default="s").strip().lower()[:1]
        if choice == "q":
            break
        if choice not in ("a", "c", "r"):
            continue
        decision = {"a": "accept", "c": "correct", "r": "reject"}[choice]
        answer = _ask_answer(spec, item.record.answer) if decision == "correct" else None
        try:
            queue.decide(spec.name, item.record.id, decision, answer, by=who, source=item.source)
        except SmallfirstError as exc:
            console.print(f"[red]not recorded: {exc}[/]")
            continue
        decided += 1
        out.print(f"recorded: {decision}" + (f" -> {json.dumps(answer, ensure_ascii=False)}" if answer else ""))
    out.print(f"{decided} decision(s) recorded by {who}")


def _shown(value: str, keep: str = "") -> str:
    """`value` for a terminal: characters it would act on rather than show (line separators, controls) escaped,
    as a hostile id or text could otherwise break the lines a person reads."""
    return "".join(c if c.isprintable() or c in keep else c.encode("unicode_escape").decode("ascii") for c in value)


def _ask_answer(spec: AnyTask, draft: object) -> object:
    """A label by number or name, or an extraction field by field (Enter keeps the draft's value)."""
    if isinstance(spec, ClassificationTask):
        labels = spec.allowed_labels
        for n, label in enumerate(labels, 1):
            console.print(f"  {n}. {label}")
        while True:
            given = typer.prompt("label (number or name)").strip()
            if given.isdigit() and 1 <= int(given) <= len(labels):
                return labels[int(given) - 1]
            if given in labels:
                return given
            console.print(f"[red]{given!r} is not one of the {len(labels)} labels[/]")
    answer = dict(draft) if isinstance(draft, dict) else {}
    for field, schema in spec.json_schema.get("properties", {}).items():
        given = typer.prompt(f"{field}", default=str(answer.get(field, "")), show_default=True)
        if given != "":  # the schema's numbers are typed in as text
            kind = schema.get("type") if isinstance(schema, dict) else None
            try:
                answer[field] = int(given) if kind == "integer" else float(given) if kind == "number" else given
            except ValueError:
                answer[field] = given  # left for the task's validation to refuse, with its reason
    return answer


app.command()(smoke)  # after pulumi up (shared/cli/smoke.py)

if __name__ == "__main__":
    main()

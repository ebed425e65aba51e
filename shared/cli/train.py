"""The trained tier's heads: `train` (from labelled or production data), `retrain` (as the schedule does),
and `export-finetune` (chat-format files for fine-tuning the small tier)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.progress import Progress, TaskID

from shared.cli.common import (TASK_ARGUMENT, console, find_classification_task, find_task, load_cascade,
                               progress_bar)
from shared.core.cascade import Cascade
from shared.foundation.tasks import ClassificationTask, ExtractionTask

if TYPE_CHECKING:
    from shared.learning.classifier import FitProgress, FitStep


def train(
    task: str = TASK_ARGUMENT,
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

    cascade = load_cascade()
    spec = find_task(cascade, task)
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
    console.print("fitting: regularisation and word n-grams by cross-validation, then temperature and "
                  "out-of-scope threshold")
    with progress_bar() as progress:
        bar = progress.add_task(f"embedding {len(training)} examples", total=len(training))
        fitting = progress.add_task("fitting", total=None, visible=False)
        try:
            head = train_head(tier.heads.embedder_for(spec), training,
                              labels=[label.name for label in spec.labels],
                              none_label=spec.none_label if spec.allow_none else None,
                              none_reject_budget=spec.none_reject_budget,
                              none_recall_target=spec.none_recall_target, catch_all=spec.catch_all,
                              progress=lambda done, total: progress.update(bar, completed=done),
                              fit_progress=_fit_steps(progress, fitting))
        except ValueError as exc:
            console.print(f"[red]{exc}[/]")
            raise typer.Exit(1)
    artifact = save_head(tier.head_store, task=spec.name, classifier=head,
                         embedder=tier.heads.embedder_for(spec),
                         training_data=training.summary())
    metrics = artifact.cv_metrics
    console.print(f"{spec.name} head {artifact.version}: cross-validated accuracy {metrics.accuracy:.3f}, "
                  f"ECE {metrics.ece:.3f}, accuracy of the 80% most confident {metrics.selective_accuracy_80:.3f} "
                  f"({metrics.rows} examples) -> {tier.head_store.describe(f'{spec.name}/{artifact.version}')}")
    if (reject_label := artifact.none_label or artifact.catch_all) is not None:
        recall = "n/a (no none examples)" if metrics.oos_recall is None else f"{metrics.oos_recall:.3f}"
        console.print(f"out of scope ({reject_label}): threshold {artifact.oos_threshold or 0.0:.3f} "
                      f"({artifact.oos_threshold_rule}); cross-validated in-scope accuracy "
                      f"{metrics.inscope_accuracy:.3f}, {reject_label} recall {recall}")
    if artifact.novelty_neighbours is not None:
        console.print(f"confidence drops off-distribution: calibrated on nearness to the {artifact.novelty_neighbours} "
                      "nearest training examples of the answered label")
    if activate:
        _activate_head(cascade, tier, spec.name, artifact.version)


def retrain(
    task: str = TASK_ARGUMENT,
    days: Optional[int] = typer.Option(None, "--days", min=1, max=36_500, help="production data of the last N days "
                                                                    "(default: SMALLFIRST_RETRAIN_DAYS)"),
) -> None:
    """Retrain a task's head now, as the scheduled function does: from the frontier's answers and people's
    corrections in DataStorage (plus the head store's gold rows), a challenger judged against the active head on a
    held-out slice and promoted only if it is not worse; the decision is recorded either way."""
    from shared.foundation.storage_connections import blob_service
    from shared.learning.retrain import describe
    from shared.pipeline.retraining import retrain_scheduled

    cascade = load_cascade()
    find_classification_task(cascade, task, " (the trained tier's extraction heads learn from labelled rows: "
                                            "smallfirst train TASK --data ...)")
    console.print(f"retraining {task}: reading production data, fitting a challenger, judging it against the "
                  "active head")
    with progress_bar() as progress:
        bar = progress.add_task(f"reading and embedding the production data of {task}", total=None)
        [outcome] = retrain_scheduled(cascade, blob_service("DataStorage"), tasks=[task], days=days,
                                      fit_progress=_fit_steps(progress, bar))
    _print_sources(outcome.sources)
    console.print(f"{task}: {describe(outcome)}")
    if outcome.decision is None:
        raise typer.Exit(1)


def _fit_steps(progress: Progress, bar: TaskID) -> FitProgress:
    """Each step of fitting on ``bar``; a line each where no bar is drawn (a log or a pipe)."""
    def fitted(step: FitStep) -> None:
        progress.update(bar, completed=step.done, total=step.total, visible=True,
                        description=f"fitting: {step.describe()}")
        if progress.disable:
            console.print(f"fitting {step.done}/{step.total}: {step.describe()}")
    return fitted


def _print_sources(reports) -> None:
    """What each source of training examples gave, and what it skipped and why (shared/learning/training_data.py)."""
    for source, report in reports.items():
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items())) or "none"
        console.print(f"{source}: {report.used} examples; skipped: {skipped}")


def _activate_head(cascade: Cascade, tier, task: str, version: str) -> None:
    """An activation record in the head store; with local heads the task file also names the head it ships with."""
    from shared.foundation.task_files import update_task_file
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

    from shared.learning.training_data import TrainingSet, read_labelled_jsonl
    from shared.pipeline.retraining import training_examples

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
    storage = None
    if from_storage:
        from shared.foundation.storage_connections import blob_service

        storage = blob_service("DataStorage")
    gathered = training_examples(spec, cascade.settings, since=since, gold=gold, results=from_results,
                                 inputs=inputs, corrections=corrections, storage=storage)
    if gold:
        console.print(f"gold: {len(gold)} rows from {data}")
    _print_sources(gathered.production.reports)
    training = TrainingSet(gathered.examples)
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
            tagger = train_extraction_head(tier.heads.embedder_for(spec), rows, schema=spec.json_schema,
                                           progress=lambda done, total: progress.update(bar, completed=done, total=total))
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1)
    artifact = save_extraction_head(tier.head_store, task=spec.name, tagger=tagger,
                                    embedder=tier.heads.embedder_for(spec),
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


def export_finetune(
    task: str = TASK_ARGUMENT,
    data: Path = typer.Option(..., "--data", exists=True, dir_okay=False, help='labelled .jsonl: {"id","text","label"}'),
    out: Path = typer.Option(..., "--out", file_okay=False, help="folder for train.jsonl and validation.jsonl"),
) -> None:
    """Labelled items as chat-format fine-tuning files: the small tier's own prompt, then the right label."""
    from shared.core.prompts import classification_messages
    from shared.learning.finetune_export import export_finetune_jsonl
    from shared.learning.training_data import read_labelled_jsonl

    cascade = load_cascade()
    spec = find_classification_task(cascade, task, ": fine-tuning files are written for classification")
    try:
        written = export_finetune_jsonl(read_labelled_jsonl(data), out, allowed_labels=spec.allowed_labels,
                                        prompt=lambda text: classification_messages(spec, text, json_answer=True))
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1)
    console.print(f"{written.train_rows} training rows -> {written.train_path}; "
                  f"{written.validation_rows} validation rows -> {written.validation_path}")

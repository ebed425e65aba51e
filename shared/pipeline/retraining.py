"""What the trained tier learns from production, and scheduled retraining: gathered here, trained by learning.

``training_examples`` gathers, for `smallfirst train` and scheduled retraining alike, the gold rows plus what
production taught: the task's frontier's answers in result records (the frontier by the policy's `frontier_of`)
and people's corrections, from local files or storage (production_data.py). ``retrain_scheduled`` (called by
functions/retrain.py) retrains each task in ``SMALLFIRST_RETRAIN_TASKS`` from the last ``SMALLFIRST_RETRAIN_DAYS``
in storage with the cascade's trained tier's head stores and each task's embedder (shared/learning/retrain.py's
``retrain_each``, champion/challenger).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from shared.core.policy import frontier_of
from shared.foundation.tasks import ClassificationTask
from shared.learning.classifier import FitProgress
from shared.learning.retrain import RetrainOutcome, retrain_each
from shared.learning.training_data import BuildReport, LabelledExample
from shared.pipeline.production_data import ProductionExamples, from_files, from_storage

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

    from shared.core.cascade import Cascade
    from shared.core.config import Settings


@dataclass
class TrainingExamples:
    """Gold rows and production examples, not yet de-duplicated, with what each production source gave and
    skipped."""

    gold: list[LabelledExample]
    production: ProductionExamples

    @property
    def examples(self) -> list[LabelledExample]:
        return [*self.gold, *self.production.examples]

    @property
    def sources(self) -> dict[str, BuildReport]:
        return {"gold": BuildReport(used=len(self.gold)), **self.production.reports}


def training_examples(task: ClassificationTask, settings: Settings, *, since: datetime | None,
                      gold: Sequence[LabelledExample] = (), results: Sequence[Path] = (),
                      inputs: Sequence[Path] = (), corrections: Sequence[Path] = (),
                      storage: BlobServiceClient | None = None) -> TrainingExamples:
    """``gold`` plus what production taught since ``since``: the task's frontier's answers in result records and
    people's corrections, from local files (``results`` joined to the texts of ``inputs``, ``corrections``), from
    the results/ and corrections/ containers of ``storage``, or both."""
    frontier = [name for name in [frontier_of(task, settings.tiers)] if name]
    production = ProductionExamples()
    if results or corrections:
        production = from_files(task.name, results=results, inputs=inputs, corrections=corrections,
                                frontier_tiers=frontier, allowed_labels=task.allowed_labels, since=since)
    if storage is not None:
        production.extend(from_storage(storage, task.name, frontier_tiers=frontier,
                                       allowed_labels=task.allowed_labels, since=since))
    return TrainingExamples(gold=list(gold), production=production)


def retrain_scheduled(cascade: Cascade, service: BlobServiceClient, now: datetime | None = None, *,
                      tasks: Sequence[str] | None = None, days: int | None = None,
                      fit_progress: FitProgress | None = None) -> list[RetrainOutcome]:
    """Retrain each of ``tasks`` (default: the setting ``retrain_tasks``) from the last ``days`` (default:
    ``retrain_days``) of production data in ``service``, each step of fitting logged and told to ``fit_progress``
    if given (`smallfirst retrain`'s bar). A task that cannot be retrained is logged and reported, and the others
    go on."""
    settings = cascade.settings
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days or settings.retrain_days)
    tier = cascade.tiers.get("trained")
    return retrain_each(
        settings.retrain_tasks if tasks is None else tasks, task_of=cascade.tasks.get,
        examples_of=lambda task, gold: training_examples(task, settings, since=since, gold=gold, storage=service),
        embedder_for=tier.heads.embedder_for, store=tier.head_store, task_file_store=tier.task_file_store,
        fit_progress=fit_progress)

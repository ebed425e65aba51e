"""Retraining with champion/challenger promotion: a new head replaces the active one only if it is not worse.

One retrain of a task: de-duplicate the examples (gold, frontier answers, corrections), hold out a slice, train a
challenger on the rest, score the challenger and the active head (the champion) on the held-out slice, apply the
promotion gate (promotion.py), record the decision in the head store, and only if it passes save the challenger
and activate it (activation.py); the trained tier picks it up within its refresh interval.

The slice is chosen by text hash (one text in ``holdout_every``), not at random: a text held out once is held out in
every retrain, so a champion made by an earlier retrain never trained on the slice it is judged on.

``retrain_each`` does this for several tasks with the stores and each task's embedder it is given (the trained
tier's), from the gold rows the operator placed in the head store as ``<task>/gold.jsonl``, if any, plus what its
caller gathers.
Scheduled retraining (shared/pipeline/retraining.py, called by functions/retrain.py) gathers the results and
corrections of the last ``SMALLFIRST_RETRAIN_DAYS`` in storage; this module reads no production data and knows no
cascade.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, Protocol

from pydantic import BaseModel

from shared.foundation.tasks import AnyTask, ClassificationTask
from shared.foundation.text_files import decode_text
from shared.learning.activation import active_head, activate
from shared.learning.artifact import HeadExpectation, HeadMismatchError, load_head, new_version, save_head
from shared.learning.classifier import EmbeddingClassifier, FitProgress, FitStep, log_fit_step
from shared.learning.embedders.base import Embedder
from shared.learning.promotion import PromotionDecision, promotion_gate, record_decision
from shared.learning.stores import ArtifactNotFoundError, ArtifactStore
from shared.learning.training import Progress, embed_in_batches, train_head
from shared.learning.training_data import (
    BuildReport,
    LabelledExample,
    TrainingDataSummary,
    TrainingSet,
    parse_labelled_jsonl,
)


class GatheredExamples(Protocol):
    """What a task's retraining learns from (pipeline/retraining.py gathers it), and each source's report."""

    @property
    def examples(self) -> list[LabelledExample]: ...

    @property
    def sources(self) -> dict[str, BuildReport]: ...

log = logging.getLogger(__name__)
HOLDOUT_EVERY = 5  # one text in five is held out
GOLD_KEY = "{task}/gold.jsonl"  # gold rows for scheduled retraining, in the head store
Fit = Callable[..., EmbeddingClassifier]  # train_head's signature


class RetrainOutcome(BaseModel):
    task: str
    training_data: TrainingDataSummary | None = None
    sources: dict[str, BuildReport] = {}  # what each source gave and skipped
    decision: PromotionDecision | None = None
    decision_key: str | None = None
    activated: str | None = None  # the version made active, when the challenger was promoted
    not_trained: str | None = None  # why no challenger was trained


def split_holdout(training: TrainingSet, every: int = HOLDOUT_EVERY) -> tuple[TrainingSet, TrainingSet]:
    """(the examples to train on, the held-out slice), by text hash."""
    held = [int(e.text_hash[:8], 16) % every == 0 for e in training.examples]
    return (TrainingSet(e for e, h in zip(training.examples, held) if not h),
            TrainingSet(e for e, h in zip(training.examples, held) if h))


def _champion(task: ClassificationTask, embedder: Embedder, store: ArtifactStore,
              task_file_store: ArtifactStore) -> tuple[EmbeddingClassifier | None, str | None]:
    active = active_head(store, task.name, task.trained_head, task_file_store)
    if active is None:
        return None, None
    expect = HeadExpectation.of(embedder, [label.name for label in task.labels],
                                task.none_label if task.allow_none else None)
    try:
        return load_head(active.store, task.name, active.version, expect).classifier, active.version
    except (HeadMismatchError, ArtifactNotFoundError) as exc:  # it cannot answer this task: nothing to defend
        log.warning("retrain %s: the active head %s is unusable, judged as no head: %s", task.name, active.version, exc)
        return None, None


def retrain(
    task: ClassificationTask,
    examples: Iterable[LabelledExample],
    *,
    embedder: Embedder,
    store: ArtifactStore,
    task_file_store: ArtifactStore,
    fit: Fit = train_head,
    holdout_every: int = HOLDOUT_EVERY,
    min_slice: int = 50,
    progress: Progress | None = None,
    fit_progress: FitProgress | None = None,
) -> RetrainOutcome:
    """Train a challenger on ``examples`` and promote it into ``store`` only if the gate passes. Each step of
    fitting is logged, and told to ``fit_progress`` too if given (a command's progress bar)."""
    training = TrainingSet(examples)
    train_part, held_out = split_holdout(training, holdout_every)
    outcome = RetrainOutcome(task=task.name, training_data=training.summary())
    if len(held_out) < min_slice:
        outcome.not_trained = (f"{len(training)} examples give a held-out slice of {len(held_out)}, "
                               f"fewer than the {min_slice} needed to judge a challenger")
        return outcome
    try:
        challenger = fit(embedder, train_part, labels=[label.name for label in task.labels],
                         none_label=task.none_label if task.allow_none else None,
                         none_reject_budget=task.none_reject_budget, none_recall_target=task.none_recall_target,
                         catch_all=task.catch_all, progress=progress, fit_progress=_logged(fit_progress))
    except ValueError as exc:  # e.g. a label with no examples outside the slice
        outcome.not_trained = str(exc)
        return outcome
    champion, champion_version = _champion(task, embedder, store, task_file_store)
    version = new_version()
    decision = promotion_gate(
        task=task.name, candidate=challenger, candidate_version=version, active=champion,
        active_version=champion_version, X=embed_in_batches(embedder, held_out.texts), texts=held_out.texts,
        gold=held_out.labels,
        slice_source=(f"{len(held_out)} of {len(training)} examples held out (one text in {holdout_every} by text "
                      f"hash), training data sha256 {training.sha256()}"),
        min_slice=min_slice)
    outcome.decision, outcome.decision_key = decision, record_decision(store, decision)
    if decision.promote:
        save_head(store, task=task.name, classifier=challenger, embedder=embedder,
                  training_data=train_part.summary(), version=version)
        activate(store, task.name, version, reason=decision.reason, decision=outcome.decision_key)
        outcome.activated = version
    return outcome


def _logged(fit_progress: FitProgress | None) -> FitProgress:
    """The log of each fitting step (the scheduled retrain's), then ``fit_progress`` if given."""
    if fit_progress is None:
        return log_fit_step

    def both(step: FitStep) -> None:
        log_fit_step(step)
        fit_progress(step)
    return both


def gold_examples(store: ArtifactStore, task: str) -> list[LabelledExample]:
    key = GOLD_KEY.format(task=task)
    try:
        data = store.read(key)
    except ArtifactNotFoundError:
        return []
    return parse_labelled_jsonl(decode_text(data, store.describe(key)), store.describe(key))


def retrain_each(names: Iterable[str], *, task_of: Callable[[str], AnyTask],
                 examples_of: Callable[[ClassificationTask, list[LabelledExample]], GatheredExamples],
                 embedder_for: Callable[[AnyTask], Embedder], store: ArtifactStore,
                 task_file_store: ArtifactStore, fit_progress: FitProgress | None = None) -> list[RetrainOutcome]:
    """Retrain each named task with the stores given and its embedder: its gold rows in ``store`` plus what
    ``examples_of(task, gold)`` gathers, each fitting step logged and told to ``fit_progress`` if given. A task
    that cannot be retrained is logged and reported, and the others go on."""
    outcomes = []
    for name in names:
        try:
            task = task_of(name)
            if not isinstance(task, ClassificationTask):
                outcomes.append(RetrainOutcome(task=name, not_trained=f"{task.kind} task: the trained tier classifies"))
                log.warning("retrain %s: %s", name, outcomes[-1].not_trained)
                continue
            gathered = examples_of(task, gold_examples(store, name))
            outcome = retrain(task, gathered.examples, embedder=embedder_for(task), store=store,
                              task_file_store=task_file_store, fit_progress=fit_progress)
            outcome.sources = gathered.sources
        except Exception as exc:  # one task's failure (storage, data, task file) must not stop the others
            log.exception("retrain %s failed", name)
            outcome = RetrainOutcome(task=name, not_trained=f"failed: {type(exc).__name__}: {exc}")
        log.info("retrain %s: %s", name, describe(outcome))
        outcomes.append(outcome)
    return outcomes


def describe(outcome: RetrainOutcome) -> str:
    if outcome.decision is None:
        return f"not trained: {outcome.not_trained}"
    verdict = f"promoted, {outcome.activated} active" if outcome.activated else "kept the active head"
    return f"{verdict} ({outcome.decision.reason}); decision {outcome.decision_key}"

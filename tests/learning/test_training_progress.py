"""Training talks: train_head, as the scheduled retrain calls it (no callback), logs every step of fitting."""

from __future__ import annotations

import logging

from shared.learning.training import CALIBRATION_REPEATS, train_head
from shared.learning.training_data import LabelledExample, TrainingSet

LABELS = ["account", "billing", "other", "technical"]


def test_train_head_without_a_callback_logs_each_fold_c_and_phase_of_fitting(embedder, support_tickets, caplog):
    training = TrainingSet(LabelledExample(text=r["text"], label=r["label"], provenance="gold")
                           for r in support_tickets["train"])
    with caplog.at_level(logging.INFO, logger="shared.learning.classifier"):
        head = train_head(embedder, training, labels=LABELS)
    steps = [r.getMessage() for r in caplog.records if r.name == "shared.learning.classifier"]
    tried = head.cv_metrics_.cv_accuracy_by_c
    folds = head.cv_metrics_.folds
    searched = [step for step in steps if "fold assignment" not in step]
    for key in tried:  # every (C, view) cross-validated, on every fold
        for fold in range(1, folds + 1):
            assert sum(f"C = {key}, fold {fold}/{folds}" in step for step in searched) == 1, (key, fold, steps)
    chosen = next(key for key in tried if steps[-1].endswith(f"final fit, C = {key}"))
    for assignment in range(2, CALIBRATION_REPEATS + 1):  # the chosen one again on each fold assignment
        assert sum(f"C = {chosen}, fold {fold}/{folds}, fold assignment {assignment}/{CALIBRATION_REPEATS}" in step
                   for step in steps for fold in range(1, folds + 1)) == folds
    assert any("vocabulary, fold 1/" in step for step in steps)
    finished = [step for step in steps if "iteration" not in step]  # a long final fit also says it is at work
    assert [step.split(": ", 1)[1].split(",")[0] for step in finished[-2:]] == ["temperature", "final fit"]
    assert finished[-1].startswith(f"fitting a head, step {len(finished)}/{len(finished)}:")

"""support_ticket on texts unlike its training set (issue 29, parts 2 and 3), before and after, in one run.

Heads, each scored on dev.jsonl (English), multilingual_dev.jsonl and shifted_dev.jsonl (other phrasing, domains,
languages, mixed intents; tasks/data/support_ticket/README.md):
- before: the head shipped until now (models/support_ticket, MiniLM, the 240 original training rows), today's rule
  (confidence = the temperature-scaled probability);
- the same rule fitted on the widened training data (390 rows), with MiniLM and with USE-m;
- USE-m with the catch-all threshold: the best non-catch-all label's confidence below a threshold chosen on
  out-of-fold data by a catch-all recall target answers the catch-all (classifier.py's none machinery);
- USE-m with the novelty calibrator (shared/learning/novelty.py): confidence = P(right | logit p, mean cosine to the
  5 nearest training examples of the answered label), fitted on out-of-fold data; with and without the catch-all.
Heads are fitted as `smallfirst train` fits them (EmbeddingClassifier with word n-grams tried by cross-validation).

Columns: accuracy; ECE; AUROC of confidence separating right from wrong answers; catch-all (`other`) recall; two
thresholds tuned on the tuning run, dev.jsonl + multilingual_dev.jsonl (216 items, as `smallfirst tune --tier
trained --target 0.97` would be given them) and, at each, the share of the set accepted and their accuracy:
"point", the lowest at which the run's accepted answers are >= 97% accurate, and "CP95", `tune`'s rule (the lowest
whose accepted answers a one-sided Clopper-Pearson bound shows >= 97% with 95% confidence, fixed sequence;
shared/evaluation/guarantees.py; "-" where none passes); "cover@97": the largest share of the set whose most
confident answers are >= 97% accurate (what the best threshold for this very set could give).

    nice -n 5 .venv/bin/python -m bench.bench_off_distribution | tee bench/results/off_distribution.txt
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from shared.evaluation.guarantees import select_accepted
from shared.foundation.metrics import expected_calibration_error
from shared.foundation.tasks import ClassificationTask
from shared.learning.artifact import HeadExpectation, load_head
from shared.learning.calibration import choose_recall_threshold, softmax
from shared.learning.classifier import EmbeddingClassifier
from shared.learning.embedders import LocalMiniLM, LocalUSEMultilingual
from shared.learning.lexical import NGRAM_RANGE
from shared.learning.novelty import NoveltyCalibrator, fit_novelty, held_out_similarity
from shared.learning.stores import LocalFolderStore
from shared.learning.training import embed_in_batches

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tasks/data/support_ticket"
SETS = ("dev", "multilingual_dev", "shifted_dev")
TUNING = ("dev", "multilingual_dev")
OLD_HEAD = "20261123T204049.592929Z"
OLD_TRAIN_ROWS = 240  # the original split: st-train-001..240
TARGET = 0.97


def rows(name: str) -> list[dict]:
    return [json.loads(line) for line in (DATA / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()]


@dataclass
class Answers:
    labels: np.ndarray
    confidence: np.ndarray


def point_threshold(confidence: np.ndarray, right: np.ndarray) -> float:
    """The lowest confidence at which the answers at or above it are >= TARGET accurate (1.0 if none is)."""
    for t in np.unique(confidence):
        if right[confidence >= t].mean() >= TARGET:
            return float(t)
    return 1.0


def tuned_thresholds(answers: dict[str, Answers], gold: dict[str, np.ndarray]) -> tuple[float, float | None]:
    """(point, CP95) on the tuning run: the English and multilingual dev sets together."""
    confidence = np.concatenate([answers[name].confidence for name in TUNING])
    right = np.concatenate([answers[name].labels == gold[name] for name in TUNING])
    chosen = select_accepted(confidence, right, TARGET, 0.95).chosen
    return point_threshold(confidence, right), (chosen.threshold if chosen else None)


def cover_at_target(answers: Answers, gold: np.ndarray) -> float:
    right = (answers.labels == gold)[np.argsort(-answers.confidence, kind="stable")]
    running = np.cumsum(right) / np.arange(1, len(right) + 1)
    ok = np.flatnonzero(running >= TARGET)
    return (ok.max() + 1) / len(right) if ok.size else 0.0


def at(threshold: float | None, answers: Answers, right: np.ndarray) -> str:
    if threshold is None:
        return f"{'-':>6s} {'-':>6s} {'-':>6s}"
    accepted = answers.confidence >= threshold
    accuracy = right[accepted].mean() if accepted.any() else float("nan")
    return f"{threshold:6.3f} {accepted.mean():6.3f} {accuracy:6.3f}"


def line(name: str, answers: Answers, gold: np.ndarray, thresholds: tuple[float, float | None],
         catch_all: str) -> str:
    right = answers.labels == gold
    auroc = roc_auc_score(right, answers.confidence) if 0 < right.sum() < len(right) else float("nan")
    return (f"  {name:17s} {right.mean():6.3f} {expected_calibration_error(answers.confidence, right):6.3f} "
            f"{auroc:6.3f} {np.mean(answers.labels[gold == catch_all] == catch_all):7.3f}  "
            f"{at(thresholds[0], answers, right)}  {at(thresholds[1], answers, right)} "
            f"{cover_at_target(answers, gold):8.3f}")


def by_shift(answers: Answers, gold: np.ndarray, shifts: list[str]) -> str:
    right = answers.labels == gold
    kinds = sorted(set(shifts))
    return "  shifted by kind: " + ", ".join(
        f"{kind} {right[[s == kind for s in shifts]].mean():.3f} ({shifts.count(kind)})" for kind in kinds)


class NoveltyHead:
    """A fitted EmbeddingClassifier with the novelty calibrator and, optionally, the catch-all threshold on it."""

    def __init__(self, head: EmbeddingClassifier, X: np.ndarray, labels: list[str], catch_all: str,
                 recall_target: float | None) -> None:
        self.head = head
        targets = np.searchsorted(head.classes_, np.asarray(labels, dtype=object))
        folds = min(head.cv_folds, int(np.bincount(targets).min()))  # as EmbeddingClassifier.fit splits
        splits = list(StratifiedKFold(folds, shuffle=True, random_state=head.random_state).split(X, targets))
        oof = softmax(head.oof_logits_, head.temperature_)
        self.calibrator: NoveltyCalibrator = fit_novelty(X, targets, oof, splits)
        self.catch_all_column = int(np.flatnonzero(head.classes_ == catch_all)[0])
        self.threshold = 0.0
        if recall_target is not None:
            similarity = held_out_similarity(X, targets, splits, oof.shape[1])
            best = self._best_confidence(oof, similarity)
            is_catch_all = targets == self.catch_all_column
            self.threshold = choose_recall_threshold(best[is_catch_all],
                                                     oof.argmax(axis=1)[is_catch_all] == self.catch_all_column,
                                                     recall_target)

    def _best_confidence(self, probabilities: np.ndarray, similarity: np.ndarray) -> np.ndarray:
        masked = probabilities.copy()
        masked[:, self.catch_all_column] = -1.0
        return self.calibrator.confidence(probabilities, similarity, masked.argmax(axis=1))

    def answer(self, X: np.ndarray, texts: list[str]) -> Answers:
        probabilities = self.head.predict_proba(X, texts)
        similarity = self.calibrator.similarity(X, probabilities.shape[1])
        top = probabilities.argmax(axis=1)
        labels = self.head.classes_[top].astype(object)
        confidence = self.calibrator.confidence(probabilities, similarity, top)
        best = self._best_confidence(probabilities, similarity)
        reject = (best < self.threshold) & (top != self.catch_all_column)
        labels[reject] = self.head.classes_[self.catch_all_column]
        return Answers(labels, np.where(reject, 1.0 - best, confidence))


def main() -> None:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    print(f"# bench_off_distribution  {time.strftime('%Y-%m-%d %H:%M')}  commit {commit.strip()}  "
          f"python {platform.python_version()}  one thread per embedder")
    task = ClassificationTask.model_validate(yaml.safe_load((REPO / "tasks/support_ticket.yaml").read_text("utf-8")))
    catch_all = task.catch_all or "other"
    train = rows("train")
    data = {name: rows(name) for name in SETS}
    gold = {name: np.asarray([r["label"] for r in data[name]], dtype=object) for name in SETS}
    texts = {name: [r["text"] for r in data[name]] for name in SETS}
    shifts = [r["shift"] for r in data["shifted_dev"]]
    print(f"train {len(train)} rows ({OLD_TRAIN_ROWS} before widening); "
          + ", ".join(f"{name} {len(data[name])}" for name in SETS) + f"; catch-all '{catch_all}'")

    embedders = {"minilm": LocalMiniLM(threads=1), "use_m": LocalUSEMultilingual(threads=1)}
    embedded = {key: {name: embed_in_batches(e, texts[name], batch_size=64) for name in SETS}
                | {"train": embed_in_batches(e, [r["text"] for r in train], batch_size=64)}
                for key, e in embedders.items()}

    def fitted(key: str, n_rows: int, **kwargs) -> EmbeddingClassifier:
        part = train[:n_rows]
        return EmbeddingClassifier(word_ngrams=NGRAM_RANGE, **kwargs).fit(
            embedded[key]["train"][:n_rows], [r["label"] for r in part], texts=[r["text"] for r in part])

    def plain(head: EmbeddingClassifier, key: str):
        return lambda name: Answers(*(lambda p: (np.asarray(p.labels, dtype=object), p.confidence))(
            head.predict_with_confidence(embedded[key][name], texts[name])))

    shipped = load_head(LocalFolderStore(REPO / "models"), "support_ticket", OLD_HEAD,
                        HeadExpectation.of(embedders["minilm"], [label.name for label in task.labels]))
    use_head = fitted("use_m", len(train))
    X_use, y_train = embedded["use_m"]["train"], [r["label"] for r in train]
    variants = {
        "before: shipped head (MiniLM, 240 rows), today's rule": plain(shipped.classifier, "minilm"),
        f"MiniLM, {len(train)} rows, today's rule": plain(fitted("minilm", len(train)), "minilm"),
        f"USE-m, {len(train)} rows, today's rule": plain(use_head, "use_m"),
    }
    for target in (0.9, 0.95):
        catch = NoveltyHead(use_head, X_use, y_train, catch_all, target)
        variants[f"USE-m, {len(train)} rows, novelty + catch-all recall {target:g} (threshold {catch.threshold:.3f})"] = (
            lambda name, catch=catch: catch.answer(embedded["use_m"][name], texts[name]))
    novelty = NoveltyHead(use_head, X_use, y_train, catch_all, None)
    print(f"novelty calibrator (USE-m): logit(p) x {novelty.calibrator.coef[0]:.3f}, "
          f"similarity x {novelty.calibrator.coef[1]:.3f}, margin x {novelty.calibrator.coef[2]:.3f}, "
          f"bias {novelty.calibrator.coef[3]:.3f}")
    variants[f"USE-m, {len(train)} rows, novelty calibrator"] = lambda name: novelty.answer(embedded["use_m"][name], texts[name])

    print(f"\n  {'':17s} {'':6s} {'':6s} {'':6s} {'':7s}  {'point: thr, accept, acc':>20s}  "
          f"{'CP95: thr, accept, acc':>20s}\n  {'set':17s} {'acc':>6s} {'ECE':>6s} {'AUROC':>6s} {'other-R':>7s}  "
          f"{'thr':>6s} {'accept':>6s} {'acc':>6s}  {'thr':>6s} {'accept':>6s} {'acc':>6s} {'cover@97':>8s}")
    for title, answer in variants.items():
        print(title)
        answers = {name: answer(name) for name in SETS}
        thresholds = tuned_thresholds(answers, gold)
        for name in SETS:
            print(line(name, answers[name], gold[name], thresholds, catch_all))
        print(by_shift(answers["shifted_dev"], gold["shifted_dev"], shifts))


if __name__ == "__main__":
    main()

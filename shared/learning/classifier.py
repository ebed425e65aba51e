"""Classifier heads over embeddings: a calibrated logistic regression, and a zero-shot head for tasks not trained yet.

EmbeddingClassifier (scikit-learn style: fit / predict_proba / predict, parameters explicit in __init__):
1. C, the inverse regularisation strength, is chosen from ``Cs`` by stratified k-fold cross-validation on the training
   data (highest mean accuracy; the smaller C on a tie).
2. The out-of-fold logits of that C -- every training row scored by a model that did not see it -- are the held-out
   data for everything fitted after training: the temperature (minimising their NLL), the out-of-scope threshold and
   the cross-validated metrics recorded in the artifact. No dev or test data is touched.
3. The final multinomial logistic regression is refitted on all the training data with that C.
Folds are drawn over the rows in an order of their own content (``content_order``), so the same examples give the
same head whatever order they come in. A head with a novelty calibrator (below) repeats step 2 over
``calibration_repeats`` fold assignments and fits its temperature, calibrator and threshold on all of them stacked:
from one assignment they swung with it (support_ticket: temperature 0.50-0.97 over five seeds).
Confidence = the temperature-scaled probability of the answered label. Answering is head.py's ``LinearHead`` (numpy
alone); this module imports scikit-learn, scipy and joblib only inside ``fit``.

Fitting fast (issue 29: 15,100 CLINC150 rows took over 10 minutes on 2 cores). The regression is scikit-learn's
LogisticRegression objective (multinomial cross-entropy averaged over rows plus ||W||^2 / (2 C n), intercept not
penalised, L-BFGS-B with its options; sklearn/linear_model/_logistic.py) minimised here over the embedding as a
dense block and the n-grams as a sparse one: LogisticRegression takes one matrix, and the 384 dense columns stored
as CSR beside the n-grams cost ~1 s an iteration in scalar sparse products instead of a BLAS call. C is searched
from the middle of the grid outwards (``_c_search``), not over all of it. With more than FEW_FOLDS_ABOVE rows the
search runs on 3 folds, and only the chosen (view, C) on all ``cv_folds`` for the out-of-fold logits of step 2 (a
threshold chosen on 3-fold logits cost CLINC150 a point of in-scope accuracy). The fits run in parallel
(``n_jobs``). ``progress`` hears of every step: each fold's vocabulary, each (view, C, fold) fit, the temperature,
the threshold and the final fit; without a callback the steps are logged.

With ``word_ngrams`` set, step 1 also tries the regression over the texts' word n-gram TF-IDF (lexical.py) beside the
embedding, for each C: one weight row per class over both, the vocabulary fitted on each fold's training part. The
cross-validated accuracy decides between the two as it decides C (on a tie, the embedding alone): the n-grams pay
on Banking77 (10,000 examples) and not on the 434 support tickets. A head that uses them needs the texts as well as
their embeddings wherever it predicts.

Out of scope, for tasks with a ``none_label``: when the training data has examples of it, the none label stays a
class *and* a max-probability threshold is chosen (a class alone misses most out-of-scope items; the class plus a
threshold beats a threshold alone); without examples, the threshold alone. The threshold rule is
calibration.choose_reject_threshold: at most ``max_inscope_reject`` of in-scope held-out rows may end as none. With
``min_none_recall`` set and at least MIN_NONE_ROWS_FOR_RECALL held-out none rows, it is
calibration.choose_recall_threshold instead: the lowest threshold at which that share of them ends as none (the
requirement stated where it is felt, on out-of-scope items; the budget rule is the fallback without such rows).
An item rejected by the threshold is answered none with confidence 1 - p(best label): under calibrated
probabilities, the chance that the best in-scope label would have been wrong.

A ``catch_all`` label (a task's `other`, one of its labels) is treated as the none label is: it stays a class, and a
threshold chosen by the same rules (``min_none_recall`` on its held-out rows, else the budget) answers it for an
item whose best other label is not sure enough, rather than forcing that item into the nearest label.

With ``novelty_max_rows`` (train_head sets it) and at most that many training rows, confidence also drops
off-distribution: novelty.py's calibrator, fitted on the out-of-fold probabilities and the rows' similarity to their
fold's training part, turns (probability, nearness to the label's training examples) into the chance the answer is
right; the threshold is chosen on that confidence. Above that many rows the head answers by probability alone
(storing and searching every training embedding costs more there, and Banking77 and CLINC150 are tuned without it).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from shared.errors import some_of
from shared.foundation.metrics import expected_calibration_error, macro_f1, selective_accuracy
from shared.learning.calibration import choose_recall_threshold, choose_reject_threshold, fit_temperature, softmax
from shared.learning.embedders.base import Embedder, l2_normalise
from shared.learning.head import LinearHead, Predictions, best_in_scope, label_confidence, none_column_of
from shared.learning.lexical import WordNgrams
from shared.learning.novelty import NoveltyCalibrator, fit_novelty, held_out_similarity

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

log = logging.getLogger(__name__)

TRAINED_CONFIDENCE_METHOD = "temperature-scaled logistic regression probability"
NOVELTY_CONFIDENCE_METHOD = ("calibrated chance the label is right, from its temperature-scaled probability and its "
                             "nearness to the label's training examples")
ZERO_SHOT_CONFIDENCE_METHOD = "zero-shot cosine similarity, shrunk towards uniform"
# Fewer held-out none rows than this measure a recall too coarsely (one row is more than 5%) to set a threshold by.
MIN_NONE_ROWS_FOR_RECALL = 20
# Above this many rows the search over C uses FEW_FOLDS: each fold still trains on thousands of rows, and the grid
# costs about half of five folds (bench/results/training.txt).
FEW_FOLDS_ABOVE, FEW_FOLDS = 5000, 3
LBFGS_TOLERANCE = 1e-4  # LogisticRegression's default tol
REPORT_EVERY_S = 5.0  # how often a long step (the final fit) says it is still at work


class CrossValidatedMetrics(BaseModel):
    """Out-of-fold figures of the chosen C, after temperature scaling and the out-of-scope threshold."""

    folds: int
    rows: int
    accuracy: float
    macro_f1: float
    ece: float
    ece_before_temperature: float
    selective_accuracy_80: float
    cv_accuracy_by_c: dict[str, float]  # "10": the embedding alone with C = 10; "10 + words 1-2": with word n-grams
    inscope_accuracy: float | None = None
    oos_recall: float | None = None


@dataclass(frozen=True)
class FitStep:
    """A step of fitting just finished, the ``done``-th of ``total``: for a progress display."""

    phase: str  # "vocabulary", "cross-validation", "temperature", "threshold" or "final fit"
    done: int
    total: int
    fold: int | None = None  # 1-based, of ``folds``
    folds: int | None = None
    C: float | None = None
    view: tuple[int, int] | None = None  # the word n-grams read beside the embedding
    iteration: int | None = None  # of the final fit's optimiser, while it runs (the step is not done yet)
    assignment: int | None = None  # 1-based, of ``assignments``: a novelty head's repeated fold assignments
    assignments: int | None = None

    def describe(self) -> str:
        parts = [self.phase]
        if self.C is not None:
            parts.append(f"C = {_grid_key(self.view, self.C)}")
        if self.fold is not None:
            parts.append(f"fold {self.fold}/{self.folds}")
        if self.assignment is not None:
            parts.append(f"fold assignment {self.assignment}/{self.assignments}")
        if self.iteration is not None:
            parts.append(f"iteration {self.iteration}")
        return ", ".join(parts)


FitProgress = Callable[[FitStep], None]


def log_fit_step(step: FitStep) -> None:
    """What ``fit`` reports without a callback (the scheduled retrain's log)."""
    log.info("fitting a head, step %d/%d: %s", step.done, step.total, step.describe())


class _Steps:
    """Counts fitting's steps and tells ``progress`` of each; ``total`` grows as the search over C plans more."""

    def __init__(self, progress: FitProgress | None, folds: int, total: int) -> None:
        self.progress, self.folds, self.total, self.done = progress, folds, total, 0
        self._last_report = time.monotonic()

    def finished(self, phase: str, **where) -> None:
        self.done += 1
        self._tell(phase, where)

    def report(self, phase: str, **where) -> None:
        """Still at work on ``phase``: told at most every REPORT_EVERY_S, so a log is not flooded."""
        if time.monotonic() - self._last_report >= REPORT_EVERY_S:
            self._tell(phase, where)

    def _tell(self, phase: str, where: dict) -> None:
        self._last_report = time.monotonic()
        if self.progress is not None:
            self.progress(FitStep(phase, self.done, self.total, **({"folds": self.folds} if "fold" in where else {})
                                  | where))


@dataclass(frozen=True)
class _Features:
    """A regression's input: the embedding as a dense block, the n-gram TF-IDF (if any) as a sparse one."""

    dense: np.ndarray
    sparse: "csr_matrix | None" = None


class EmbeddingClassifier:
    """Multinomial logistic regression over L2-normalised embeddings (and, with ``word_ngrams``, the texts' word
    n-gram TF-IDF), temperature-scaled, with optional out-of-scope. Fitting fills ``head_``, which answers."""

    def __init__(
        self,
        *,
        Cs: Sequence[float] = (1.0, 3.0, 10.0, 30.0, 100.0),
        cv_folds: int = 5,
        few_folds_above: int = FEW_FOLDS_ABOVE,
        none_label: str | None = None,
        max_inscope_reject: float = 0.05,
        min_none_recall: float | None = None,
        max_iter: int = 2000,
        random_state: int = 0,
        n_jobs: int = 1,
        word_ngrams: tuple[int, int] | None = None,
        catch_all: str | None = None,
        novelty_max_rows: int = 0,
        calibration_repeats: int = 1,
    ) -> None:
        if none_label is not None and catch_all is not None:
            raise ValueError("a head has a none label or a catch-all label, not both")
        self.Cs = tuple(sorted(Cs))
        self.cv_folds = cv_folds
        self.few_folds_above = few_folds_above  # with more rows, C is searched on min(cv_folds, FEW_FOLDS) folds
        self.none_label = none_label
        self.max_inscope_reject = max_inscope_reject
        self.min_none_recall = min_none_recall
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs  # parallel cross-validation fits (joblib processes); 1 keeps training to one core
        self.word_ngrams = tuple(word_ngrams) if word_ngrams else None  # e.g. (1, 2): words and word pairs
        self.catch_all = catch_all
        self.novelty_max_rows = novelty_max_rows  # 0: confidence is the probability alone
        if calibration_repeats < 1:
            raise ValueError("calibration_repeats must be at least 1")
        self.calibration_repeats = calibration_repeats  # out-of-fold passes for a novelty head's calibration

    @property
    def reject_label(self) -> str | None:
        """The label the out-of-scope threshold answers: the none label, or the catch-all."""
        return self.none_label if self.none_label is not None else self.catch_all

    # -- training -----------------------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: Sequence[str], texts: Sequence[str] | None = None,
            progress: FitProgress | None = log_fit_step) -> "EmbeddingClassifier":
        """``X``: the embeddings of ``texts``; the texts themselves are needed only with ``word_ngrams``.
        ``progress`` hears of each step as it finishes (see the module docstring)."""
        from joblib import Parallel, delayed
        from sklearn.model_selection import StratifiedKFold

        X = np.asarray(X, dtype=np.float32).astype(np.float64)  # the precision embeddings have, computed in float64
        if self.word_ngrams and texts is None:
            raise ValueError("a head with word_ngrams is fitted on the texts as well as their embeddings")
        if texts is not None and len(texts) != len(X):
            raise ValueError(f"{len(texts)} texts for {len(X)} embeddings")
        labels = np.asarray(list(y), dtype=object)
        self.classes_ = np.array(sorted(set(labels.tolist())), dtype=object)
        if len(self.classes_) < 2:
            raise ValueError("training needs examples of at least two labels")
        targets = np.searchsorted(self.classes_, labels)
        counts = np.bincount(targets)
        folds = min(self.cv_folds, int(counts.min()))
        if folds < 2:
            lone = [str(label) for label, count in zip(self.classes_, counts) if count < 2]
            raise ValueError(f"every label needs at least 2 examples for cross-validation; one only: {some_of(lone)}")

        order = content_order(X, texts)

        def split(n_folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
            """Stratified folds of the rows taken in an order of their own content, so the same examples get the
            same folds (and the same head) whatever order they come in."""
            return [(order[train], order[held_out]) for train, held_out in
                    StratifiedKFold(n_folds, shuffle=True, random_state=seed).split(order, targets[order])]

        splits = split(folds, self.random_state)
        # With plentiful rows C and the view are searched on FEW_FOLDS folds; the chosen pair is then fitted on all
        # ``folds`` for the out-of-fold logits everything after is fitted on (as close to the final fit as before).
        search_folds = min(folds, FEW_FOLDS) if len(X) > self.few_folds_above else folds
        search = splits if search_folds == folds else split(search_folds, self.random_state)
        novelty = 0 < len(X) <= self.novelty_max_rows
        # A novelty head's calibration (temperature, calibrator, threshold) is fitted on every row's out-of-fold
        # scores from several fold assignments: from one, it swung with the assignment (support_ticket's
        # temperature 0.50-0.97 over five seeds)
        repeats = [split(folds, self.random_state + r) for r in range(1, self.calibration_repeats if novelty else 1)]
        views = [None, self.word_ngrams] if self.word_ngrams else [None]
        steps = _Steps(progress, search_folds, total=2 + (self.reject_label is not None))

        dense = X.astype(np.float32)  # the regression's products in single precision: half the time (fit_logistic)
        def features_of(view, folds_of, **where) -> list[tuple[_Features, _Features]]:
            if view is None:
                return [(_Features(dense[train]), _Features(dense[held_out])) for train, held_out in folds_of]
            features = []
            steps.total += len(folds_of)  # the search's folds, and all of them again for a chosen view refitted there
            for fold, (train, held_out) in enumerate(folds_of, 1):
                features.append(self._fold_ngrams(dense, texts, train, held_out))
                steps.finished("vocabulary", fold=fold, folds=len(folds_of), **where)
            return features

        def held_out_logits(parallel, keys, folds_of, features, **where) -> dict[tuple, np.ndarray]:
            """Each (view, C) of ``keys``: the out-of-fold logits of its fits on ``folds_of``, in parallel (``where``:
            more to say of each fit's step)."""
            steps.total += len(keys) * len(folds_of)
            oof_by = {key: np.zeros((len(X), len(self.classes_))) for key in keys}
            fitted = parallel(
                delayed(_held_out_logits)((view, c, fold), features[view][fold], targets[folds_of[fold][0]],
                                          len(self.classes_), c, self.max_iter)
                for view, c in keys for fold in range(len(folds_of)))
            for (view, c, fold), logits in fitted:
                oof_by[(view, c)][folds_of[fold][1]] = logits
                steps.finished("cross-validation", view=view, C=c, fold=fold + 1, folds=len(folds_of), **where)
            return oof_by

        search_features = {view: features_of(view, search) for view in views}
        searched: dict[tuple, np.ndarray] = {}
        with Parallel(n_jobs=self.n_jobs, return_as="generator_unordered") as parallel:
            for grid in _c_search(self.Cs, views, lambda key: float(np.mean(searched[key].argmax(axis=1) == targets))):
                searched |= held_out_logits(parallel, grid, search, search_features)
            cv_accuracy = {key: float(np.mean(oof.argmax(axis=1) == targets)) for key, oof in searched.items()}
            # Highest accuracy; on a tie the simpler head: the embedding alone, then the stronger regularisation.
            view, self.C_ = max(cv_accuracy, key=lambda key: (cv_accuracy[key], key[0] is None, -key[1]))
            oof = searched[(view, self.C_)] if search is splits else held_out_logits(
                parallel, [(view, self.C_)], splits, {view: features_of(view, splits)})[(view, self.C_)]
            repeated = []
            for n, again in enumerate(repeats, 2):
                where = {"assignment": n, "assignments": len(repeats) + 1}
                repeated.append(held_out_logits(parallel, [(view, self.C_)], again,
                                                {view: features_of(view, again, **where)}, **where)[(view, self.C_)])
        self.oof_logits_ = oof  # kept for analysis (e.g. other reject budgets); not saved

        # Calibration is fitted on the out-of-fold rows of every fold assignment, stacked (one assignment but for a
        # novelty head with calibration_repeats)
        stacked = len(repeats) + 1
        stacked_logits, stacked_targets = np.vstack([oof, *repeated]), np.tile(targets, stacked)
        stacked_labels = np.tile(labels, stacked)
        self.temperature_ = fit_temperature(stacked_logits, stacked_targets)
        steps.finished("temperature")
        stacked_probabilities = softmax(stacked_logits, self.temperature_)
        self.novelty_: NoveltyCalibrator | None = None
        stacked_similarity = None
        if novelty:
            stacked_similarity = np.vstack([held_out_similarity(dense, targets, folds_of, len(self.classes_))
                                            for folds_of in [splits, *repeats]])
            self.novelty_ = fit_novelty(dense, targets, stacked_probabilities, stacked_similarity)
        oos_threshold: float | None = None
        self.threshold_rule_: str | None = None
        if self.reject_label is not None:
            oos_threshold = self.choose_threshold(stacked_probabilities, stacked_labels, stacked_similarity, stacked)
            steps.finished("threshold")

        self.ngrams_ = WordNgrams(ngram_range=view).fit(texts) if view else None
        coef, intercept = fit_logistic(
            self._features(dense, texts), targets, len(self.classes_), self.C_, self.max_iter,
            on_iteration=lambda n: steps.report("final fit", view=view, C=self.C_, iteration=n))
        self._set_head(coef.astype(np.float32), intercept, oos_threshold)  # coef as saved (artifact.py)
        steps.finished("final fit", view=view, C=self.C_)
        by_key = {_grid_key(*key): accuracy for key, accuracy in cv_accuracy.items()}
        self.cv_metrics_ = self._cv_metrics(stacked_logits, stacked_labels, folds, by_key, stacked_similarity,
                                            rows=len(labels))
        return self

    def _fold_ngrams(self, X, texts, train, held_out) -> tuple[_Features, _Features]:
        """(training rows, held-out rows) of one fold with n-grams; the vocabulary sees the training part only."""
        train_texts = [texts[i] for i in train]
        ngrams = WordNgrams(ngram_range=self.word_ngrams).fit(train_texts)
        if ngrams.width == 0:
            return _Features(X[train]), _Features(X[held_out])
        return (_Features(X[train], ngrams.transform(train_texts)),
                _Features(X[held_out], ngrams.transform([texts[i] for i in held_out])))

    def _features(self, X: np.ndarray, texts: Sequence[str] | None) -> _Features:
        """The final fit's input: the embeddings, and the texts' n-gram columns when the head has them."""
        if self.ngrams_ is None or self.ngrams_.width == 0:
            return _Features(X)
        return _Features(X, self.ngrams_.transform(texts))

    def choose_threshold(self, probabilities: np.ndarray, labels: np.ndarray,
                         similarity: np.ndarray | None = None, repeats: int = 1) -> float:
        """The out-of-scope threshold for held-out ``probabilities`` (and, with a novelty calibrator, ``similarity``)
        with gold ``labels``: meeting this head's ``min_none_recall`` where set and measurable, else within its
        ``max_inscope_reject`` (see the module docstring). ``repeats``: how many fold assignments the rows stack
        (each example counts once towards the rows a recall needs). Sets ``threshold_rule_``, which says which rule
        chose it."""
        none_column = none_column_of(self.classes_, self.reject_label)
        _, best_column = best_in_scope(probabilities, none_column)
        best = label_confidence(probabilities, best_column, self.novelty_, similarity)
        answered_none = probabilities.argmax(axis=1) == none_column
        in_scope = labels != self.reject_label
        none_rows = int((~in_scope).sum()) // repeats
        if self.min_none_recall is not None and none_rows >= MIN_NONE_ROWS_FOR_RECALL:
            self.threshold_rule_ = f"none recall >= {self.min_none_recall:g} on {none_rows} held-out none rows"
            if repeats > 1:
                self.threshold_rule_ += f" in {repeats} fold assignments"
            return choose_recall_threshold(best[~in_scope], answered_none[~in_scope], self.min_none_recall)
        self.threshold_rule_ = f"in-scope rows answered none <= {self.max_inscope_reject:g}"
        if self.min_none_recall is not None:
            self.threshold_rule_ += (f" (a none recall needs {MIN_NONE_ROWS_FOR_RECALL} held-out none rows,"
                                     f" had {none_rows})")
        return choose_reject_threshold(best[in_scope], answered_none[in_scope], self.max_inscope_reject)

    def _cv_metrics(self, oof: np.ndarray, labels: np.ndarray, folds: int, cv_accuracy,
                    similarity: np.ndarray | None, rows: int) -> CrossValidatedMetrics:
        """The head's metrics on out-of-fold rows (every fold assignment's, stacked, as its calibration was fitted);
        ``rows``: the training examples they are passes over."""
        scored = self.head_.decide(softmax(oof, self.temperature_), similarity)
        raw = softmax(oof)  # before temperature and threshold: the plain logistic regression
        gold = labels.tolist()
        right = labels == np.asarray(scored.labels, dtype=object)
        raw_right = labels == self.classes_[raw.argmax(axis=1)]
        metrics = CrossValidatedMetrics(
            folds=folds, rows=rows, accuracy=float(right.mean()), macro_f1=macro_f1(gold, scored.labels),
            ece=expected_calibration_error(scored.confidence, right),
            ece_before_temperature=expected_calibration_error(raw.max(axis=1), raw_right),
            selective_accuracy_80=selective_accuracy(scored.confidence, right, 0.8),
            cv_accuracy_by_c=cv_accuracy,
        )
        if self.reject_label is not None:
            in_scope = labels != self.reject_label
            metrics.inscope_accuracy = float(right[in_scope].mean()) if in_scope.any() else None
            metrics.oos_recall = float(right[~in_scope].mean()) if (~in_scope).any() else None
        return metrics

    @classmethod
    def restore(
        cls, *, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray, temperature: float, C: float,
        none_label: str | None, oos_threshold: float | None, cv_metrics: CrossValidatedMetrics,
        max_inscope_reject: float, ngrams: WordNgrams | None = None, min_none_recall: float | None = None,
        threshold_rule: str | None = None, catch_all: str | None = None, novelty: NoveltyCalibrator | None = None,
    ) -> "EmbeddingClassifier":
        """A fitted head rebuilt from saved weights (see artifact.py); predicts exactly as the one that was saved,
        with numpy alone."""
        head = cls(Cs=(C,), none_label=none_label, max_inscope_reject=max_inscope_reject,
                   min_none_recall=min_none_recall, word_ngrams=ngrams.ngram_range if ngrams is not None else None,
                   catch_all=catch_all)
        head.threshold_rule_ = threshold_rule
        head.ngrams_ = ngrams
        head.novelty_ = novelty
        head.classes_ = np.asarray(list(classes), dtype=object)
        head.C_, head.temperature_, head.cv_metrics_ = C, temperature, cv_metrics
        head._set_head(coef, intercept, oos_threshold)
        return head

    def _set_head(self, coef: np.ndarray, intercept: np.ndarray, oos_threshold: float | None) -> None:
        self.coef_, self.intercept_ = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
        self.head_ = LinearHead(classes=self.classes_, coef=self.coef_, intercept=self.intercept_,
                                temperature=self.temperature_, none_label=self.reject_label,
                                oos_threshold=oos_threshold, ngrams=self.ngrams_, novelty=self.novelty_)

    @property
    def confidence_method(self) -> str:
        """What its confidence is, as each answer records it: with a novelty calibrator, not the probability."""
        return NOVELTY_CONFIDENCE_METHOD if self.novelty_ is not None else TRAINED_CONFIDENCE_METHOD

    @property
    def oos_threshold_(self) -> float | None:
        """The head's out-of-scope threshold (settable, e.g. to compare answers without it)."""
        return self.head_.oos_threshold

    @oos_threshold_.setter
    def oos_threshold_(self, threshold: float | None) -> None:
        self.head_.oos_threshold = threshold

    # -- prediction: the head's --------------------------------------------------------------------------------
    # ``texts``: the texts ``X`` embeds, needed by a head with word n-grams (``ngrams_``) and ignored otherwise.
    def decision_function(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        return self.head_.decision_function(X, texts)

    def predict_proba(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Temperature-scaled class probabilities, columns in ``classes_`` order (before the out-of-scope rule)."""
        return self.head_.predict_proba(X, texts)

    def predict_with_confidence(self, X: np.ndarray, texts: Sequence[str] | None = None) -> Predictions:
        return self.head_.predict_with_confidence(X, texts)

    def predict(self, X: np.ndarray, texts: Sequence[str] | None = None) -> list[str]:
        return self.predict_with_confidence(X, texts).labels


def content_order(X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
    """The rows' indices ordered by a hash of each row's text (else of its embedding's values): an order set by the
    examples, not by where they stand. Texts are the better key: an embedder's last bits can differ with the batch a
    text was in. Rows with the same text keep their given order among themselves (training sets are de-duplicated
    by text: training_data.py)."""
    import hashlib

    keys = ([text.encode("utf-8") for text in texts] if texts is not None
            else [row.tobytes() for row in np.ascontiguousarray(X)])
    digests = [hashlib.blake2b(key, digest_size=8).digest() for key in keys]
    return np.asarray(sorted(range(len(digests)), key=digests.__getitem__), dtype=np.intp)


def _grid_key(view: tuple[int, int] | None, C: float) -> str:
    return f"{C:g}" if view is None else f"{C:g} + words {view[0]}-{view[1]}"


def _held_out_logits(job, fold: tuple[_Features, _Features], train_targets: np.ndarray, n_classes: int,
                     C: float, max_iter: int):
    """(job, the held-out rows' logits) of a regression fitted on the training rows of ``fold`` (a module-level
    function, so that joblib's processes can run it)."""
    train, held_out = fold
    coef, intercept = fit_logistic(train, train_targets, n_classes, C, max_iter)
    width = train.dense.shape[1]
    logits = held_out.dense @ coef[:, :width].T + intercept
    if held_out.sparse is not None:
        logits += held_out.sparse @ coef[:, width:].T
    return job, logits


def _c_search(Cs: Sequence[float], views: list, accuracy_of: Callable[[tuple], float]) -> Iterator[list[tuple]]:
    """The (view, C) pairs to cross-validate, a batch at a time (``accuracy_of`` reads a pair's once its batch is
    fitted): each view's middle C and its neighbours, then one C further out on a side for as long as the best so
    far is the one at that end. Cross-validated accuracy rises to a peak over C and falls after it (Banking77,
    CLINC150: bench/results/trained_head.txt), so this finds the grid's best with 3 or 4 of its 5 Cs fitted:
    C = 1 and 100 never won there. On a tie the smaller C counts as the best, as in the choice itself."""
    middle = len(Cs) // 2
    tried = {view: (max(middle - 1, 0), min(middle + 1, len(Cs) - 1)) for view in views}  # index ranges
    batch = [(view, c) for view, (low, high) in tried.items() for c in Cs[low:high + 1]]
    while batch:
        yield batch
        batch = []
        for view, (low, high) in tried.items():
            best = max(range(low, high + 1), key=lambda i: (accuracy_of((view, Cs[i])), -i))
            if best == low and low > 0:
                tried[view] = (low - 1, high)
                batch.append((view, Cs[low - 1]))
            elif best == high and high < len(Cs) - 1:
                tried[view] = (low, high + 1)
                batch.append((view, Cs[high + 1]))


def fit_logistic(features: _Features, targets: np.ndarray, n_classes: int, C: float, max_iter: int,
                 on_iteration: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(classes x columns) weights and (classes,) intercepts minimising scikit-learn's LogisticRegression objective
    for an L2 penalty and the lbfgs solver: the mean multinomial cross-entropy plus ||W||^2 / (2 C n), intercept
    unpenalised, L-BFGS-B from zeros with its options (sklearn/linear_model/_logistic.py, scikit-learn 1.9). The
    embedding's columns are one BLAS product in single precision (``features.dense`` is float32; the logits, the
    loss and the optimiser are float64) and the n-grams' a sparse one (see the module docstring). Two classes are
    one logit, as in LogisticRegression, returned as two rows whose first is 0. ``on_iteration`` hears each
    optimiser iteration's number."""
    from scipy.optimize import minimize

    dense, sparse = features.dense, features.sparse
    n, d = dense.shape
    width = d + (sparse.shape[1] if sparse is not None else 0)
    k, rows, l2 = n_classes, np.arange(n), 1.0 / (C * n)
    free = 1 if k == 2 else k  # two classes: one logit against a fixed 0, LogisticRegression's binary model

    def loss_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = params[:free * width].reshape(free, width), params[free * width:]
        scores = (dense @ W[:, :d].T.astype(np.float32)).astype(np.float64) + b
        if sparse is not None:
            scores += sparse @ W[:, d:].T
        logits = np.hstack([np.zeros((n, 1)), scores]) if free < k else scores
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        total = exp.sum(axis=1)
        loss = float(np.mean(np.log(total) - logits[rows, targets])) + 0.5 * l2 * float(W.ravel() @ W.ravel())
        residual = exp / total[:, None]  # d loss / d logits, times n
        residual[rows, targets] -= 1.0
        residual = residual[:, k - free:] / n
        gradient = np.empty_like(params)
        grad_W = gradient[:free * width].reshape(free, width)
        grad_W[:, :d] = residual.T.astype(np.float32) @ dense
        if sparse is not None:
            grad_W[:, d:] = (sparse.T @ residual).T
        grad_W += l2 * W
        gradient[free * width:] = residual.sum(axis=0)
        return loss, gradient

    iterations = 0

    def iterated(_) -> None:
        nonlocal iterations
        iterations += 1
        if on_iteration is not None:
            on_iteration(iterations)

    result = minimize(loss_and_gradient, np.zeros(free * (width + 1)), jac=True, method="L-BFGS-B", callback=iterated,
                      options={"maxiter": max_iter, "maxls": 50, "gtol": LBFGS_TOLERANCE,
                               "ftol": 64 * np.finfo(float).eps})
    if result.status == 1:
        log.warning("logistic regression (C = %g) stopped at max_iter = %d before converging", C, max_iter)
    coef, intercept = result.x[:free * width].reshape(free, width), result.x[free * width:]
    if free < k:  # the fixed row: softmax(0, z) is (1 - sigmoid(z), sigmoid(z))
        coef, intercept = np.vstack([np.zeros((1, width)), coef]), np.concatenate([[0.0], intercept])
    return coef, intercept


class ZeroShotClassifier:
    """A head with no training: each label is the normalised mean embedding of its name/description/example texts,
    and an item goes to the label it is most cosine-similar to.

    Its confidence is deliberately low, so a cascade escalates what it answers: p = (1 - shrink) * softmax(scale *
    cosine) + shrink / k. With the defaults (shrink 0.5) no answer is ever more than 0.5 + 0.5/k sure (0.625 for four
    labels); the ranking is informative, the numbers are not a calibrated claim. A none label is never predicted.
    """

    def __init__(
        self, labels: Sequence[str], prototypes: np.ndarray, *, scale: float = 20.0, shrink: float = 0.5
    ) -> None:
        if not 0.0 < shrink <= 1.0:
            raise ValueError("shrink must be in (0, 1]")
        if len(labels) != len(prototypes):
            raise ValueError("one prototype per label")
        self.classes_ = np.asarray(list(labels), dtype=object)
        self.prototypes = l2_normalise(prototypes)
        self.scale = scale
        self.shrink = shrink

    @classmethod
    def from_texts(cls, embedder: Embedder, label_texts: Mapping[str, Sequence[str]], **kwargs) -> "ZeroShotClassifier":
        """``label_texts``: for each label, e.g. ["billing: invoices, charges, refunds", "I was charged twice"]."""
        names = list(label_texts)
        prototypes = np.vstack([embedder.embed(list(label_texts[name]) or [name]).mean(axis=0) for name in names])
        return cls(names, prototypes, **kwargs)

    # ``texts`` is accepted, and unused, so that both heads are called alike.
    def predict_proba(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        similarity = np.asarray(X, dtype=np.float64) @ self.prototypes.T
        return (1.0 - self.shrink) * softmax(self.scale * similarity) + self.shrink / len(self.classes_)

    def predict_with_confidence(self, X: np.ndarray, texts: Sequence[str] | None = None) -> Predictions:
        probabilities = self.predict_proba(X)
        top = probabilities.argmax(axis=1)
        return Predictions(self.classes_[top].tolist(), probabilities[np.arange(len(top)), top])

    def predict(self, X: np.ndarray, texts: Sequence[str] | None = None) -> list[str]:
        return self.predict_with_confidence(X).labels

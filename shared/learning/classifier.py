"""Classifier heads over embeddings: a calibrated logistic regression, and a zero-shot head for tasks not trained yet.

EmbeddingClassifier (scikit-learn style: fit / predict_proba / predict, parameters explicit in __init__):
1. C, the inverse regularisation strength, is chosen from ``Cs`` by stratified k-fold cross-validation on the training
   data (highest mean accuracy; the smaller C on a tie).
2. The out-of-fold logits of that C -- every training row scored by a model that did not see it -- are the held-out
   data for everything fitted after training: the temperature (minimising their NLL), the out-of-scope threshold and
   the cross-validated metrics recorded in the artifact. No dev or test data is touched.
3. The final multinomial logistic regression is refitted on all the training data with that C.
Confidence = the temperature-scaled probability of the answered label.

With ``word_ngrams`` set, step 1 also tries the regression over the texts' word n-gram TF-IDF (lexical.py) beside the
embedding, for each C: one weight row per class over both, the vocabulary fitted on each fold's training part. The
cross-validated accuracy decides between the two as it decides C (on a tie, the embedding alone): the n-grams pay
on Banking77 (10,000 examples) and not on the 240 support tickets. A head that uses them needs the texts as well as
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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
from pydantic import BaseModel
from joblib import Parallel, delayed
from scipy.sparse import csr_matrix, hstack
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from shared.errors import some_of
from shared.learning.calibration import choose_recall_threshold, choose_reject_threshold, fit_temperature, softmax
from shared.learning.embedders.base import Embedder, l2_normalise
from shared.learning.lexical import WordNgrams
from shared.foundation.metrics import expected_calibration_error, macro_f1, selective_accuracy

TRAINED_CONFIDENCE_METHOD = "temperature-scaled logistic regression probability"
ZERO_SHOT_CONFIDENCE_METHOD = "zero-shot cosine similarity, shrunk towards uniform"
# Fewer held-out none rows than this measure a recall too coarsely (one row is more than 5%) to set a threshold by.
MIN_NONE_ROWS_FOR_RECALL = 20


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
class Predictions:
    labels: list[str]
    confidence: np.ndarray


class EmbeddingClassifier:
    """Multinomial logistic regression over L2-normalised embeddings (and, with ``word_ngrams``, the texts' word
    n-gram TF-IDF), temperature-scaled, with optional out-of-scope."""

    def __init__(
        self,
        *,
        Cs: Sequence[float] = (1.0, 3.0, 10.0, 30.0, 100.0),
        cv_folds: int = 5,
        none_label: str | None = None,
        max_inscope_reject: float = 0.05,
        min_none_recall: float | None = None,
        max_iter: int = 2000,
        random_state: int = 0,
        n_jobs: int = 1,
        word_ngrams: tuple[int, int] | None = None,
    ) -> None:
        self.Cs = tuple(sorted(Cs))
        self.cv_folds = cv_folds
        self.none_label = none_label
        self.max_inscope_reject = max_inscope_reject
        self.min_none_recall = min_none_recall
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs  # parallel cross-validation fits (joblib); 1 keeps training to one core
        self.word_ngrams = tuple(word_ngrams) if word_ngrams else None  # e.g. (1, 2): words and word pairs

    # -- training -----------------------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: Sequence[str], texts: Sequence[str] | None = None) -> "EmbeddingClassifier":
        """``X``: the embeddings of ``texts``; the texts themselves are needed only with ``word_ngrams``."""
        X = np.asarray(X, dtype=np.float32)
        if self.word_ngrams and (texts is None or len(texts) != len(X)):
            raise ValueError("a head with word_ngrams is fitted on the texts as well as their embeddings")
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

        splits = list(StratifiedKFold(folds, shuffle=True, random_state=self.random_state).split(X, targets))
        views = [None, self.word_ngrams] if self.word_ngrams else [None]
        grid = [(view, c) for view in views for c in self.Cs]
        fold_features = {view: [self._fold_features(X, texts, train, held_out, view) for train, held_out in splits]
                         for view in views}
        fold_logits = Parallel(n_jobs=self.n_jobs)(
            delayed(self._held_out_logits)(train_features, targets[train], held_features, c)
            for view, c in grid for (train, _), (train_features, held_features) in zip(splits, fold_features[view])
        )
        oof_by = {}
        for i, key in enumerate(grid):
            oof_by[key] = np.zeros((len(X), len(self.classes_)))
            for (_, held_out), logits in zip(splits, fold_logits[i * len(splits):(i + 1) * len(splits)]):
                oof_by[key][held_out] = logits
        cv_accuracy = {key: float(np.mean(oof.argmax(axis=1) == targets)) for key, oof in oof_by.items()}
        # Highest accuracy; on a tie the simpler head: the embedding alone, then the stronger regularisation.
        view, self.C_ = max(grid, key=lambda key: (cv_accuracy[key], key[0] is None, -key[1]))
        self.oof_logits_ = oof = oof_by[(view, self.C_)]  # kept for analysis (e.g. other reject budgets); not saved

        self.temperature_ = fit_temperature(oof, targets)
        self.oos_threshold_: float | None = None
        self.threshold_rule_: str | None = None
        if self.none_label is not None:
            self.oos_threshold_ = self.choose_threshold(softmax(oof, self.temperature_), labels)

        self.ngrams_ = WordNgrams(ngram_range=view).fit(texts) if view else None
        final = self._logistic(self.C_).fit(self._features(X, texts), targets)
        coef, intercept = _multiclass_weights(final, len(self.classes_))
        self._set_weights(coef.astype(np.float32), intercept)  # coef at the precision it is saved at (artifact.py)
        by_key = {_grid_key(*key): accuracy for key, accuracy in cv_accuracy.items()}
        self.cv_metrics_ = self._cv_metrics(oof, labels, folds, by_key)
        return self

    def _logistic(self, C: float) -> LogisticRegression:
        return LogisticRegression(C=C, max_iter=self.max_iter, random_state=self.random_state)

    def _fold_features(self, X, texts, train, held_out, view: tuple[int, int] | None):
        """(training rows, held-out rows) of one fold; the n-gram vocabulary sees the training part only."""
        if view is None:
            return X[train], X[held_out]
        train_texts = [texts[i] for i in train]
        ngrams = WordNgrams(ngram_range=view).fit(train_texts)
        return (_joined(X[train], ngrams.transform(train_texts)),
                _joined(X[held_out], ngrams.transform([texts[i] for i in held_out])))

    def _held_out_logits(self, train_features, train_targets, held_features, C: float) -> np.ndarray:
        model = self._logistic(C).fit(train_features, train_targets)
        coef, intercept = _multiclass_weights(model, len(self.classes_))
        return np.asarray(held_features @ coef.T) + intercept

    def _features(self, X: np.ndarray, texts: Sequence[str] | None):
        """The final fit's input: the embeddings, then the texts' n-gram columns when the head has them."""
        if self.ngrams_ is None or self.ngrams_.width == 0:
            return X
        return _joined(X, self.ngrams_.transform(texts))

    def choose_threshold(self, probabilities: np.ndarray, labels: np.ndarray) -> float:
        """The out-of-scope threshold for held-out ``probabilities`` with gold ``labels``: meeting this head's
        ``min_none_recall`` where set and measurable, else within its ``max_inscope_reject`` (see the module
        docstring). Sets ``threshold_rule_``, which says which rule chose it."""
        best, _ = self._best_in_scope(probabilities)
        answered_none = probabilities.argmax(axis=1) == self._none_column()
        in_scope = labels != self.none_label
        none_rows = int((~in_scope).sum())
        if self.min_none_recall is not None and none_rows >= MIN_NONE_ROWS_FOR_RECALL:
            self.threshold_rule_ = f"none recall >= {self.min_none_recall:g} on {none_rows} held-out none rows"
            return choose_recall_threshold(best[~in_scope], answered_none[~in_scope], self.min_none_recall)
        self.threshold_rule_ = f"in-scope rows answered none <= {self.max_inscope_reject:g}"
        if self.min_none_recall is not None:
            self.threshold_rule_ += (f" (a none recall needs {MIN_NONE_ROWS_FOR_RECALL} held-out none rows,"
                                     f" had {none_rows})")
        return choose_reject_threshold(best[in_scope], answered_none[in_scope], self.max_inscope_reject)

    def _cv_metrics(self, oof: np.ndarray, labels: np.ndarray, folds: int, cv_accuracy) -> CrossValidatedMetrics:
        scored = self._decide(softmax(oof, self.temperature_))
        raw = softmax(oof)  # before temperature and threshold: the plain logistic regression
        gold = labels.tolist()
        right = labels == np.asarray(scored.labels, dtype=object)
        raw_right = labels == self.classes_[raw.argmax(axis=1)]
        metrics = CrossValidatedMetrics(
            folds=folds, rows=len(labels), accuracy=float(right.mean()), macro_f1=macro_f1(gold, scored.labels),
            ece=expected_calibration_error(scored.confidence, right),
            ece_before_temperature=expected_calibration_error(raw.max(axis=1), raw_right),
            selective_accuracy_80=selective_accuracy(scored.confidence, right, 0.8),
            cv_accuracy_by_c=cv_accuracy,
        )
        if self.none_label is not None:
            in_scope = labels != self.none_label
            metrics.inscope_accuracy = float(right[in_scope].mean()) if in_scope.any() else None
            metrics.oos_recall = float(right[~in_scope].mean()) if (~in_scope).any() else None
        return metrics

    @classmethod
    def restore(
        cls, *, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray, temperature: float, C: float,
        none_label: str | None, oos_threshold: float | None, cv_metrics: CrossValidatedMetrics,
        max_inscope_reject: float, ngrams: WordNgrams | None = None, min_none_recall: float | None = None,
        threshold_rule: str | None = None,
    ) -> "EmbeddingClassifier":
        """A fitted head rebuilt from saved weights (see artifact.py); predicts exactly as the one that was saved."""
        head = cls(Cs=(C,), none_label=none_label, max_inscope_reject=max_inscope_reject,
                   min_none_recall=min_none_recall, word_ngrams=ngrams.ngram_range if ngrams is not None else None)
        head.threshold_rule_ = threshold_rule
        head.ngrams_ = ngrams
        head.classes_ = np.asarray(list(classes), dtype=object)
        head._set_weights(coef, intercept)
        head.C_, head.temperature_, head.oos_threshold_, head.cv_metrics_ = C, temperature, oos_threshold, cv_metrics
        return head

    # -- prediction ---------------------------------------------------------------------------------------------
    # ``texts``: the texts ``X`` embeds, needed by a head with word n-grams (``ngrams_``) and ignored otherwise.
    def decision_function(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        logits = np.asarray(X, dtype=np.float64) @ self._embedding_weights + self.intercept_
        if self._ngram_weights is not None:
            if texts is None or len(texts) != len(X):
                raise ValueError("this head reads word n-grams: give the texts as well as their embeddings")
            logits += np.asarray(self.ngrams_.transform(texts) @ self._ngram_weights)
        return logits

    def _set_weights(self, coef: np.ndarray, intercept: np.ndarray) -> None:
        """coef_ (classes x (embedding + n-gram columns)) and intercept_, and each view's columns transposed and
        contiguous for prediction: a product with a strided slice of coef_ copies it, ~2 ms an item on Banking77."""
        self.coef_, self.intercept_ = np.asarray(coef, dtype=np.float64), np.asarray(intercept, dtype=np.float64)
        width = self.coef_.shape[1] - (self.ngrams_.width if self.ngrams_ is not None else 0)
        self._embedding_weights = np.ascontiguousarray(self.coef_[:, :width].T)
        self._ngram_weights = np.ascontiguousarray(self.coef_[:, width:].T) if width < self.coef_.shape[1] else None

    def predict_proba(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Temperature-scaled class probabilities, columns in ``classes_`` order (before the out-of-scope rule)."""
        return softmax(self.decision_function(X, texts), self.temperature_)

    def predict_with_confidence(self, X: np.ndarray, texts: Sequence[str] | None = None) -> Predictions:
        return self._decide(self.predict_proba(X, texts))

    def predict(self, X: np.ndarray, texts: Sequence[str] | None = None) -> list[str]:
        return self.predict_with_confidence(X, texts).labels

    def _none_column(self) -> int | None:
        hits = np.flatnonzero(self.classes_ == self.none_label) if self.none_label is not None else []
        return int(hits[0]) if len(hits) else None

    def _best_in_scope(self, probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probability and column of the best label other than the none class."""
        masked = probabilities.copy()
        if (column := self._none_column()) is not None:
            masked[:, column] = -1.0
        best_column = masked.argmax(axis=1)
        return masked[np.arange(len(masked)), best_column], best_column

    def _decide(self, probabilities: np.ndarray) -> Predictions:
        top = probabilities.argmax(axis=1)
        labels = self.classes_[top].astype(object)
        confidence = probabilities[np.arange(len(top)), top]
        if self.none_label is not None and self.oos_threshold_:
            best, _ = self._best_in_scope(probabilities)
            reject = best < self.oos_threshold_
            if (none_column := self._none_column()) is not None:
                reject &= top != none_column  # already answered none by the class, with its own probability
            labels[reject] = self.none_label
            confidence = np.where(reject, 1.0 - best, confidence)
        return Predictions(labels.tolist(), np.asarray(confidence, dtype=float))


def _grid_key(view: tuple[int, int] | None, C: float) -> str:
    return f"{C:g}" if view is None else f"{C:g} + words {view[0]}-{view[1]}"


def _joined(X: np.ndarray, ngram_columns) -> csr_matrix:
    return hstack([csr_matrix(np.asarray(X, dtype=np.float64)), ngram_columns], format="csr")


def _multiclass_weights(model: LogisticRegression, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """(k, d) weights and (k,) intercepts; a two-class model's single logit z becomes the pair (0, z),
    whose softmax is scikit-learn's (1 - sigmoid(z), sigmoid(z))."""
    coef, intercept = np.asarray(model.coef_, dtype=np.float64), np.asarray(model.intercept_, dtype=np.float64)
    if n_classes == 2 and coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
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

"""A trained classification head as plain arrays: what answering needs, and nothing that fitting does.

Answering an item needs the weights, the intercept, the temperature, the out-of-scope threshold, the classes and,
for a head that reads word n-grams, their vocabulary and idf. This module holds those and imports numpy alone, so
that a process which only answers (a Functions instance's first item) never imports scikit-learn or scipy: importing
them cost 1.57 s of the 3.2 s from a fresh process to the first answer (issue 29). classifier.py fits a head and
hands its prediction to a ``LinearHead``; artifact.py loads a saved head into one.

``LinearHead.decide`` is the one place that turns probabilities into (label, confidence): cross-validation scores the
out-of-fold probabilities through it, and every answer goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from shared.learning.calibration import softmax
from shared.learning.lexical import WordNgrams


@dataclass(frozen=True)
class Predictions:
    labels: list[str]
    confidence: np.ndarray


class LinearHead:
    """Multinomial logistic regression over an L2-normalised embedding (and, with ``ngrams``, the text's word n-gram
    TF-IDF, whose columns follow the embedding's in ``coef``), temperature-scaled, with an optional out-of-scope
    threshold. An item whose best in-scope label has probability below ``oos_threshold`` is answered ``none_label``
    with confidence 1 - p(best label): under calibrated probabilities, the chance that label would have been wrong."""

    def __init__(self, *, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray, temperature: float,
                 none_label: str | None = None, oos_threshold: float | None = None,
                 ngrams: WordNgrams | None = None) -> None:
        self.classes = np.asarray(list(classes), dtype=object)
        self.coef = np.asarray(coef, dtype=np.float64)  # classes x (embedding + n-gram columns)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.temperature = float(temperature)
        self.none_label = none_label
        self.oos_threshold = oos_threshold
        self.ngrams = ngrams if ngrams is not None and ngrams.width else None
        width = self.coef.shape[1] - (self.ngrams.width if self.ngrams is not None else 0)
        # Each view's columns transposed and contiguous: a product with a strided slice of coef copies it (~2 ms an
        # item on Banking77).
        self._embedding_weights = np.ascontiguousarray(self.coef[:, :width].T)
        self._ngram_weights = np.ascontiguousarray(self.coef[:, width:].T) if self.ngrams is not None else None
        self.none_column = none_column_of(self.classes, none_label)

    # ``texts``: the texts ``X`` embeds, needed by a head with word n-grams and ignored otherwise.
    def decision_function(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        logits = np.asarray(X, dtype=np.float64) @ self._embedding_weights + self.intercept
        if self.ngrams is not None:
            if texts is None or len(texts) != len(X):
                raise ValueError("this head reads word n-grams: give the texts as well as their embeddings")
            for row, (columns, values) in enumerate(self.ngrams.tfidf_rows(texts)):
                logits[row] += values @ self._ngram_weights[columns]
        return logits

    def predict_proba(self, X: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Temperature-scaled class probabilities, columns in ``classes`` order (before the out-of-scope rule)."""
        return softmax(self.decision_function(X, texts), self.temperature)

    def predict_with_confidence(self, X: np.ndarray, texts: Sequence[str] | None = None) -> Predictions:
        return self.decide(self.predict_proba(X, texts))

    def decide(self, probabilities: np.ndarray) -> Predictions:
        top = probabilities.argmax(axis=1)
        labels = self.classes[top].astype(object)
        confidence = probabilities[np.arange(len(top)), top]
        if self.none_label is not None and self.oos_threshold:
            best, _ = best_in_scope(probabilities, self.none_column)
            reject = best < self.oos_threshold
            if self.none_column is not None:
                reject &= top != self.none_column  # already answered none by the class, with its own probability
            labels[reject] = self.none_label
            confidence = np.where(reject, 1.0 - best, confidence)
        return Predictions(labels.tolist(), np.asarray(confidence, dtype=float))


def none_column_of(classes: np.ndarray, none_label: str | None) -> int | None:
    """The column of the none class, when the head was trained with it as a class."""
    hits = np.flatnonzero(classes == none_label) if none_label is not None else []
    return int(hits[0]) if len(hits) else None


def best_in_scope(probabilities: np.ndarray, none_column: int | None) -> tuple[np.ndarray, np.ndarray]:
    """Probability and column of the best label other than the none class."""
    masked = probabilities.copy()
    if none_column is not None:
        masked[:, none_column] = -1.0
    best_column = masked.argmax(axis=1)
    return masked[np.arange(len(masked)), best_column], best_column

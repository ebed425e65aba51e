"""A trained classification head as plain arrays: what answering needs, and nothing that fitting does.

Answering an item needs the weights, the intercept, the temperature, the out-of-scope threshold, the classes and,
for a head that reads word n-grams, their vocabulary and idf, and for a head with a novelty calibrator (novelty.py)
its training embeddings and weights. This module holds those and imports numpy alone, so
that a process which only answers (a Functions instance's first item) never imports scikit-learn or scipy: importing
them cost 1.57 s of the 3.2 s from a fresh process to the first answer (issue 29). classifier.py fits a head and
hands its prediction to a ``LinearHead``; artifact.py loads a saved head into one.

``LinearHead.decide`` is the one place that turns probabilities (and, with a novelty calibrator, the item's similarity
to each label's training examples) into (label, confidence): cross-validation scores the out-of-fold rows through it,
and every answer goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from shared.learning.calibration import softmax
from shared.learning.lexical import WordNgrams
from shared.learning.novelty import NoveltyCalibrator


@dataclass(frozen=True)
class Predictions:
    labels: list[str]
    confidence: np.ndarray


class LinearHead:
    """Multinomial logistic regression over an L2-normalised embedding (and, with ``ngrams``, the text's word n-gram
    TF-IDF, whose columns follow the embedding's in ``coef``), temperature-scaled, with an optional out-of-scope
    threshold. An item whose best in-scope label has confidence below ``oos_threshold`` is answered ``none_label``
    with confidence 1 - that: under calibrated confidence, the chance that label would have been wrong.
    ``none_label`` is the task's none label, or its catch-all label (``other``), which the head treats alike.

    A label's confidence is its probability; with ``novelty``, the calibrated chance that it is right given its
    probability and the item's nearness to its training examples (novelty.py), so that an item unlike the training
    data is not sure of any label."""

    def __init__(self, *, classes: Sequence[str], coef: np.ndarray, intercept: np.ndarray, temperature: float,
                 none_label: str | None = None, oos_threshold: float | None = None,
                 ngrams: WordNgrams | None = None, novelty: NoveltyCalibrator | None = None) -> None:
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
        self.novelty = novelty

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
        probabilities = self.predict_proba(X, texts)
        similarity = self.novelty.similarity(X, len(self.classes)) if self.novelty is not None else None
        return self.decide(probabilities, similarity)

    def decide(self, probabilities: np.ndarray, similarity: np.ndarray | None = None) -> Predictions:
        """``similarity``: the items' novelty similarity (items x classes), for a head with a novelty calibrator."""
        top = probabilities.argmax(axis=1)
        labels = self.classes[top].astype(object)
        confidence = label_confidence(probabilities, top, self.novelty, similarity)
        if self.none_label is not None and self.oos_threshold:
            _, best_column = best_in_scope(probabilities, self.none_column)
            best = label_confidence(probabilities, best_column, self.novelty, similarity)
            reject = best < self.oos_threshold
            if self.none_column is not None:
                reject &= top != self.none_column  # already answered none by the class, with its own confidence
            labels[reject] = self.none_label
            confidence = np.where(reject, 1.0 - best, confidence)
        return Predictions(labels.tolist(), np.asarray(confidence, dtype=float))


def label_confidence(probabilities: np.ndarray, columns: np.ndarray, novelty: NoveltyCalibrator | None,
                     similarity: np.ndarray | None) -> np.ndarray:
    """The confidence of the label in ``columns`` for each row: its probability, or with ``novelty`` (and the rows'
    ``similarity``) the calibrated chance that it is right."""
    if novelty is None:
        return probabilities[np.arange(len(columns)), columns]
    if similarity is None:
        raise ValueError("a head with a novelty calibrator decides with the items' similarity")
    return novelty.confidence(probabilities, similarity, columns)


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

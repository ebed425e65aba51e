"""Confidence that drops off-distribution (issue 29, part 3): the head's probability joined with how near the item
is to the training examples of the label it answers, and how much nearer than to those of any other label.

A logistic regression over embeddings can be sure (p = 1.0) of a text unlike anything it was trained on: the softmax
only compares labels with each other, and far from the data one of them always wins. The nearness it lacks is
measured here as the mean cosine similarity of the item to its ``neighbours`` most similar training examples of a
label. A small logistic regression over three features -- logit(p), the answered label's similarity, and its margin
over the most similar other label -- predicts whether the answer is right. It is fitted on out-of-fold data (each
training row's probability from a head that did not see it, and its similarity to the training rows of its fold
only), so it learns how much nearness the head's own errors show without touching a dev set. Its output is the
answer's confidence. On support_ticket's shifted dev set the margin is what helps most
(bench/results/off_distribution.txt).

Answering needs numpy alone: the calibrator is the training embeddings (float16, with their class column), three
weights and a bias. Fitting uses scikit-learn, imported when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

NEIGHBOURS = 5
# The logit of p is clipped here: temperature-scaled probabilities reach 1.0 in float64, whose logit is infinite.
MAX_LOGIT = 12.0
# Array names in a head's weights.npz (artifact.py).
ARRAY_NAMES = ("novelty_exemplars", "novelty_columns", "novelty_coef")


def neighbour_similarity(X: np.ndarray, exemplars: np.ndarray, columns: np.ndarray, n_classes: int,
                         neighbours: int = NEIGHBOURS) -> np.ndarray:
    """(items x classes): the mean cosine of each item to its ``neighbours`` most similar exemplars of each class
    (fewer where a class has fewer). Inputs are L2-normalised, so a product is a cosine. A class with no exemplars
    scores -1, as far as cosine goes."""
    X = np.asarray(X, dtype=np.float32)
    similarity = X @ np.asarray(exemplars, dtype=np.float32).T
    out = np.full((len(X), n_classes), -1.0)
    for column in range(n_classes):
        of_class = similarity[:, columns == column]
        if of_class.shape[1] == 0:
            continue
        k = min(neighbours, of_class.shape[1])
        out[:, column] = np.partition(of_class, of_class.shape[1] - k, axis=1)[:, -k:].mean(axis=1)
    return out


def _features(probabilities: np.ndarray, similarity: np.ndarray, answered: np.ndarray) -> np.ndarray:
    """(rows x 3): logit of the answered label's probability, its similarity, its margin over the nearest other."""
    rows = np.arange(len(answered))
    p = np.clip(probabilities[rows, answered].astype(np.float64), 1e-12, 1.0 - 1e-12)
    others = similarity.astype(np.float64)  # a copy
    others[rows, answered] = -np.inf
    answered_similarity = similarity[rows, answered]
    return np.column_stack([np.clip(np.log(p) - np.log1p(-p), -MAX_LOGIT, MAX_LOGIT), answered_similarity,
                            answered_similarity - others.max(axis=1)])


@dataclass(frozen=True)
class NoveltyCalibrator:
    """P(answer right | its probability, its nearness to that label's training examples)."""

    exemplars: np.ndarray  # (training rows x embedding), L2-normalised, float16 values (saved so) held as float32
    columns: np.ndarray  # (training rows,) each exemplar's class column in the head
    coef: np.ndarray  # (4,): the weights of logit(p), the similarity and the margin, then the bias
    neighbours: int = NEIGHBOURS

    def __post_init__(self) -> None:
        # Converted once here, not in every product: a float16 matrix is copied to float32 on each call (0.3 ms an
        # item at support_ticket's 434 rows, 10 ms at 5,000, against 0.04 and 0.6 ms from float32)
        object.__setattr__(self, "exemplars", np.asarray(self.exemplars, dtype=np.float32))

    def similarity(self, X: np.ndarray, n_classes: int) -> np.ndarray:
        return neighbour_similarity(X, self.exemplars, self.columns, n_classes, self.neighbours)

    def confidence(self, probabilities: np.ndarray, similarity: np.ndarray, answered: np.ndarray) -> np.ndarray:
        """For each row, the calibrated chance that the label in column ``answered`` is right."""
        z = _features(probabilities, similarity, answered) @ self.coef[:3] + self.coef[3]
        return 1.0 / (1.0 + np.exp(-z))

    def arrays(self) -> dict[str, np.ndarray]:
        exemplars, columns, coef = ARRAY_NAMES
        return {exemplars: self.exemplars.astype(np.float16), columns: self.columns.astype(np.int32),
                coef: np.append(self.coef, self.neighbours).astype(np.float64)}

    @classmethod
    def from_arrays(cls, arrays) -> "NoveltyCalibrator | None":
        """The calibrator saved with a head, or None for a head saved without one (it answers as before)."""
        exemplars, columns, coef = ARRAY_NAMES
        if exemplars not in arrays:
            return None
        saved = np.asarray(arrays[coef], dtype=np.float64)
        return cls(np.asarray(arrays[exemplars]), np.asarray(arrays[columns]), saved[:4], int(saved[4]))


def fit_novelty(X: np.ndarray, targets: np.ndarray, oof_probabilities: np.ndarray, similarity: np.ndarray, *,
                neighbours: int = NEIGHBOURS, random_state: int = 0) -> NoveltyCalibrator:
    """Fit on out-of-fold data: ``oof_probabilities`` scores each row by a head that did not see it, and
    ``similarity`` is held_out_similarity over the folds that made them (a row's similarity to its fold's training
    part, as a new item's will be to the whole training set); both may stack several fold assignments' passes over
    the rows, in their order. ``X`` (all rows, once) become the exemplars."""
    from sklearn.linear_model import LogisticRegression  # fitting only: answering stays numpy

    X = np.asarray(X, dtype=np.float32)
    targets = np.asarray(targets)
    if len(oof_probabilities) % len(targets):
        raise ValueError("out-of-fold rows must be whole passes over the training rows")
    passes = len(oof_probabilities) // len(targets)
    answered = oof_probabilities.argmax(axis=1)
    right = answered == np.tile(targets, passes)
    features = _features(oof_probabilities, similarity, answered)
    if right.all() or not right.any():  # nothing to learn from: keep the probability as it is
        coef = np.array([1.0, 0.0, 0.0, 0.0])
    else:
        # Regularised as for one pass: the passes are the same examples again, not new evidence
        model = LogisticRegression(C=1.0 / passes, random_state=random_state).fit(features, right)
        coef = np.append(model.coef_[0], model.intercept_[0])
    return NoveltyCalibrator(X.astype(np.float16), targets.astype(np.int32), coef, neighbours)


def held_out_similarity(X: np.ndarray, targets: np.ndarray, splits: Sequence[tuple[np.ndarray, np.ndarray]],
                        n_classes: int, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Each row's similarity to the training part of the fold that holds it out (rows x classes)."""
    similarity = np.zeros((len(X), n_classes))
    for train, held_out in splits:
        similarity[held_out] = neighbour_similarity(X[held_out], X[train], targets[train], n_classes, neighbours)
    return similarity

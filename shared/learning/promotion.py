"""Champion/challenger: a retrained head replaces the active one only if it is not worse on a held-out slice.

"Not worse", on the same slice (both heads answer every item; an answer is right when it equals the gold label):
1. the slice has at least ``min_slice`` items (fewer cannot tell noise from change: no promotion);
2. accuracy: candidate >= active - z * SE, where SE is the standard error of the paired accuracy difference,
   sqrt(b + c - (c - b)^2 / n) / n, with b = items only the active head gets right and c = items only the
   candidate gets right. With the default z = 1, a drop within one standard error of the slice's sampling noise is
   tolerated; a larger drop is not;
3. calibration: candidate ECE <= active ECE + ``max_ece_increase`` (default 0.02), since the cascade trusts the
   confidence, not only the label.
Before both, the candidate must agree with the slice's labels more than chance would, by more than z binomial
standard errors. Chance is the accuracy of answers drawn independently of the gold label with the candidate's own
label frequencies, sum over labels of P(gold = k) * P(answer = k) (Cohen's kappa is above 0 exactly when accuracy
exceeds it): a head answering noise, or always the most common label, sits at chance, one that learned sits above
it, even on a slice where one label dominates. Judged against labels that are noise (a frontier misconfigured, a
shuffled export), both heads score at chance, and an unsure candidate would otherwise win on calibration. With no
active head, the candidate is promoted if the slice is large enough and it beats chance. Every decision is returned as a
PromotionDecision and can be recorded in the artifact store beside the heads.
"""

from __future__ import annotations

import math
from collections import Counter
from datetime import datetime, timezone
from typing import Protocol, Sequence

import numpy as np
from pydantic import BaseModel

from shared.learning.artifact import new_version
from shared.foundation.metrics import expected_calibration_error, selective_accuracy
from shared.learning.stores import ArtifactStore


class _Head(Protocol):
    def predict_with_confidence(self, X: np.ndarray, texts: Sequence[str] | None = None): ...


class SliceScore(BaseModel):
    accuracy: float
    ece: float
    selective_accuracy_80: float


class PromotionDecision(BaseModel):
    task: str
    promote: bool
    reason: str
    active_version: str | None
    candidate_version: str
    slice_size: int
    slice_source: str
    active: SliceScore | None
    candidate: SliceScore
    accuracy_tolerance: float | None
    max_ece_increase: float
    decided_at: datetime


def _score(head: _Head, X: np.ndarray, texts: Sequence[str] | None,
           gold: np.ndarray) -> tuple[SliceScore, np.ndarray, np.ndarray]:
    predictions = head.predict_with_confidence(X, texts)
    answers = np.asarray(predictions.labels, dtype=object)
    right = answers == gold
    score = SliceScore(accuracy=float(right.mean()), ece=expected_calibration_error(predictions.confidence, right),
                       selective_accuracy_80=selective_accuracy(predictions.confidence, right, 0.8))
    return score, right, answers


def chance_accuracy(answers: np.ndarray, gold: np.ndarray) -> float:
    """The accuracy of answers with these label frequencies drawn independently of the gold labels."""
    answer_share = Counter(answers.tolist())
    return sum(count * answer_share[label] for label, count in Counter(gold.tolist()).items()) / len(gold) ** 2


def promotion_gate(
    *,
    task: str,
    candidate: _Head,
    candidate_version: str,
    active: _Head | None,
    active_version: str | None,
    X: np.ndarray,
    gold: Sequence[str],
    slice_source: str,
    texts: Sequence[str] | None = None,
    z: float = 1.0,
    max_ece_increase: float = 0.02,
    min_slice: int = 50,
) -> PromotionDecision:
    """Judge a candidate head against the active one on embeddings ``X`` of a held-out slice's ``texts`` (which
    heads with word n-grams read too) with ``gold`` labels.
    Both heads must use the same embedder (the artifact loader enforces that for each). ``slice_source`` says which
    slice it was (e.g. the file and its hash) for the record."""
    gold_arr = np.asarray(list(gold), dtype=object)
    n = len(gold_arr)
    candidate_score, candidate_right, candidate_answers = _score(candidate, X, texts, gold_arr)
    active_score, active_right, _ = _score(active, X, texts, gold_arr) if active is not None else (None, None, None)
    tolerance = None
    chance = chance_accuracy(candidate_answers, gold_arr) if n else 0.0
    chance_margin = z * math.sqrt(chance * (1 - chance) / n) if n else 0.0
    if n < min_slice:
        promote, reason = False, f"slice of {n} items is smaller than {min_slice}: too small to judge"
    elif candidate_score.accuracy <= chance + chance_margin:
        promote, reason = False, (f"accuracy {candidate_score.accuracy:.4f} is no better than chance "
                                  f"({chance:.4f} + {chance_margin:.4f}): the slice's labels may be noise")
    elif active_score is None:
        promote, reason = True, "no active head"
    else:
        only_active = int(np.sum(active_right & ~candidate_right))
        only_candidate = int(np.sum(candidate_right & ~active_right))
        se = math.sqrt(max(only_active + only_candidate - (only_candidate - only_active) ** 2 / n, 0.0)) / n
        tolerance = z * se
        drop = active_score.accuracy - candidate_score.accuracy
        ece_rise = candidate_score.ece - active_score.ece
        if drop > tolerance:
            promote, reason = False, f"accuracy {drop:.4f} lower, more than the tolerated {tolerance:.4f} ({z:g} SE)"
        elif ece_rise > max_ece_increase:
            promote, reason = False, f"ECE {ece_rise:.4f} higher, more than the tolerated {max_ece_increase:.4f}"
        else:
            promote, reason = True, (f"not worse: accuracy {-drop:+.4f} (tolerance {tolerance:.4f}), "
                                     f"ECE {ece_rise:+.4f} (tolerance {max_ece_increase:.4f})")
    return PromotionDecision(
        task=task, promote=promote, reason=reason, active_version=active_version,
        candidate_version=candidate_version, slice_size=n, slice_source=slice_source, active=active_score,
        candidate=candidate_score, accuracy_tolerance=tolerance, max_ece_increase=max_ece_increase,
        decided_at=datetime.now(timezone.utc),
    )


def record_decision(store: ArtifactStore, decision: PromotionDecision) -> str:
    """Write the decision as ``{task}/decisions/{time}.json`` and return its key."""
    key = f"{decision.task}/decisions/{new_version(decision.decided_at)}.json"
    store.write(key, decision.model_dump_json(indent=2).encode("utf-8"))
    return key

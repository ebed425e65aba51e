"""Turning held-out logits into trustworthy probabilities: temperature scaling and the out-of-scope threshold.

Answering uses ``softmax`` alone, so this module imports numpy alone; scipy's optimiser is imported when a
temperature is fitted.
"""

from __future__ import annotations

import numpy as np

MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax, in the steps of scipy.special.log_softmax (shift by the row's maximum, a finite one),
    so that probabilities are the same to the last bit as when scipy computed them."""
    shift = logits.max(axis=1, keepdims=True)
    shift[~np.isfinite(shift)] = 0.0
    shifted = logits - shift
    with np.errstate(divide="ignore"):
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    return np.exp(log_softmax(np.asarray(logits, dtype=np.float64) / temperature))


def negative_log_likelihood(logits: np.ndarray, targets: np.ndarray, temperature: float = 1.0) -> float:
    """Mean -log p(target) under softmax(logits / temperature); ``targets`` are column indices."""
    log_p = log_softmax(np.asarray(logits, dtype=np.float64) / temperature)
    return float(-log_p[np.arange(len(targets)), targets].mean())


def fit_temperature(logits: np.ndarray, targets: np.ndarray) -> float:
    """The single T > 0 that minimises the NLL of held-out rows (Guo et al. 2017). It rescales every logit alike,
    so the predicted label never changes; only how sure the head says it is. Searched on log T, bounded."""
    from scipy.optimize import minimize_scalar

    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(logits, targets, float(np.exp(log_t))),
        bounds=(np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)), method="bounded", options={"xatol": 1e-4},
    )
    return float(np.exp(result.x))


def choose_reject_threshold(max_probability: np.ndarray, rejected_already: np.ndarray, max_reject: float) -> float:
    """The out-of-scope threshold: an item whose best in-scope label has probability < threshold is answered none.

    Rule: on held-out rows that ARE in scope, the share answered none -- rejected already (predicted as the none class)
    or by the threshold -- may be at most ``max_reject``; the threshold is the largest value that keeps to it. It costs
    at most that share of in-scope accuracy and catches as many out-of-scope items as that budget allows. Only
    in-scope rows are needed, so the rule works without a single out-of-scope example. 0.0 means no threshold
    (the budget is already spent by the none class).

    ``max_probability``: the best in-scope label's probability for each in-scope held-out row;
    ``rejected_already``: True where that row is already answered none.
    """
    if not 0.0 <= max_reject < 1.0:
        raise ValueError("max_reject must be in [0, 1)")
    budget = int(np.floor(max_reject * len(max_probability))) - int(np.sum(rejected_already))
    candidates = np.sort(np.asarray(max_probability, dtype=float)[~np.asarray(rejected_already, dtype=bool)])
    if budget <= 0 or candidates.size == 0:
        return 0.0
    if budget >= candidates.size:
        return float(np.nextafter(candidates[-1], np.inf))
    # Rows strictly below candidates[budget] are at most `budget`, even with ties.
    return float(candidates[budget])


def choose_recall_threshold(none_max_probability: np.ndarray, caught_already: np.ndarray, min_recall: float) -> float:
    """The out-of-scope threshold that meets a recall requirement: the lowest value at which at least ``min_recall``
    of held-out rows that are NOT in scope end as none -- caught already (predicted as the none class) or by the
    threshold. The lowest such value costs the fewest in-scope answers. Needs examples of the none label.

    ``none_max_probability``: the best in-scope label's probability for each out-of-scope held-out row;
    ``caught_already``: True where that row is already answered none.
    """
    if not 0.0 < min_recall <= 1.0:
        raise ValueError("min_recall must be in (0, 1]")
    caught_already = np.asarray(caught_already, dtype=bool)
    if caught_already.size == 0:
        raise ValueError("a recall requirement needs held-out examples of the none label")
    still_needed = int(np.ceil(min_recall * caught_already.size - 1e-9)) - int(caught_already.sum())
    if still_needed <= 0:
        return 0.0
    candidates = np.sort(np.asarray(none_max_probability, dtype=float)[~caught_already])
    # Rows strictly below the threshold are caught: the `still_needed` least sure, and any tied with the last.
    return float(np.nextafter(candidates[still_needed - 1], np.inf))

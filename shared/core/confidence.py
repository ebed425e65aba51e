"""Confidence signals: label probability mass, per-field token probability, k-sample agreement."""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Any, Callable, Sequence

import numpy as np

from shared.core.validation import answer_span
from shared.foundation.answers import agreement_key

TokenLogprob = tuple[bytes, float]  # a token's bytes and its log-probability
LOGPROB_ROUNDING = 1e-4  # how far above 0 an endpoint's float rounding may put a near-certain token's log-probability


def normalise_label_scores(log_scores: dict[str, float]) -> dict[str, float]:
    """Softmax over the allowed labels' sequence log-probabilities: a distribution that sums to 1."""
    labels = list(log_scores)
    values = np.array([log_scores[label] for label in labels], dtype=np.float64)
    values = np.exp(values - values.max())
    values /= values.sum()
    return dict(zip(labels, values.tolist()))


def top_level_value_spans(text: str) -> dict[str, tuple[int, int]]:
    """Character spans of each top-level value of the JSON object a reply holds (inside its ``` fence, if it has
    one), e.g. {"a": 1} -> {"a": (6, 7)}. ValueError if the reply is not one."""
    decoder = json.JSONDecoder()
    spans: dict[str, tuple[int, int]] = {}
    i = text.index("{", answer_span(text)[0]) + 1

    def skip_ws(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    while True:
        i = skip_ws(i)
        if i >= len(text) or text[i] == "}":
            return spans
        key, i = decoder.raw_decode(text, i)
        i = skip_ws(i)
        if text[i] != ":":
            raise ValueError(f"expected ':' at {i}")
        start = skip_ws(i + 1)
        _, end = decoder.raw_decode(text, start)
        spans[str(key)] = (start, end)
        i = skip_ws(end)
        if i < len(text) and text[i] == ",":
            i += 1


def field_confidences(text: str, tokens: Sequence[TokenLogprob]) -> dict[str, float]:
    """Per top-level field: the probability of the tokens that spell its value (their joint probability).

    A token counts for a field if it overlaps the value's byte span, so a token that merges a quote with
    the first characters still counts. ValueError if a token's log-probability is not one (see `logprob`).
    """
    encoded_prefix_len = _char_to_byte_offsets(text)
    token_spans: list[tuple[int, int, float]] = []
    pos = 0
    for piece, value in tokens:
        token_spans.append((pos, pos + len(piece), logprob(value)))
        pos += len(piece)
    result: dict[str, float] = {}
    for field, (start, end) in top_level_value_spans(text).items():
        b_start, b_end = encoded_prefix_len[start], encoded_prefix_len[end]
        joint = sum(lp for t_start, t_end, lp in token_spans if t_start < b_end and t_end > b_start)
        result[field] = math.exp(joint)
    return result


def logprob(value: float) -> float:
    """`value` as a log-probability: at most 0 (-inf is probability 0), where a hair above 0 (an endpoint's
    rounding of a near-certain token) reads as 0. ValueError for anything else (NaN, above 0), which no
    distribution gives."""
    if not value <= LOGPROB_ROUNDING:  # NaN compares false
        raise ValueError(f"{value!r} is not a log-probability")
    return min(value, 0.0)


def _char_to_byte_offsets(text: str) -> list[int]:
    offsets = [0]
    for ch in text:
        offsets.append(offsets[-1] + len(ch.encode("utf-8")))
    return offsets


def sequential_label_agreement(
    draw: Callable[[int], list[str | None]], k: int, need: int | None
) -> tuple[str | None, float, int]:
    """k-sample label agreement, drawing only as many samples as the decision against `need` of k takes.

    `draw(n)` returns n more samples (None for an invalid one). Sampling stops as soon as the top label has
    `need` votes (accepted whatever the rest say) or can no longer reach `need` (escalated whatever the rest
    say); each round draws just enough samples that the top label could reach `need`. Undrawn samples count
    against the top label, so the agreement returned (top votes / k) is a lower bound of the full k-sample
    agreement and on the same side of need/k. `need` None draws all k. At least one sample is drawn, for a
    draft. Returns (label, agreement, samples drawn); the label is None when every sample was invalid.
    The rule is `samples_to_draw` and `label_agreement`, which a caller that awaits its samples drives itself.
    """
    samples: list[str | None] = []
    while batch := samples_to_draw(samples, k, need):
        samples += draw(batch)
    return label_agreement(samples, k)


def samples_to_draw(samples: Sequence[str | None], k: int, need: int | None) -> int:
    """How many samples the next round of `sequential_label_agreement` draws, given those drawn; 0: settled."""
    counts = Counter(s for s in samples if s is not None)
    top = counts.most_common(1)[0][1] if counts else 0
    remaining = k - len(samples)
    if remaining <= 0 or (need is not None and samples and (top >= need or top + remaining < need)):
        return 0
    if need is None:
        return remaining
    if need > k:  # nothing can be accepted: one sample is a draft for review
        return 1
    return max(1, min(remaining, need - top))


def label_agreement(samples: Sequence[str | None], k: int) -> tuple[str | None, float, int]:
    """(top label, its votes / k, samples drawn); the label is None when every sample was invalid."""
    counts = Counter(s for s in samples if s is not None)
    if not counts:
        return None, 0.0, len(samples)
    label, votes = counts.most_common(1)[0]
    return label, votes / k, len(samples)


def field_agreement(
    samples: Sequence[dict[str, Any] | None], fields: Sequence[str]
) -> tuple[dict[str, Any], dict[str, float]]:
    """Per field: the most frequent (normalised) value across samples, and the share of samples agreeing."""
    valid = [s for s in samples if s is not None]
    answer: dict[str, Any] = {}
    confidence: dict[str, float] = {}
    for field in fields:
        present = [s[field] for s in valid if field in s]
        if not present:
            confidence[field] = 0.0
            continue
        counts = Counter(agreement_key(v) for v in present)
        key, count = counts.most_common(1)[0]
        answer[field] = next(v for v in present if agreement_key(v) == key)
        confidence[field] = count / len(samples)
    return answer, confidence

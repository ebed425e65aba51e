"""The feature vector of one candidate (see line_candidates): what the line tagger's classifier sees.

- meaning: the MiniLM embedding of the candidate's lines (their mean, re-normalised), of the line before and of the
  line after (a label such as "TOTAL:" often sits on the line before the value);
- shape: relative position, run length, shares of digits / upper case / letters, length, whether a date or an
  amount pattern occurs, how alike the candidate is to its neighbours;
- the field's keywords, learned from the training data (``learn_keywords``): the words most over-represented on or
  just before the lines that hold the field's value, and their share on the candidate's, previous and next line;
- for dates and amounts: where the match sits in its line, how often the same value occurs in the text, and for
  amounts the value's rank among the text's amounts (a total is often the largest, and printed more than once).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from shared.foundation.answers import NORMALISERS, ValueKind
from shared.learning.line_candidates import PATTERNS, Candidate, amount_value

_WORD = re.compile(r"[^\W\d_]{2,}")
MAX_SPAN_FEATURE = 6  # run lengths are one-hot up to this


@dataclass(frozen=True)
class EmbeddedText:
    """A text's lines and their embeddings (one L2-normalised row per line)."""

    lines: list[str]
    vectors: np.ndarray


def words(line: str) -> set[str]:
    return set(_WORD.findall(line.casefold()))


def learn_keywords(contexts: Sequence[set[str]], all_lines: Sequence[set[str]], top: int = 20,
                   min_share: float = 0.05) -> list[str]:
    """Words in at least ``min_share`` of the positive contexts, ranked by smoothed log-odds of a positive context
    against all lines; the ``top`` most over-represented (none if they are not over-represented at all)."""
    if not contexts:
        return []
    positive, everywhere = Counter(w for c in contexts for w in c), Counter(w for line in all_lines for w in line)
    n_pos, n_all = len(contexts), max(len(all_lines), 1)
    scored = [(math.log((positive[w] + 1) / (n_pos + 2)) - math.log((everywhere[w] + 1) / (n_all + 2)), w)
              for w in positive if positive[w] >= max(2, min_share * n_pos)]
    return [w for score, w in sorted(scored, key=lambda sw: (-sw[0], sw[1])) if score > 0][:top]


def _shape(text: str) -> list[float]:
    n = max(len(text), 1)
    letters = sum(ch.isalpha() for ch in text)
    return [
        sum(ch.isdigit() for ch in text) / n,
        sum(ch.isupper() for ch in text) / max(letters, 1),
        letters / n,
        math.log1p(len(text)),
        float(bool(PATTERNS["date"].search(text))),
        float(bool(PATTERNS["amount"].search(text))),
    ]


def _keyword_share(line_words: set[str], keywords: frozenset[str]) -> list[float]:
    hits = len(line_words & keywords)
    return [hits / max(len(line_words), 1), float(hits > 0)]


def features(text: EmbeddedText, found: Sequence[Candidate], kind: ValueKind, keywords: Sequence[str]) -> np.ndarray:
    """One row per candidate: [span, previous, next embeddings | shape and keyword features]."""
    if not found:
        return np.zeros((0, feature_count(text.vectors.shape[1])), dtype=np.float32)
    n, dim = text.vectors.shape
    start = np.array([c.start for c in found])
    length = np.array([c.length for c in found])
    padded = np.vstack([np.zeros((1, dim), np.float32), text.vectors, np.zeros((1, dim), np.float32)])
    cumulative = np.vstack([np.zeros((1, dim)), np.cumsum(text.vectors, axis=0, dtype=np.float64)])
    span = (cumulative[start + length] - cumulative[start]) / length[:, None]
    span /= np.maximum(np.linalg.norm(span, axis=1, keepdims=True), 1e-12)
    previous, following = padded[start], padded[start + length + 1]

    keyword_set = frozenset(keywords)
    line_words = [words(line) for line in text.lines] + [set()]
    normalise = NORMALISERS[kind]
    value_counts = Counter(normalise(c.value) for c in found)
    # 0 for a candidate that is no number or overflows a float (its ratio to the largest would be NaN)
    amounts = np.array([amount_value(c.value) or 0.0 for c in found]) if kind == "amount" else np.zeros(len(found))
    top_amount = max(float(amounts.max()), 1e-9)
    shape_rows = []
    for c, prev_vec, span_vec, next_vec, amount in zip(found, previous, span, following, amounts):
        line = text.lines[c.start]
        span_text = " ".join(text.lines[c.start:c.start + c.length])
        after = c.start + c.length
        span_words = set().union(*line_words[c.start:after])
        row = [
            c.start / max(n - 1, 1), (after - 1) / max(n - 1, 1), float(c.start == 0), float(after == n),
            *(float(c.length == k) for k in range(1, MAX_SPAN_FEATURE + 1)),
            *_shape(span_text),
            float(span_vec @ prev_vec), float(span_vec @ next_vec),
            *_keyword_share(span_words, keyword_set),
            *_keyword_share(line_words[c.start - 1] if c.start else set(), keyword_set),
            *_keyword_share(line_words[after] if after < n else set(), keyword_set),
            # the match within its line (runs of text: the whole line)
            c.begin / max(len(line), 1), float(c.end >= len(line.rstrip())) if kind != "text" else 1.0,
            float(c.match_index == c.matches_in_line - 1), math.log1p(c.matches_in_line),
            (len(line) - (c.end - c.begin)) / max(len(line), 1) if kind != "text" else 0.0,
            math.log1p(value_counts[normalise(c.value)]),
            amount / top_amount, float(amount >= top_amount), float(amount < 0),
            float(np.mean(amounts <= amount)) if kind == "amount" else 0.0,
        ]
        shape_rows.append(row)
    return np.hstack([span, previous, following, np.asarray(shape_rows)]).astype(np.float32)


# position, run length, shape, neighbour similarity, keywords, match, value count, amount
SHAPE_FEATURES = 4 + MAX_SPAN_FEATURE + 6 + 2 + 6 + 5 + 1 + 4


def feature_count(dimension: int) -> int:
    return 3 * dimension + SHAPE_FEATURES

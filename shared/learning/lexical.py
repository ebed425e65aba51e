"""Word n-gram TF-IDF features: the lexical view a trained head reads beside the sentence embedding.

A mean-pooled sentence embedding blurs the few words that separate close intents ("virtual" vs "disposable"
card, "pending" vs "declined" top-up); a TF-IDF of the words and word pairs keeps them. One logistic regression
over both views, measured on Banking77 with everything fitted on the train split (5-fold, C = 10): accuracy
0.921 -> 0.926 cross-validated and 0.929 -> 0.936 on dev, log loss 0.280 -> 0.260, accuracy of the 80% most
confident 0.984 -> 0.985 (dev 0.983 -> 0.988). On support tickets (240, then the 434 of today's head) they add
nothing, so whether a head uses them is decided by cross-validation (classifier.py). The vocabulary is fitted on the
training texts only (inside cross-validation, on each fold's training part), so it never sees the rows it is judged
on.

scikit-learn's TfidfVectorizer fits the vocabulary and idf (imported inside ``fit``); turning texts into TF-IDF rows
is written here in numpy, the same steps in the same order (lowercase, its default token pattern, word n-grams,
1 + log of the counts, times idf, rows L2-normalised), so that answering never imports scikit-learn or scipy.
tests/learning/test_lexical.py holds it equal to TfidfVectorizer's.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix

NGRAM_RANGE = (1, 2)
MIN_DF = 2  # an n-gram seen once in training says nothing a held-out text can reuse
# TfidfVectorizer's default token_pattern: words of two or more word characters.
TOKEN = re.compile(r"(?u)\b\w\w+\b")


class WordNgrams:
    """TF-IDF over word n-grams (sublinear term frequency, rows L2-normalised), vocabulary fitted on training texts.
    With nothing that passes ``min_df`` (a tiny training set) it has no columns, and the head reads the embedding
    alone."""

    def __init__(self, *, ngram_range: tuple[int, int] = NGRAM_RANGE, min_df: int = MIN_DF) -> None:
        self.ngram_range = tuple(ngram_range)
        self.min_df = min_df
        self._columns: dict[str, int] = {}  # n-gram -> column
        self.idf = np.zeros(0)

    def fit(self, texts: Sequence[str]) -> "WordNgrams":
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(ngram_range=self.ngram_range, sublinear_tf=True, dtype=np.float64,
                                     min_df=self.min_df)
        try:
            vectorizer.fit(list(texts))
        except ValueError:  # no n-gram in min_df texts: no lexical columns
            self._columns, self.idf = {}, np.zeros(0)
            return self
        self._columns = {str(ngram): int(column) for ngram, column in vectorizer.vocabulary_.items()}
        self.idf = np.asarray(vectorizer.idf_, dtype=np.float64)
        return self

    @property
    def vocabulary(self) -> list[str]:
        """The n-grams, in column order."""
        return sorted(self._columns, key=self._columns.__getitem__)

    @property
    def width(self) -> int:
        return len(self._columns)

    def ngrams(self, text: str) -> list[str]:
        """The text's word n-grams, as TfidfVectorizer's analyzer lists them."""
        words = TOKEN.findall(text.lower())
        low, high = self.ngram_range
        return [" ".join(words[start:start + n]) for n in range(low, high + 1) for start in range(len(words) - n + 1)]

    def tfidf_rows(self, texts: Sequence[str]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Each text's TF-IDF as (columns, values), columns ascending; n-grams outside the vocabulary are dropped."""
        for text in texts:
            counts = Counter(column for ngram in self.ngrams(text) if (column := self._columns.get(ngram)) is not None)
            columns = np.fromiter(sorted(counts), dtype=np.int64, count=len(counts))
            values = np.log(np.fromiter((counts[c] for c in columns), dtype=np.float64, count=len(columns))) + 1.0
            values *= self.idf[columns]
            if (norm := np.sqrt(values @ values)) > 0.0:
                values /= norm
            yield columns, values

    def transform(self, texts: Sequence[str]) -> "csr_matrix":
        """The texts' TF-IDF as a sparse matrix (for fitting: imports scipy)."""
        from scipy.sparse import csr_matrix

        rows = list(self.tfidf_rows(texts))
        indptr = np.cumsum([0] + [len(columns) for columns, _ in rows])
        columns = np.concatenate([c for c, _ in rows]) if rows else np.zeros(0, dtype=np.int64)
        values = np.concatenate([v for _, v in rows]) if rows else np.zeros(0)
        return csr_matrix((values, columns, indptr), shape=(len(rows), self.width))

    @classmethod
    def restore(cls, vocabulary: Sequence[str], idf: np.ndarray, ngram_range: Sequence[int]) -> "WordNgrams":
        """Fitted features rebuilt from a saved vocabulary and idf: they transform exactly as the saved ones."""
        low, high = (int(n) for n in ngram_range)
        if not 1 <= low <= high:
            raise ValueError(f"invalid n-gram range {low}-{high}")
        if len(vocabulary) != len(idf):
            raise ValueError(f"{len(vocabulary)} n-grams but {len(idf)} idf weights")
        ngrams = cls(ngram_range=(low, high))
        ngrams._columns = {str(ngram): column for column, ngram in enumerate(vocabulary)}
        ngrams.idf = np.asarray(idf, dtype=np.float64)
        return ngrams

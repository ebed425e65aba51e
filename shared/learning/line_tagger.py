"""Extraction by the trained tier: a line tagger that learns, per schema field, which line(s) of a text hold its value.

LineTagger (scikit-learn style: fit / predict_proba / predict, parameters explicit in __init__), for each field:
1. Its value kind (line_candidates: text runs, dates or amounts) comes from the schema where it says, else from the
   data; for text, the longest run of lines a value spans in the data, and the joiner and trim its values show.
2. Training labels: the candidates whose value is the expected one (line_candidates.label_candidates).
3. A binary logistic regression scores each candidate (line_features; standardised, the scaling folded into the
   weights); negatives are subsampled per text, which shifts only the intercept -- step 4 recalibrates anyway.
4. Within one text, candidates compete: p(value) = the softmax mass, at temperature T, of the candidates giving that
   value, against a none-of-these option with logit b. The answer is the value with the most mass; its mass is the
   field's confidence. T and b are fitted on out-of-fold scores (k-fold over texts: every text scored by a model
   that did not see it) to maximise the likelihood of the answer being right, texts with no right candidate
   included; C is chosen on the same folds (best out-of-fold exact match; the smaller C on a tie).
The item's confidence is the product or the minimum of its fields' confidences, whichever tracks out-of-fold item
correctness better (lower Brier score); ``item_rule_`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
from pydantic import BaseModel

from shared.foundation.metrics import expected_calibration_error, selective_accuracy
from shared.foundation.answers import NORMALISERS, ValueKind, same_value
from shared.learning.line_candidates import (
    Candidate, candidates, choose_joiner, choose_kind, choose_trim, label_candidates, schema_kind, split_lines,
)
from shared.learning.line_features import EmbeddedText, features, learn_keywords, words

LINE_TAGGER_CONFIDENCE_METHOD = "line tagger: temperature-scaled candidate probability"
ItemRule = str  # "product" | "min"
_MIN_T, _MAX_T = 0.05, 20.0


class FieldMetrics(BaseModel):
    """Out-of-fold figures of one field, after calibration."""

    exact_match: float
    ece: float
    ece_uncalibrated: float
    selective_accuracy_80: float
    labelled_rows: int  # rows where some candidate holds the expected value (the ceiling of exact_match)
    cv_exact_match_by_c: dict[str, float]


class TaggerMetrics(BaseModel):
    folds: int
    rows: int
    fields: dict[str, FieldMetrics]
    item_accuracy: float
    item_rule: str
    item_ece: float
    item_brier_by_rule: dict[str, float]
    item_selective_accuracy_80: float


@dataclass(frozen=True)
class FieldPrediction:
    value: str | None
    confidence: float


@dataclass
class FieldTagger:
    """A fitted field: how its candidates are found and scored, and how scores become a probability."""

    kind: ValueKind
    max_span: int
    joiner: str
    trim: str
    keywords: list[str]
    coef: np.ndarray
    intercept: float
    C: float
    temperature: float
    none_logit: float

    def candidates(self, text: EmbeddedText) -> list[Candidate]:
        return candidates(text.lines, self.kind, self.max_span, self.joiner, self.trim)

    def features(self, text: EmbeddedText, found: Sequence[Candidate]) -> np.ndarray:
        return features(text, found, self.kind, self.keywords)

    def predict(self, text: EmbeddedText) -> FieldPrediction:
        found = self.candidates(text)
        if not found:
            return FieldPrediction(None, 0.0)
        scores = self.features(text, found).astype(np.float64) @ self.coef + self.intercept
        groups = _Groups.of(found, self.kind)
        best, probability = groups.best(scores, self.temperature, self.none_logit)
        return FieldPrediction(groups.values[best], probability)


@dataclass(frozen=True)
class _Groups:
    """The candidates of one text grouped by value: they compete as values, not as places."""

    ids: np.ndarray
    values: list[str]  # each group's value as first printed

    @classmethod
    def of(cls, found: Sequence[Candidate], kind: ValueKind) -> "_Groups":
        normalise, index, values, ids = NORMALISERS[kind], {}, [], []
        for c in found:
            key = normalise(c.value)
            if key not in index:
                index[key] = len(values)
                values.append(c.value)
            ids.append(index[key])
        return cls(np.asarray(ids), values)

    def best(self, scores: np.ndarray, temperature: float, none_logit: float) -> tuple[int, float]:
        logits = np.append(scores, none_logit) / temperature
        weights = np.exp(logits - logits.max())
        mass = np.bincount(self.ids, weights=weights[:-1], minlength=len(self.values)) / weights.sum()
        top = int(mass.argmax())
        return top, float(mass[top])


@dataclass
class _FieldData:
    """One field's training material: per text, its candidates, features, labels and value groups."""

    found: list[list[Candidate]]
    X: list[np.ndarray]
    y: list[np.ndarray]
    groups: list[_Groups]
    right: list[np.ndarray]  # per text, which value groups are the expected value


class LineTagger:
    def __init__(
        self,
        *,
        schema: Mapping[str, Any],
        Cs: Sequence[float] = (0.1, 1.0),
        cv_folds: int = 5,
        max_span_lines: int = 6,
        max_negatives: int = 50,
        min_similarity: float = 0.8,
        keywords: int = 20,
        max_iter: int = 1000,
        random_state: int = 0,
        n_jobs: int = 1,
    ) -> None:
        self.schema = dict(schema)
        self.Cs = tuple(sorted(Cs))
        self.cv_folds = cv_folds
        self.max_span_lines = max_span_lines
        self.max_negatives = max_negatives
        self.min_similarity = min_similarity
        self.keywords = keywords
        self.max_iter = max_iter
        self.random_state = random_state
        self.n_jobs = n_jobs  # parallel cross-validation fits (joblib); 1 keeps training to one core

    @property
    def field_names(self) -> list[str]:
        return list(self.schema["properties"])

    # -- training -----------------------------------------------------------------------------------------------
    def fit(self, texts: Sequence[EmbeddedText], expected: Sequence[Mapping[str, Any]]) -> "LineTagger":
        if len(texts) != len(expected):
            raise ValueError("texts and expected values differ in length")
        from sklearn.model_selection import KFold  # fitting only: answering never imports scikit-learn

        folds = min(self.cv_folds, len(texts))
        if folds < 2:
            raise ValueError("training needs at least 2 labelled texts")
        splits = list(KFold(folds, shuffle=True, random_state=self.random_state).split(np.arange(len(texts))))
        self.fields_: dict[str, FieldTagger] = {}
        field_metrics, oof = {}, {}
        for name in self.field_names:
            values = [row.get(name) for row in expected]
            tagger, data = self._prepare(name, texts, values)
            oof[name], field_metrics[name] = self._fit_field(tagger, data, splits)
            self.fields_[name] = tagger
        self.item_rule_, self.cv_metrics_ = self._item_metrics(oof, field_metrics, folds, len(texts))
        return self

    def _prepare(self, name: str, texts: Sequence[EmbeddedText], values: list[Any]) -> tuple[FieldTagger, _FieldData]:
        """The field's kind, run length, joiner and keywords; then every text's candidates, features and labels."""
        raw = ["\n".join(t.lines) for t in texts]
        kind = schema_kind(self.schema["properties"][name]) or choose_kind(raw, values, self.max_span_lines)
        joiner = choose_joiner(raw, values, self.max_span_lines) if kind == "text" else " "
        trim = choose_trim(raw, values, self.max_span_lines, joiner) if kind == "text" else "none"
        span = self.max_span_lines if kind == "text" else 1
        found = [candidates(t.lines, kind, span, joiner, trim) for t in texts]
        labels = [label_candidates(f, v, kind, self.min_similarity) for f, v in zip(found, values)]
        lengths = [c.length for f, ys in zip(found, labels) for c, y in zip(f, ys) if y]
        max_span = max(lengths, default=1)
        kept = [[i for i, c in enumerate(f) if c.length <= max_span] for f in found]
        found = [[f[i] for i in keep] for f, keep in zip(found, kept)]
        labels = [np.array([ys[i] for i in keep], dtype=bool) for ys, keep in zip(labels, kept)]

        contexts, all_lines = [], []
        for text, f, ys in zip(texts, found, labels):
            line_words = [words(line) for line in text.lines]
            all_lines += line_words
            for c in (c for c, y in zip(f, ys) if y):
                contexts.append(set().union(*line_words[max(c.start - 1, 0):c.start + c.length]))
        keywords = learn_keywords(contexts, all_lines, top=self.keywords)

        tagger = FieldTagger(kind=kind, max_span=max_span, joiner=joiner, trim=trim, keywords=keywords, coef=np.zeros(0),
                             intercept=0.0, C=self.Cs[0], temperature=1.0, none_logit=0.0)
        groups = [_Groups.of(f, kind) for f in found]
        right = [np.array([v is not None and same_value(kind, value, v) for value in g.values], dtype=bool)
                 for g, v in zip(groups, values)]
        X = [tagger.features(t, f) for t, f in zip(texts, found)]
        return tagger, _FieldData(found, X, labels, groups, right)

    def _fit_field(self, tagger: FieldTagger, data: _FieldData, splits) -> tuple[np.ndarray, FieldMetrics]:
        from joblib import Parallel, delayed

        n = len(data.X)
        fold_scores = Parallel(n_jobs=self.n_jobs)(
            delayed(self._fit_scores)(data, train, held_out, c) for c in self.Cs for train, held_out in splits)
        scores_by_c, exact_by_c = {}, {}
        for i, c in enumerate(self.Cs):
            scores: list[np.ndarray] = [np.zeros(0)] * n
            for (_, held_out), fold in zip(splits, fold_scores[i * len(splits):(i + 1) * len(splits)]):
                for index, s in zip(held_out, fold):
                    scores[index] = s
            scores_by_c[c] = scores
            exact_by_c[c] = float(np.mean(_decide(data, scores, 1.0, 0.0)[1]))
        tagger.C = max(self.Cs, key=lambda c: (exact_by_c[c], -c))
        scores = scores_by_c[tagger.C]
        tagger.temperature, tagger.none_logit = _fit_calibration(data, scores)
        confidence, right = _decide(data, scores, tagger.temperature, tagger.none_logit)
        raw_confidence, _ = _decide(data, scores, 1.0, 0.0)
        tagger.coef, tagger.intercept = self._fit_weights(data, np.arange(n), tagger.C)
        metrics = FieldMetrics(
            exact_match=float(right.mean()), ece=expected_calibration_error(confidence, right),
            ece_uncalibrated=expected_calibration_error(raw_confidence, right),
            selective_accuracy_80=selective_accuracy(confidence, right, 0.8),
            labelled_rows=int(sum(y.any() for y in data.y)),
            cv_exact_match_by_c={f"{c:g}": a for c, a in exact_by_c.items()},
        )
        return np.stack([confidence, right]), metrics

    def _fit_scores(self, data: _FieldData, train: np.ndarray, held_out: np.ndarray, C: float) -> list[np.ndarray]:
        coef, intercept = self._fit_weights(data, train, C)
        return [data.X[i].astype(np.float64) @ coef + intercept for i in held_out]

    def _fit_weights(self, data: _FieldData, rows: np.ndarray, C: float) -> tuple[np.ndarray, float]:
        """Logistic regression on the texts ``rows`` (every positive, at most ``max_negatives`` negatives per text),
        on standardised features; returned as weights on the raw features."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        rng = np.random.default_rng(self.random_state)
        X_parts, y_parts = [], []
        for i in rows:
            negatives = np.flatnonzero(~data.y[i])
            if len(negatives) > self.max_negatives:
                negatives = rng.choice(negatives, self.max_negatives, replace=False)
            keep = np.concatenate([np.flatnonzero(data.y[i]), negatives])
            X_parts.append(data.X[i][keep])
            y_parts.append(data.y[i][keep])
        X, y = np.vstack(X_parts), np.concatenate(y_parts)
        if y.all() or not y.any():  # nothing to tell apart (e.g. every date candidate is the date): a flat score,
            return np.zeros(X.shape[1]), 0.0  # the calibrated none option and value counts decide the confidence
        scaler = StandardScaler().fit(X)
        scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
        model = LogisticRegression(C=C, max_iter=self.max_iter, random_state=self.random_state)
        model.fit((X - scaler.mean_) / scale, y)
        coef = model.coef_[0] / scale
        return coef, float(model.intercept_[0] - coef @ scaler.mean_)

    def _item_metrics(self, oof: dict[str, np.ndarray], fields: dict[str, FieldMetrics], folds: int,
                      rows: int) -> tuple[ItemRule, TaggerMetrics]:
        confidence = np.stack([oof[name][0] for name in self.field_names])
        right = np.stack([oof[name][1] for name in self.field_names]).astype(bool).all(axis=0)
        by_rule = {"product": confidence.prod(axis=0), "min": confidence.min(axis=0)}
        brier = {rule: float(np.mean((c - right) ** 2)) for rule, c in by_rule.items()}
        rule = min(by_rule, key=lambda r: (brier[r], r != "product"))
        item = by_rule[rule]
        return rule, TaggerMetrics(
            folds=folds, rows=rows, fields=fields, item_accuracy=float(right.mean()), item_rule=rule,
            item_ece=expected_calibration_error(item, right), item_brier_by_rule=brier,
            item_selective_accuracy_80=selective_accuracy(item, right, 0.8))

    # -- prediction ---------------------------------------------------------------------------------------------
    def predict_proba(self, texts: Sequence[EmbeddedText]) -> list[dict[str, FieldPrediction]]:
        """Per text, each field's value and the calibrated probability that it is the right one."""
        return [{name: tagger.predict(text) for name, tagger in self.fields_.items()} for text in texts]

    def predict(self, texts: Sequence[EmbeddedText]) -> list[dict[str, str | None]]:
        return [{name: p.value for name, p in row.items()} for row in self.predict_proba(texts)]

    def item_confidence(self, field_confidence: Mapping[str, float]) -> float:
        values = list(field_confidence.values())
        return float(np.prod(values) if self.item_rule_ == "product" else min(values))

    @classmethod
    def restore(cls, *, schema: Mapping[str, Any], fields: Mapping[str, FieldTagger], item_rule: ItemRule,
                cv_metrics: TaggerMetrics) -> "LineTagger":
        """A fitted tagger rebuilt from saved parts (see extraction_artifact.py)."""
        tagger = cls(schema=schema)
        tagger.fields_, tagger.item_rule_, tagger.cv_metrics_ = dict(fields), item_rule, cv_metrics
        return tagger


def texts_of(raw_texts: Sequence[str], embed) -> list[EmbeddedText]:
    """Split texts into lines and embed every distinct line once (``embed``: list of str -> rows)."""
    split = [split_lines(text) for text in raw_texts]
    distinct = sorted({line for lines in split for line in lines})
    vectors = embed(distinct) if distinct else np.zeros((0, 0), np.float32)
    row = {line: i for i, line in enumerate(distinct)}
    width = vectors.shape[1] if len(distinct) else 0
    return [EmbeddedText(lines, vectors[[row[line] for line in lines]] if lines else np.zeros((0, width), np.float32))
            for lines in split]


def _decide(data: _FieldData, scores: Sequence[np.ndarray], temperature: float,
            none_logit: float) -> tuple[np.ndarray, np.ndarray]:
    """Per text: the confidence of the answered value and whether it is right (no candidate: 0, wrong)."""
    confidence, right = np.zeros(len(scores)), np.zeros(len(scores), dtype=bool)
    for i, (s, groups, good) in enumerate(zip(scores, data.groups, data.right)):
        if len(s):
            top, confidence[i] = groups.best(s, temperature, none_logit)
            right[i] = good[top]
    return confidence, right


def _fit_calibration(data: _FieldData, scores: Sequence[np.ndarray]) -> tuple[float, float]:
    """(T, b) maximising the Bernoulli likelihood that the answered value is right, over out-of-fold scores."""
    from scipy.optimize import minimize

    def nll(params: np.ndarray) -> float:
        temperature = float(np.clip(np.exp(params[0]), _MIN_T, _MAX_T))
        p, right = _decide(data, scores, temperature, float(params[1]))
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return float(-np.mean(np.where(right, np.log(p), np.log1p(-p))))

    result = minimize(nll, x0=np.zeros(2), method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-6})
    return float(np.clip(np.exp(result.x[0]), _MIN_T, _MAX_T)), float(result.x[1])

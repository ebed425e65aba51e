"""From a training set to a fitted head: check the labels (or expected fields) against the task, embed in batches, fit."""

from __future__ import annotations

from typing import Any, Callable, Collection, Mapping, Sequence

import jsonschema
import numpy as np

from shared.errors import some_of
from shared.learning.classifier import EmbeddingClassifier, FitProgress, log_fit_step
from shared.learning.embedders.base import Embedder
from shared.learning.lexical import NGRAM_RANGE
from shared.learning.line_tagger import LineTagger, texts_of
from shared.learning.training_data import ExtractionRow, TrainingSet

# Up to this many training rows a head's confidence reads their embeddings (novelty.py): a support team's own inbox.
# Above, storing and searching them all costs more (Banking77's 10,003 rows would add ~8 MB to the head).
NOVELTY_MAX_ROWS = 5000
CALIBRATION_REPEATS = 5  # fold assignments a novelty head's calibration is fitted on (classifier.py)
Progress = Callable[[int, int], None]  # (items embedded so far, total): drives a progress bar


def embed_in_batches(embedder: Embedder, texts: list[str], *, batch_size: int = 256,
                     progress: Progress | None = None) -> np.ndarray:
    rows = []
    for start in range(0, len(texts), batch_size):
        rows.append(embedder.embed(texts[start:start + batch_size]))
        if progress:
            progress(min(start + batch_size, len(texts)), len(texts))
    return np.vstack(rows) if rows else np.zeros((0, embedder.dimension), dtype=np.float32)


def train_head(
    embedder: Embedder,
    training: TrainingSet,
    *,
    labels: Collection[str],
    none_label: str | None = None,
    none_reject_budget: float = 0.05,
    none_recall_target: float | None = None,
    catch_all: str | None = None,
    classifier: EmbeddingClassifier | None = None,
    progress: Progress | None = None,
    fit_progress: FitProgress | None = log_fit_step,
) -> EmbeddingClassifier:
    """Fit a head for a task whose in-scope labels are ``labels`` (over the embedding, with the texts' word n-grams
    where cross-validation finds them more accurate, see lexical.py), its cross-validation on every core. Refuses
    data with unknown labels, and data missing a label (the head could never answer it, and the artifact loader
    would refuse it for the task). ``progress`` hears of the embedding, ``fit_progress`` of each step of fitting
    (by default they are logged: the scheduled retrain's log). A ``catch_all`` label (one of ``labels``) gets the
    none label's threshold (classifier.py), and up to NOVELTY_MAX_ROWS examples the confidence drops
    off-distribution (novelty.py)."""
    allowed = set(labels) | ({none_label} if none_label else set())
    present = set(training.labels)
    if unknown := sorted(present - allowed):
        raise ValueError(f"training data has labels the task does not ({len(unknown)}): {some_of(unknown)}")
    if missing := sorted(set(labels) - present):
        raise ValueError(f"training data has no examples of: {missing}")
    head = classifier or EmbeddingClassifier(none_label=none_label, max_inscope_reject=none_reject_budget,
                                             min_none_recall=none_recall_target, word_ngrams=NGRAM_RANGE, n_jobs=-1,
                                             catch_all=catch_all, novelty_max_rows=NOVELTY_MAX_ROWS,
                                             calibration_repeats=CALIBRATION_REPEATS)
    if head.none_label != none_label:
        raise ValueError(f"the classifier's none label {head.none_label!r} is not the task's {none_label!r}")
    if head.catch_all != catch_all:
        raise ValueError(f"the classifier's catch-all {head.catch_all!r} is not the task's {catch_all!r}")
    X = embed_in_batches(embedder, training.texts, progress=progress)
    return head.fit(X, training.labels, texts=training.texts, progress=fit_progress)


def train_extraction_head(
    embedder: Embedder,
    rows: Sequence[ExtractionRow],
    *,
    schema: Mapping[str, Any],
    tagger: LineTagger | None = None,
    progress: Progress | None = None,
) -> LineTagger:
    """Fit a line tagger for an extraction task's JSON ``schema``. Refuses rows with fields the schema does not have
    or values it does not allow (a null is "no value"), and data in which a schema field never has a value (the head
    could never learn where it is)."""
    fields = set(schema["properties"])
    if unknown := sorted({key for row in rows for key in row.expected} - fields):
        raise ValueError(f"training data has fields the task's schema does not: {unknown}")
    values = jsonschema.Draft202012Validator({**schema, "required": []})  # a field may have no value in a row
    for row in rows:
        if error := next(values.iter_errors({k: v for k, v in row.expected.items() if v is not None}), None):
            where = "/".join(map(str, error.absolute_path))
            raise ValueError(f"row {row.id!r}: expected {where}: {error.message}")
    if missing := sorted(f for f in fields if not any(row.expected.get(f) not in (None, "") for row in rows)):
        raise ValueError(f"training data has no values for: {missing}")
    texts = texts_of([row.text for row in rows],
                     lambda lines: embed_in_batches(embedder, lines, progress=progress))
    head = tagger or LineTagger(schema=schema)
    if head.schema != dict(schema):
        raise ValueError("the tagger was made for another schema than the task's")
    return head.fit(texts, [row.expected for row in rows])

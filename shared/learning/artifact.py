"""The versioned head artifact: what a trained head is, what it was trained on and how good it was, on any store.

Layout (keys of an ArtifactStore): ``{task}/{version}/weights.npz`` (coef, intercept; with word n-grams also their
vocabulary and idf, whose columns follow the embedding's in coef; with a novelty calibrator its exemplars, their
classes and its weights, novelty.ARRAY_NAMES) and ``{task}/{version}/head.json``
(this module's HeadArtifact; written last, so a version without it is incomplete and not listed). Versions are UTC
timestamps ``YYYYMMDDTHHMMSS.ffffffZ``: they sort in time order as plain strings, and they are never overwritten.

Loading checks, and refuses with HeadMismatchError, a head made for another embedding space (embedder id or model
hash), another dimension, another label set or none label, or whose weights do not match their recorded hash.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from shared.foundation.tasks import HEAD_VERSION
from shared.learning.classifier import CrossValidatedMetrics, EmbeddingClassifier
from shared.learning.embedders.base import Embedder
from shared.learning.lexical import WordNgrams
from shared.learning.novelty import NoveltyCalibrator
from shared.learning.stores import ArtifactStore
from shared.learning.training_data import TrainingDataSummary

FORMAT_VERSION = 1
HEAD_FILE, WEIGHTS_FILE = "head.json", "weights.npz"


class HeadMismatchError(ValueError):
    """The head cannot be used for what the caller asked (another embedder, labels or dimension; damaged weights)."""


class EmbedderRef(BaseModel):
    id: str
    model_hash: str
    dimension: int = Field(gt=0)

    @classmethod
    def of(cls, embedder: Embedder) -> "EmbedderRef":
        return cls(id=embedder.id, model_hash=embedder.model_hash, dimension=embedder.dimension)


class HeadArtifact(BaseModel):
    format_version: int = FORMAT_VERSION
    task: str
    version: str
    created_at: datetime
    embedder: EmbedderRef
    labels: list[str]  # the in-scope labels the head answers, sorted
    none_label: str | None
    classes: list[str]  # the weight rows, in order: the labels, plus the none label when it was trained as a class
    C: float
    word_ngrams: tuple[int, int] | None = None  # the head also reads these word n-grams of the text
    ngram_features: int = 0  # how many (the columns of coef after the embedding's)
    temperature: float
    oos_threshold: float | None
    max_inscope_reject: float
    min_none_recall: float | None = None
    oos_threshold_rule: str | None = None  # which of the two rules chose oos_threshold, on how many rows
    catch_all: str | None = None  # the label (one of `labels`) that oos_threshold answers, where none_label is None
    # Confidence drops off-distribution (novelty.py) over this many nearest training examples; None: the probability
    novelty_neighbours: int | None = None
    training_data: TrainingDataSummary
    cv_metrics: CrossValidatedMetrics
    weights_sha256: str


@dataclass(frozen=True)
class HeadExpectation:
    """What the caller needs: a head for this embedder, these in-scope labels and this none label."""

    embedder: EmbedderRef
    labels: frozenset[str]
    none_label: str | None

    @classmethod
    def of(cls, embedder: Embedder, labels: list[str], none_label: str | None = None) -> "HeadExpectation":
        return cls(EmbedderRef.of(embedder), frozenset(labels), none_label)


@dataclass(frozen=True)
class LoadedHead:
    artifact: HeadArtifact
    classifier: EmbeddingClassifier


def new_version(now: datetime | None = None) -> str:
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S.%fZ")


def is_version(version: str) -> bool:
    return bool(HEAD_VERSION.fullmatch(version))


def check_version(version: str) -> str:
    if not is_version(version):
        raise ValueError(f"invalid head version {version!r} (expected YYYYMMDDTHHMMSS.ffffffZ)")
    return version


def save_head(
    store: ArtifactStore,
    *,
    task: str,
    classifier: EmbeddingClassifier,
    embedder: Embedder,
    training_data: TrainingDataSummary,
    version: str | None = None,
) -> HeadArtifact:
    """Write a fitted head as a new version (weights first, head.json last) and return its description."""
    version = check_version(version or new_version())
    ngrams: WordNgrams | None = getattr(classifier, "ngrams_", None)
    arrays = {"coef": classifier.coef_.astype(np.float32), "intercept": classifier.intercept_}
    if ngrams is not None:  # unicode strings, so the file still loads without pickle
        arrays |= {"vocabulary": np.asarray(ngrams.vocabulary, dtype=str), "idf": ngrams.idf}
    novelty: NoveltyCalibrator | None = getattr(classifier, "novelty_", None)
    if novelty is not None:
        arrays |= novelty.arrays()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    weights = buffer.getvalue()
    classes = [str(c) for c in classifier.classes_]
    width = ngrams.width if ngrams is not None else 0
    if classifier.coef_.shape != (len(classes), embedder.dimension + width):
        raise HeadMismatchError(f"weights of shape {classifier.coef_.shape} do not fit {len(classes)} classes "
                                f"x {embedder.dimension} dimensions of {embedder.id} + {width} n-grams")
    artifact = HeadArtifact(
        task=task, version=version, created_at=datetime.now(timezone.utc), embedder=EmbedderRef.of(embedder),
        labels=sorted(c for c in classes if c != classifier.none_label), none_label=classifier.none_label,
        classes=classes, C=classifier.C_, word_ngrams=ngrams.ngram_range if ngrams is not None else None,
        ngram_features=width, temperature=classifier.temperature_, oos_threshold=classifier.oos_threshold_,
        max_inscope_reject=classifier.max_inscope_reject, min_none_recall=classifier.min_none_recall,
        oos_threshold_rule=classifier.threshold_rule_, catch_all=classifier.catch_all,
        novelty_neighbours=novelty.neighbours if novelty is not None else None, training_data=training_data,
        cv_metrics=classifier.cv_metrics_, weights_sha256=hashlib.sha256(weights).hexdigest(),
    )
    store.write(f"{task}/{version}/{WEIGHTS_FILE}", weights)
    store.write(f"{task}/{version}/{HEAD_FILE}", artifact.model_dump_json(indent=2).encode("utf-8"))
    return artifact


def list_versions(store: ArtifactStore, task: str) -> list[str]:
    """Complete versions of a task's head, oldest first."""
    versions = []
    for key in store.list(f"{task}/"):
        parts = key.split("/")
        if len(parts) == 3 and parts[2] == HEAD_FILE and is_version(parts[1]):
            versions.append(parts[1])
    return sorted(versions)


def latest_version(store: ArtifactStore, task: str) -> str | None:
    versions = list_versions(store, task)
    return versions[-1] if versions else None


def load_head(store: ArtifactStore, task: str, version: str, expect: HeadExpectation) -> LoadedHead:
    prefix = f"{task}/{check_version(version)}"
    where = store.describe(f"{prefix}/{HEAD_FILE}")
    try:
        artifact = HeadArtifact.model_validate_json(store.read(f"{prefix}/{HEAD_FILE}"))
    except ValidationError as exc:
        raise HeadMismatchError(f"{where}: not a classification head: {exc.errors()[0]['msg']}") from exc
    _check_expectation(artifact, expect, where)
    weights = store.read(f"{prefix}/{WEIGHTS_FILE}")
    if hashlib.sha256(weights).hexdigest() != artifact.weights_sha256:
        raise HeadMismatchError(f"{where}: {WEIGHTS_FILE} does not match the SHA-256 recorded in the head")
    ngrams = None
    with np.load(io.BytesIO(weights), allow_pickle=False) as arrays:
        coef, intercept = arrays["coef"], arrays["intercept"]
        if artifact.word_ngrams is not None:
            if not {"vocabulary", "idf"} <= set(arrays.files):
                raise HeadMismatchError(f"{where}: the head reads word n-grams, {WEIGHTS_FILE} has no vocabulary")
            ngrams = WordNgrams.restore(arrays["vocabulary"].tolist(), arrays["idf"], artifact.word_ngrams)
        novelty = NoveltyCalibrator.from_arrays(arrays) if artifact.novelty_neighbours is not None else None
    if artifact.novelty_neighbours is not None and (
            novelty is None or novelty.exemplars.shape[1:] != (artifact.embedder.dimension,)
            or novelty.columns.shape != novelty.exemplars.shape[:1]
            or not 0 <= novelty.columns.min(initial=0) <= novelty.columns.max(initial=0) < len(artifact.classes)):
        raise HeadMismatchError(f"{where}: the head's confidence reads its training examples (novelty), "
                                f"{WEIGHTS_FILE} has none that fit {artifact.embedder.dimension} dimensions "
                                f"and {len(artifact.classes)} classes")
    rows, width = len(artifact.classes), artifact.embedder.dimension + artifact.ngram_features
    if (coef.shape != (rows, width) or intercept.shape != (rows,)
            or (ngrams is not None and ngrams.width != artifact.ngram_features)):
        raise HeadMismatchError(f"{where}: weights of shape {coef.shape} / {intercept.shape} do not fit "
                                f"{len(artifact.classes)} classes x {artifact.embedder.dimension} dimensions "
                                f"+ {artifact.ngram_features} n-grams")
    classifier = EmbeddingClassifier.restore(
        classes=artifact.classes, coef=coef, intercept=intercept, temperature=artifact.temperature, C=artifact.C,
        none_label=artifact.none_label, oos_threshold=artifact.oos_threshold, cv_metrics=artifact.cv_metrics,
        max_inscope_reject=artifact.max_inscope_reject, ngrams=ngrams, min_none_recall=artifact.min_none_recall,
        threshold_rule=artifact.oos_threshold_rule, catch_all=artifact.catch_all, novelty=novelty,
    )
    return LoadedHead(artifact, classifier)


def _check_expectation(artifact: HeadArtifact, expect: HeadExpectation, where: str) -> None:
    if artifact.format_version != FORMAT_VERSION:
        raise HeadMismatchError(f"{where}: format version {artifact.format_version}, this code reads {FORMAT_VERSION}")
    have, want = artifact.embedder, expect.embedder
    if (have.id, have.model_hash) != (want.id, want.model_hash):
        raise HeadMismatchError(f"{where}: trained on embedder {have.id} ({have.model_hash}), "
                                f"but the task embeds with {want.id} ({want.model_hash}); retrain the head")
    if have.dimension != want.dimension:
        raise HeadMismatchError(
            f"{where}: {have.dimension}-dimensional head for a {want.dimension}-dimensional embedder")
    if set(artifact.labels) != expect.labels:
        missing, extra = sorted(expect.labels - set(artifact.labels)), sorted(set(artifact.labels) - expect.labels)
        raise HeadMismatchError(f"{where}: label set differs from the task's (missing {missing}, extra {extra})")
    if artifact.none_label != expect.none_label:
        raise HeadMismatchError(f"{where}: none label {artifact.none_label!r}, the task's is {expect.none_label!r}")

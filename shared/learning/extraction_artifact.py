"""The versioned artifact of an extraction head (a LineTagger), stored like classification heads (artifact.py).

Layout: ``{task}/{version}/weights.npz`` (one ``coef_<field>`` vector and ``intercept_<field>`` per field) and
``{task}/{version}/head.json`` (ExtractionHeadArtifact, written last). Versions, listing and the store are
artifact.py's. Loading refuses with HeadMismatchError a head for another embedding space, another JSON schema (its
canonical SHA-256 is recorded at training and compared with the task's), or whose weights do not match their hash.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal, Mapping

import numpy as np
from pydantic import BaseModel

from shared.learning.artifact import HEAD_FILE, WEIGHTS_FILE, EmbedderRef, HeadMismatchError, check_version, new_version
from shared.learning.embedders.base import Embedder
from shared.learning.line_features import feature_count
from shared.learning.line_tagger import FieldTagger, LineTagger, TaggerMetrics
from shared.learning.stores import ArtifactStore

EXTRACTION_FORMAT_VERSION = 1


def schema_sha256(schema: Mapping[str, Any]) -> str:
    """The schema's identity: SHA-256 of its canonical JSON (sorted keys, no whitespace)."""
    return hashlib.sha256(json.dumps(schema, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()


class ExtractionDataSummary(BaseModel):
    sha256: str  # of the (text, expected) rows, in file order
    size: int


class FieldSpec(BaseModel):
    kind: Literal["text", "date", "amount"]
    max_span: int
    joiner: str
    trim: Literal["none", "trailing_brackets"]  # line_candidates.TRIMS
    keywords: list[str]
    C: float
    temperature: float
    none_logit: float


class ExtractionHeadArtifact(BaseModel):
    format_version: int = EXTRACTION_FORMAT_VERSION
    kind: Literal["extraction"] = "extraction"
    task: str
    version: str
    created_at: datetime
    embedder: EmbedderRef
    schema_sha256: str
    fields: dict[str, FieldSpec]
    item_rule: Literal["product", "min"]
    training_data: ExtractionDataSummary
    cv_metrics: TaggerMetrics
    weights_sha256: str


@dataclass(frozen=True)
class ExtractionHeadExpectation:
    """What the caller needs: a head for this embedder and exactly this JSON schema."""

    embedder: EmbedderRef
    schema: Mapping[str, Any]

    @classmethod
    def of(cls, embedder: Embedder, schema: Mapping[str, Any]) -> "ExtractionHeadExpectation":
        return cls(EmbedderRef.of(embedder), schema)


@dataclass(frozen=True)
class LoadedExtractionHead:
    artifact: ExtractionHeadArtifact
    tagger: LineTagger


def data_summary(rows: list[tuple[str, Mapping[str, Any]]]) -> ExtractionDataSummary:
    digest = hashlib.sha256()
    for text, expected in rows:
        digest.update(json.dumps([text, expected], sort_keys=True).encode("utf-8") + b"\n")
    return ExtractionDataSummary(sha256=digest.hexdigest(), size=len(rows))


def save_extraction_head(
    store: ArtifactStore,
    *,
    task: str,
    tagger: LineTagger,
    embedder: Embedder,
    training_data: ExtractionDataSummary,
    version: str | None = None,
) -> ExtractionHeadArtifact:
    version = check_version(version or new_version())
    buffer = io.BytesIO()
    arrays = {}
    for name, field in tagger.fields_.items():
        if field.coef.shape != (feature_count(embedder.dimension),):
            raise HeadMismatchError(f"field {name}: {field.coef.shape[0]} weights do not fit {embedder.id}")
        arrays[f"coef_{name}"], arrays[f"intercept_{name}"] = field.coef, np.array([field.intercept])
    np.savez_compressed(buffer, **arrays)
    weights = buffer.getvalue()
    artifact = ExtractionHeadArtifact(
        task=task, version=version, created_at=datetime.now(timezone.utc), embedder=EmbedderRef.of(embedder),
        schema_sha256=schema_sha256(tagger.schema),
        fields={name: FieldSpec(kind=f.kind, max_span=f.max_span, joiner=f.joiner, trim=f.trim,
                                keywords=f.keywords, C=f.C,
                                temperature=f.temperature, none_logit=f.none_logit)
                for name, f in tagger.fields_.items()},
        item_rule=tagger.item_rule_, training_data=training_data, cv_metrics=tagger.cv_metrics_,
        weights_sha256=hashlib.sha256(weights).hexdigest(),
    )
    store.write(f"{task}/{version}/{WEIGHTS_FILE}", weights)
    store.write(f"{task}/{version}/{HEAD_FILE}", artifact.model_dump_json(indent=2).encode("utf-8"))
    return artifact


def load_extraction_head(store: ArtifactStore, task: str, version: str,
                         expect: ExtractionHeadExpectation) -> LoadedExtractionHead:
    prefix = f"{task}/{check_version(version)}"
    where = store.describe(f"{prefix}/{HEAD_FILE}")
    try:
        artifact = ExtractionHeadArtifact.model_validate_json(store.read(f"{prefix}/{HEAD_FILE}"))
    except ValueError as exc:
        raise HeadMismatchError(f"{where}: not an extraction head: {exc}") from exc
    if artifact.format_version != EXTRACTION_FORMAT_VERSION:
        raise HeadMismatchError(f"{where}: format version {artifact.format_version}, "
                                f"this code reads {EXTRACTION_FORMAT_VERSION}")
    have, want = artifact.embedder, expect.embedder
    if (have.id, have.model_hash, have.dimension) != (want.id, want.model_hash, want.dimension):
        raise HeadMismatchError(f"{where}: trained on embedder {have.id} ({have.model_hash}), "
                                f"but the task embeds with {want.id} ({want.model_hash}); retrain the head")
    if artifact.schema_sha256 != (wanted := schema_sha256(expect.schema)):
        raise HeadMismatchError(f"{where}: trained for another JSON schema (SHA-256 {artifact.schema_sha256[:12]}, "
                                f"the task's is {wanted[:12]}); retrain the head")
    weights = store.read(f"{prefix}/{WEIGHTS_FILE}")
    if hashlib.sha256(weights).hexdigest() != artifact.weights_sha256:
        raise HeadMismatchError(f"{where}: {WEIGHTS_FILE} does not match the SHA-256 recorded in the head")
    width = feature_count(have.dimension)
    fields = {}
    with np.load(io.BytesIO(weights), allow_pickle=False) as arrays:
        for name, spec in artifact.fields.items():
            coef, intercept = arrays[f"coef_{name}"], arrays[f"intercept_{name}"]
            if coef.shape != (width,) or intercept.shape != (1,):
                raise HeadMismatchError(f"{where}: field {name}: weights of shape {coef.shape} do not fit {width}")
            fields[name] = FieldTagger(kind=spec.kind, max_span=spec.max_span, joiner=spec.joiner,
                                       trim=spec.trim, keywords=spec.keywords, coef=coef.astype(np.float64),
                                       intercept=float(intercept[0]), C=spec.C, temperature=spec.temperature,
                                       none_logit=spec.none_logit)
    tagger = LineTagger.restore(schema=expect.schema, fields=fields, item_rule=artifact.item_rule,
                                cv_metrics=artifact.cv_metrics)
    return LoadedExtractionHead(artifact, tagger)

"""Shared fixtures: one MiniLM session for the whole run, embeddings cached per text, dataset subsets.

Datasets are read from ../shared/datasets (never copied into the repository); tests that need one skip without it.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from shared.learning.embedders.base import Embeddings
from shared.learning.embedders.minilm import LocalMiniLM

REPO = Path(__file__).resolve().parents[2]
DATASETS = REPO.parent / "shared" / "datasets"
SUPPORT_TICKETS = REPO / "tasks" / "data" / "support_ticket"


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def dataset(name: str, split: str) -> list[dict]:
    path = DATASETS / name / f"{split}.jsonl"
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return read_jsonl(path)


def per_label(rows: list[dict], labels: set[str], limit: int | None = None) -> list[dict]:
    """The rows of ``labels``, at most ``limit`` per label, in file order."""
    kept: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        if row["label"] in labels and (limit is None or len(kept[row["label"]]) < limit):
            kept[row["label"]].append(row)
    return [row for label in sorted(kept) for row in kept[label]]


def loads_once_when_asked_at_once(monkeypatch, module, constructor: str, embedder) -> list[str]:
    """Two threads call ``embedder.load`` at once, the first held inside ``module.constructor`` (the model's) until
    the second has had time to start one too; returns the names of the threads that built a model."""
    import threading

    real = getattr(module, constructor)
    built, first_inside, release = [], threading.Event(), threading.Event()

    def held(*args, **kwargs):
        built.append(threading.current_thread().name)
        first_inside.set()
        release.wait(timeout=60)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, constructor, held)
    first = threading.Thread(target=embedder.load, name="first")
    first.start()
    assert first_inside.wait(timeout=60)
    second = threading.Thread(target=embedder.load, name="second")
    second.start()
    second.join(timeout=1)  # time to start a second model, were loads not one at a time
    release.set()
    first.join()
    second.join()
    return built


class CachedEmbedder:
    """The real LocalMiniLM, remembering each text's vector so tests that share texts embed them once."""

    def __init__(self, embedder: LocalMiniLM) -> None:
        self.inner = embedder
        self.cache: dict[str, np.ndarray] = {}

    @property
    def id(self) -> str:
        return self.inner.id

    @property
    def model_hash(self) -> str:
        return self.inner.model_hash

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    @property
    def languages(self) -> frozenset[str]:
        return self.inner.languages

    def embed_metered(self, texts) -> Embeddings:
        tokens = sum(int(batch.attention_mask.sum()) for batch in self.inner.encode(texts)) if texts else 0
        return Embeddings(self.embed(texts), tokens)

    def embed(self, texts) -> np.ndarray:
        todo = sorted({t for t in texts if t not in self.cache})
        if todo:
            self.cache.update(zip(todo, self.inner.embed(todo)))
        return np.vstack([self.cache[t] for t in texts]) if texts else np.zeros((0, self.dimension), np.float32)


@pytest.fixture(scope="session")
def minilm() -> LocalMiniLM:
    return LocalMiniLM()


@pytest.fixture(scope="session")
def embedder(minilm) -> CachedEmbedder:
    return CachedEmbedder(minilm)


@pytest.fixture(scope="session")
def support_tickets() -> dict[str, list[dict]]:
    return {split: read_jsonl(SUPPORT_TICKETS / f"{split}.jsonl") for split in ("train", "dev")}


@pytest.fixture(scope="session")
def support_data(embedder, support_tickets):
    """Support-ticket embeddings and labels: (X_train, y_train, X_dev, y_dev)."""
    train, dev = support_tickets["train"], support_tickets["dev"]
    return (embedder.embed([r["text"] for r in train]), [r["label"] for r in train],
            embedder.embed([r["text"] for r in dev]), [r["label"] for r in dev])


@pytest.fixture(scope="session")
def support_head(support_data):
    """A head trained on the support-ticket train split (fits in a few seconds)."""
    from shared.learning.classifier import EmbeddingClassifier

    X_train, y_train, _, _ = support_data
    return EmbeddingClassifier().fit(X_train, y_train)

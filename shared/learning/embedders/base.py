"""The one interface every embedder implements, and the normalisation they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np


@dataclass(frozen=True)
class Embeddings:
    """Rows for some texts, and the input tokens the model read for them (what a metered endpoint bills)."""

    vectors: np.ndarray
    tokens: int
    # Each text's tokens, in input order, where the model reads the texts apart (the local embedders); None where an
    # endpoint bills a request as one count.
    tokens_each: list[int] | None = None


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 rows, one per text, in input order.

    ``id`` names the embedding space (vectors from different ids are not comparable); ``model_hash`` pins the exact
    model behind it, so a classifier head trained on one model is never applied to another. ``embed_metered`` also
    says how many tokens were read, so a tier that pays per token can price its answer.
    """

    @property
    def id(self) -> str: ...

    @property
    def model_hash(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    @property
    def languages(self) -> frozenset[str] | None:
        """The languages the model was trained on (ISO 639-1 codes), whose texts it embeds faithfully; None where it
        reads any language a user is likely to send (a hosted multilingual model)."""
        ...

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_metered(self, texts: Sequence[str]) -> Embeddings: ...


def l2_normalise(rows: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length as float32; an all-zero row stays zero instead of becoming NaN."""
    rows = np.asarray(rows, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, np.float32(1e-12))

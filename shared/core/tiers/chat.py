"""Classification and extraction on any chat-completions tier, adapting to what the endpoint supports.

A tier's work on an item is written once, as a plan (`shared/core/plans.py`) that yields rounds of
ChatRequests (a round's requests go out concurrently) and receives their replies, then returns the answer.
`answer` drives it with the blocking client (a round on threads), `aanswer` with the async client (a round
as tasks), so both paths ask the same questions and decide the same way (sequential sample agreement too).

Async clients are bound to the event loop they were first used on, so a tier keeps one per running loop:
the Functions worker runs every async handler on its one loop, so there a tier's async client is created
once and reused; a loop of its own (`asyncio.run` from synchronous code) gets its own client, which
`aclose_async_client` closes before that loop ends (`Cascade.run_batch` does).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any, Callable, Generator, Mapping

from shared.core.backends import StructuredOutput
from shared.core.config import TierConfig
from shared.core.confidence import TokenLogprob, field_agreement, field_confidences, label_agreement, samples_to_draw
from shared.core.plans import adrive, drive, gather_all
from shared.core.prompts import Message, classification_messages, extraction_messages
from shared.foundation.tasks import AnyTask, ClassificationTask, ExtractionTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.core.retry import retry_after_seconds
from shared.core.validation import parse_and_validate
from shared.errors import InvalidOutputError, OutputTruncatedError, TierError, TransientTierError


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    schema: dict[str, Any]
    schema_name: str
    temperature: float
    logprobs: bool
    n: int = 1  # choices in one request: they share the request and its prompt


@dataclass
class ChatReply:
    text: str
    tokens_in: int
    tokens_out: int
    tokens_cached: int = 0
    logprobs: list[TokenLogprob] | None = None
    truncated: bool = False  # the endpoint stopped at max_tokens (finish_reason "length")

    @classmethod
    def from_choices(cls, choices: list[Any], usage: Any,
                     logprobs: Callable[[Any], list[TokenLogprob] | None]) -> list["ChatReply"]:
        """One reply per choice of a chat completion (both SDKs name these fields alike). The prompt is billed
        once per request, so the first reply carries the prompt tokens; the output tokens are shared out."""
        prompt = usage.prompt_tokens if usage else 0
        output = usage.completion_tokens if usage else 0
        details = getattr(usage, "prompt_tokens_details", None)  # Azure OpenAI: the prompt cache's share
        cached = (details.get("cached_tokens") if isinstance(details, dict)
                  else getattr(details, "cached_tokens", 0)) or 0
        share, rest = divmod(output, len(choices))
        return [cls(
            text=choice.message.content or "",
            tokens_in=prompt if i == 0 else 0,
            tokens_out=share + (rest if i == 0 else 0),
            tokens_cached=cached if i == 0 else 0,
            logprobs=logprobs(choice),
            # azure-ai-inference (the legacy backend) gives an enum whose value is "length"; openai gives the string
            truncated=getattr(choice.finish_reason, "value", choice.finish_reason) == "length",
        ) for i, choice in enumerate(choices)]

    def parsed(self, task: AnyTask) -> dict[str, Any]:
        """The reply as a valid answer object; a reply cut off at the token limit is its own error."""
        try:
            return parse_and_validate(task, self.text, self.tokens_in, self.tokens_out)
        except InvalidOutputError as exc:
            if self.truncated:
                raise OutputTruncatedError(f"cut off at the output-token limit: {exc}", self.text, self.tokens_in,
                                           self.tokens_out) from exc
            raise


def http_status_error(tier: str, status: int, headers: Mapping[str, str] | None, detail: str) -> TierError:
    """An endpoint's HTTP error reply as a tier error, one rule for every backend and both paths: 429 and 5xx are
    transient (retried after the endpoint's Retry-After), any other status is permanent for this item."""
    if status == 429 or status >= 500:
        return TransientTierError(f"{status} from {tier}: {detail}", retry_after_seconds(headers))
    return TierError(f"{tier}: HTTP {status}: {detail}")


# Rounds of requests out, their replies (one list per request) in, the answer returned.
Plan = Generator[list[ChatRequest], list[list[ChatReply]], TierAnswer]


class ChatTier(Tier):
    """A tier reached through a chat-completions call. Subclasses implement ``complete`` and ``acomplete``
    (the same request, blocking and awaited) and ``new_async_client``."""

    def __init__(self, config: TierConfig) -> None:
        super().__init__(config)
        # Per event loop: its client, and what closes it (and what it holds, such as an Entra credential).
        self._async_clients: dict[asyncio.AbstractEventLoop, tuple[Any, AsyncExitStack]] = {}
        self._async_clients_lock = threading.Lock()  # loops in several threads ask at once

    @abstractmethod
    def complete(self, request: ChatRequest) -> list[ChatReply]:
        """The endpoint's reply: one ChatReply per choice."""

    @abstractmethod
    async def acomplete(self, request: ChatRequest) -> list[ChatReply]:
        """`complete` through this loop's async client."""

    @abstractmethod
    def new_async_client(self, closing: AsyncExitStack) -> Any:
        """A new async SDK client (called once per event loop), with what closes it pushed on `closing`."""

    def async_client(self) -> Any:
        """The running loop's async client, created on first use; clients of loops closed since are dropped."""
        loop = asyncio.get_running_loop()
        with self._async_clients_lock:
            for closed in [other for other in self._async_clients if other.is_closed()]:
                del self._async_clients[closed]
            if loop not in self._async_clients:
                closing = AsyncExitStack()
                self._async_clients[loop] = (self.new_async_client(closing), closing)
            return self._async_clients[loop][0]

    async def aclose_async_client(self) -> None:
        """Close the running loop's async client, if it has one (before a short-lived loop ends)."""
        with self._async_clients_lock:
            _, closing = self._async_clients.pop(asyncio.get_running_loop(), (None, AsyncExitStack()))
        await closing.aclose()

    def health(self) -> str:
        """The deep check: a one-line completion (it spends a few tokens; `probe` spends none)."""
        reply = self.complete(ChatRequest(
            [{"role": "user", "content": 'Reply with JSON: {"ok": true}'}],
            schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
                    "additionalProperties": False},
            schema_name="health",
            temperature=0.0,
            logprobs=False,
        ))[0]
        return f"{self.config.backend.value} {self.config.model} answered ({reply.tokens_in + reply.tokens_out} tokens)"

    # -- driving a plan --------------------------------------------------------------------------------------
    def classify(self, task: ClassificationTask, text: str, decide_at: float | None = None) -> TierAnswer:
        return self._run(self._classification_plan(task, text, decide_at))

    def extract(self, task: ExtractionTask, text: str) -> TierAnswer:
        return self._run(self._extraction_plan(task, text))

    async def aanswer(self, task: AnyTask, text: str, decide_at: float | None = None) -> TierAnswer:
        if isinstance(task, ClassificationTask):
            return await self._arun(self._classification_plan(task, text, decide_at))
        return await self._arun(self._extraction_plan(task, text))

    def _run(self, plan: Plan) -> TierAnswer:
        return drive(plan, self._send_round)

    async def _arun(self, plan: Plan) -> TierAnswer:
        return await adrive(plan, self._asend_round)

    def _send_round(self, requests: list[ChatRequest]) -> list[list[ChatReply]]:
        if len(requests) == 1:
            return [self.complete(requests[0])]
        with ThreadPoolExecutor(max_workers=len(requests)) as pool:
            return list(pool.map(self.complete, requests))

    async def _asend_round(self, requests: list[ChatRequest]) -> list[list[ChatReply]]:
        if len(requests) == 1:
            return [await self.acomplete(requests[0])]
        return await gather_all(self.acomplete(request) for request in requests)

    # -- plans -------------------------------------------------------------------------------------------------
    def _classification_plan(self, task: ClassificationTask, text: str, decide_at: float | None) -> Plan:
        messages = classification_messages(task, text, json_answer=True)
        if not self.config.effective_logprobs:
            return (yield from self._label_agreement(task, messages, decide_at))
        return (yield from self._logprob_answer(task, messages, task.output_schema,
                                                to_answer=lambda obj: obj["label"], fields=["label"]))

    def _extraction_plan(self, task: ExtractionTask, text: str) -> Plan:
        schema_in_prompt = self.config.effective_structured_output != StructuredOutput.JSON_SCHEMA
        messages = extraction_messages(task, text, schema_in_prompt=schema_in_prompt)
        if self.config.effective_logprobs:
            return (yield from self._logprob_answer(task, messages, task.json_schema, to_answer=lambda obj: obj,
                                                    fields=task.required_fields))
        return (yield from self._field_sample_agreement(task, messages, task.json_schema, fields=task.required_fields))

    def _logprob_answer(self, task, messages, schema, *, to_answer, fields) -> Plan:
        request = ChatRequest(messages, schema, task.name, temperature=0.0, logprobs=True)
        reply = (yield [request])[0][0]
        obj = reply.parsed(task)
        if not reply.logprobs:
            raise InvalidOutputError("the tier returned no logprobs although configured to", reply.text,
                                     reply.tokens_in, reply.tokens_out)
        try:
            per_field = field_confidences(reply.text, reply.logprobs)
        except ValueError as exc:
            raise InvalidOutputError(f"unusable logprobs: {exc}", reply.text, reply.tokens_in,
                                     reply.tokens_out) from exc
        field_conf = {f: per_field.get(f, 0.0) for f in fields}
        return TierAnswer(
            value=to_answer(obj),
            confidence=min(field_conf.values()),
            confidence_method="token_logprob",
            field_confidence=None if isinstance(task, ClassificationTask) else field_conf,
            tokens_in=reply.tokens_in,
            tokens_out=reply.tokens_out,
            tokens_cached=reply.tokens_cached,
        )

    def _samples(self, task, messages, schema, n: int) -> Generator[list[ChatRequest], list[list[ChatReply]],
                                                                  list[ChatReply]]:
        """n samples at the sampling temperature in one round of requests, each asking for up to
        `samples_per_request` choices where the endpoint supports `n` (the prompt is then billed once a request)."""
        per_request = self.config.samples_per_request
        requests = [ChatRequest(messages, schema, task.name, self.config.sample_temperature, logprobs=False,
                                n=min(per_request, n - start)) for start in range(0, n, per_request)]
        return [reply for replies in (yield requests) for reply in replies]

    def _label_agreement(self, task: ClassificationTask, messages, decide_at: float | None) -> Plan:
        """Agreement among up to k sampled labels, stopping once it is settled against `decide_at`."""
        k = self.config.samples
        # Where one request carries all k choices, the prompt is billed once whatever: draw them in one round.
        settle_early = decide_at is not None and self.config.samples_per_request < k
        need = math.ceil(decide_at * k - 1e-9) if settle_early else None
        replies: list[ChatReply] = []
        labels: list[str | None] = []
        while n := samples_to_draw(labels, k, need):
            batch = yield from self._samples(task, messages, task.output_schema, n)
            replies += batch
            labels += [_label_or_none(task, reply) for reply in batch]
        label, agreement, _ = label_agreement(labels, k)
        tokens_in = sum(r.tokens_in for r in replies)
        tokens_out = sum(r.tokens_out for r in replies)
        if label is None:
            raise InvalidOutputError(f"none of {len(replies)} samples was valid", replies[0].text, tokens_in, tokens_out)
        return TierAnswer(value=label, confidence=agreement, confidence_method=f"sample_agreement_k{k}",
                          tokens_in=tokens_in, tokens_out=tokens_out,
                          tokens_cached=sum(r.tokens_cached for r in replies))

    def _field_sample_agreement(self, task, messages, schema, *, fields) -> Plan:
        k = self.config.samples
        replies: list[ChatReply] = []
        while len(replies) < k:  # a server that ignores `n` answers one choice a request: ask again for the rest
            replies += yield from self._samples(task, messages, schema, k - len(replies))
        replies = replies[:k]
        tokens_in = sum(r.tokens_in for r in replies)
        tokens_out = sum(r.tokens_out for r in replies)
        parsed: list[dict[str, Any] | None] = []
        for reply in replies:
            try:
                parsed.append(reply.parsed(task))
            except InvalidOutputError:
                parsed.append(None)
        if all(p is None for p in parsed):
            raise InvalidOutputError(f"none of {k} samples was valid", replies[0].text, tokens_in, tokens_out)
        answer, field_conf = field_agreement(parsed, fields)
        for key in task.json_schema["properties"]:
            if key not in answer and any(p and key in p for p in parsed):
                answer[key] = next(p[key] for p in parsed if p and key in p)
        errors = task.validation_errors(answer)
        if errors:
            raise InvalidOutputError("; ".join(errors), json.dumps(answer), tokens_in, tokens_out)
        return TierAnswer(
            value=answer,
            confidence=min(field_conf.values()),
            confidence_method=f"sample_agreement_k{k}",
            field_confidence=field_conf,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            tokens_cached=sum(r.tokens_cached for r in replies),
        )


def _label_or_none(task: ClassificationTask, reply: ChatReply) -> str | None:
    try:
        return reply.parsed(task)["label"]
    except InvalidOutputError:
        return None

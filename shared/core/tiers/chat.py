"""Classification and extraction on any chat-completions tier, adapting to what the endpoint supports."""

from __future__ import annotations

import json
import math
from abc import abstractmethod
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

from shared.core.config import StructuredOutput
from shared.core.confidence import TokenLogprob, field_agreement, field_confidences, sequential_label_agreement
from shared.core.prompts import Message, classification_messages, extraction_messages
from shared.core.tasks import AnyTask, ClassificationTask, ExtractionTask
from shared.core.tiers.base import Tier, TierAnswer
from shared.core.validation import parse_and_validate
from shared.errors import InvalidOutputError, OutputTruncatedError


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
            # azure-ai-inference gives an enum whose value is "length"; openai gives the string
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


class ChatTier(Tier):
    """A tier reached through a chat-completions call. Subclasses implement ``complete``."""

    @abstractmethod
    def complete(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any],
        schema_name: str,
        temperature: float,
        logprobs: bool,
        n: int = 1,
    ) -> list[ChatReply]:
        """The endpoint's reply: one ChatReply per choice (`n` choices share one request and one prompt)."""

    def classify(self, task: ClassificationTask, text: str, decide_at: float | None = None) -> TierAnswer:
        messages = classification_messages(task, text, json_answer=True)
        if not self.config.effective_logprobs:
            return self._label_agreement(task, messages, decide_at)
        return self._answer(task, messages, task.output_schema, to_answer=lambda obj: obj["label"], fields=["label"])

    def extract(self, task: ExtractionTask, text: str) -> TierAnswer:
        schema_in_prompt = self.config.effective_structured_output != StructuredOutput.JSON_SCHEMA
        messages = extraction_messages(task, text, schema_in_prompt=schema_in_prompt)
        return self._answer(task, messages, task.json_schema, to_answer=lambda obj: obj, fields=task.required_fields)

    def _answer(self, task, messages, schema, *, to_answer, fields) -> TierAnswer:
        if self.config.effective_logprobs:
            reply = self.complete(messages, schema=schema, schema_name=task.name, temperature=0.0, logprobs=True)[0]
            obj = reply.parsed(task)
            per_field = field_confidences(reply.text, reply.logprobs) if reply.logprobs else None
            if per_field is None:
                raise InvalidOutputError("the tier returned no logprobs although configured to", reply.text,
                                         reply.tokens_in, reply.tokens_out)
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
        return self._field_sample_agreement(task, messages, schema, to_answer=to_answer, fields=fields)

    def _samples(self, task, messages, schema, n: int) -> list[ChatReply]:
        """n samples at the sampling temperature: requests in parallel, each asking for up to
        `samples_per_request` choices where the endpoint supports `n` (the prompt is then billed once a request)."""
        per_request = self.config.samples_per_request
        sizes = [min(per_request, n - start) for start in range(0, n, per_request)]

        def request(size: int) -> list[ChatReply]:
            return self.complete(messages, schema=schema, schema_name=task.name,
                                 temperature=self.config.sample_temperature, logprobs=False, n=size)

        with ThreadPoolExecutor(max_workers=len(sizes)) as pool:
            return [reply for replies in pool.map(request, sizes) for reply in replies]

    def _label_agreement(self, task: ClassificationTask, messages, decide_at: float | None) -> TierAnswer:
        """Agreement among up to k sampled labels, stopping once it is settled against `decide_at`."""
        k = self.config.samples
        replies: list[ChatReply] = []

        def draw(n: int) -> list[str | None]:
            batch = self._samples(task, messages, task.output_schema, n)
            replies.extend(batch)
            labels: list[str | None] = []
            for reply in batch:
                try:
                    labels.append(reply.parsed(task)["label"])
                except InvalidOutputError:
                    labels.append(None)
            return labels

        # Where one request carries all k choices, the prompt is billed once whatever: draw them in one round.
        settle_early = decide_at is not None and self.config.samples_per_request < k
        need = math.ceil(decide_at * k - 1e-9) if settle_early else None
        label, agreement, _ = sequential_label_agreement(draw, k, need)
        tokens_in = sum(r.tokens_in for r in replies)
        tokens_out = sum(r.tokens_out for r in replies)
        if label is None:
            raise InvalidOutputError(f"none of {len(replies)} samples was valid", replies[0].text, tokens_in, tokens_out)
        return TierAnswer(value=label, confidence=agreement, confidence_method=f"sample_agreement_k{k}",
                          tokens_in=tokens_in, tokens_out=tokens_out,
                          tokens_cached=sum(r.tokens_cached for r in replies))

    def _field_sample_agreement(self, task, messages, schema, *, to_answer, fields) -> TierAnswer:
        k = self.config.samples
        replies = self._samples(task, messages, schema, k)
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

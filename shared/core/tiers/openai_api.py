"""The machinery every backend on the OpenAI chat API shares, through the stable openai SDK: `openai.OpenAI` on the
blocking path, `openai.AsyncOpenAI` over the SDK's own aiohttp transport (`openai.DefaultAioHttpClient`) on the
async path, so both send the same request to the same URL and fail alike (`_tier_errors`).

Each backend is a thin subclass in a module of its own that says where its requests go and which Entra scope
they need (`route`): `azure_openai.py`, `foundry.py`, `openai_compatible.py`. The OpenAI v1 API that azure_openai
and foundry share (`v1_route`) is at `<resource>/openai/v1/`, with no api-version, the deployment named as
`model`; keyless, an Entra token for the Cognitive Services scope is the SDK's `api_key` ("Migrate from Azure AI
Inference SDK to OpenAI SDK", https://learn.microsoft.com/azure/ai-foundry/how-to/model-inference-to-openai-migration,
and "Switching between OpenAI and Azure OpenAI endpoints",
https://learn.microsoft.com/azure/developer/ai/how-to/switching-endpoints; checked 2026-12-06).
"""

from __future__ import annotations

import json
from abc import abstractmethod
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Iterator
from urllib.parse import urlsplit

import httpx2
import openai
import pydantic
from openai.types.chat import ChatCompletion

from shared.core.backends import StructuredOutput
from shared.core.config import V1_PATH, TierConfig
from shared.core.tiers.chat import ChatReply, ChatRequest, ChatTier, http_status_error
from shared.errors import TierError, TransientTierError

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
CHAT_COMPLETIONS = "/chat/completions"  # relative to the base URL, as the SDK's chat.completions.create sends it


@dataclass(frozen=True)
class Route:
    """Where a tier's requests go and what they carry, the same for the blocking and the async client."""

    base_url: str
    scope: str | None  # the Entra scope for keyless auth; None: this backend takes no Entra token
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    info_path: str | None = None  # a model-info GET, the probe where there is no model list


def v1_route(endpoint: str) -> Route:
    """The OpenAI v1 API of the resource at `endpoint`: its resource URL or its /openai/v1/ URL (config checks
    which)."""
    url = urlsplit(endpoint)
    return Route(f"{url.scheme}://{url.netloc}{V1_PATH}", COGNITIVE_SERVICES_SCOPE)


class OpenAIApiTier(ChatTier):
    """A tier on the OpenAI chat API. A subclass gives `route_to` (where its requests go) and, where its API names
    the output limit otherwise, `max_tokens_field`."""

    # Servers on the OpenAI API (Foundry's Phi-4, llama.cpp, vLLM, managed compute) know max_tokens.
    max_tokens_field = "max_tokens"

    @abstractmethod
    def route_to(self, endpoint: str) -> Route:
        """Where this tier's requests to `endpoint` go and what they carry."""

    @cached_property
    def route(self) -> Route:
        if not self.config.endpoint:
            raise TierError(f"tier {self.config.name}: no endpoint configured")
        return self.route_to(self.config.endpoint)

    @cached_property
    def client(self) -> openai.OpenAI:
        return openai.OpenAI(api_key=self._api_key or self._token_provider(None), **self._client_options())

    def new_async_client(self, closing: AsyncExitStack) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(api_key=self._api_key or self._token_provider(closing),
                                    http_client=openai.DefaultAioHttpClient(), **self._client_options())
        closing.push_async_callback(client.close)
        return client

    def _client_options(self) -> dict[str, Any]:
        route = self.route
        # Retries are ours (shared.retry), so every backend backs off the same way.
        return {"base_url": route.base_url, "default_headers": route.headers, "default_query": route.query,
                "max_retries": 0, "timeout": self.config.timeout_s}

    @property
    def _api_key(self) -> str | None:
        return self.config.api_key.get_secret_value() if self.config.api_key else None

    def _token_provider(self, closing: AsyncExitStack | None):
        if self.route.scope is None:
            return "unused"  # an OpenAI-compatible server without a key
        return _token_provider(self.route.scope, closing)

    @property
    def _model(self) -> str:
        return self.config.model or "default"

    # `_body` is already the JSON the endpoint takes, so it goes out through the client's generic `post` (the SDK's
    # documented way to send a body as it is and take the raw reply), which skips `create`'s per-call transform of
    # its typed params; the reply is then validated in one pass by pydantic-core. Measured here
    # (bench/bench_sdk_overhead.py, bench/results/sdk_overhead.txt, no injected latency): 0.41 ms of CPU a request
    # this way, 0.51 ms with the SDK building the ChatCompletion, 0.85 ms through `chat.completions.create`.
    def complete(self, request: ChatRequest) -> list[ChatReply]:
        with self._tier_errors():
            raw = self.client.post(CHAT_COMPLETIONS, body=self._body(request), cast_to=httpx2.Response)
            return self._replies(_chat_completion(raw.content), request)

    async def acomplete(self, request: ChatRequest) -> list[ChatReply]:
        with self._tier_errors():
            raw = await self.async_client().post(CHAT_COMPLETIONS, body=self._body(request), cast_to=httpx2.Response)
            return self._replies(_chat_completion(raw.content), request)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        config = self.config
        body: dict[str, Any] = {"model": self._model, "messages": request.messages}
        body[self.max_tokens_field] = config.max_output_tokens
        if config.reasoning_effort is not None:
            body["reasoning_effort"] = config.reasoning_effort
        if not config.reasons:
            body["temperature"] = request.temperature
        mode = config.effective_structured_output
        if mode == StructuredOutput.JSON_SCHEMA:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.schema,
                                "strict": _strict_compatible(request.schema)},
            }
        elif mode == StructuredOutput.JSON_OBJECT:
            body["response_format"] = {"type": "json_object"}
        if request.logprobs:
            # top_logprobs 0: the chosen tokens' logprobs only; some servers (llama-cpp-python's) return none without it
            body |= {"logprobs": True, "top_logprobs": 0}
        if request.n > 1:
            body["n"] = request.n
        return body

    @contextmanager
    def _tier_errors(self) -> Iterator[None]:
        """The SDK's errors as tier errors, one rule for both paths: transient ones are retried."""
        try:
            yield
        except openai.APIStatusError as exc:
            body = exc.body
            detail = str(body.get("message", body)) if isinstance(body, dict) else exc.message
            raise http_status_error(self.name, exc.status_code, exc.response.headers, detail) from exc
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise TransientTierError(f"{type(exc).__name__} from {self.name}") from exc
        except openai.APIError as exc:
            raise TierError(f"{self.name}: {exc}") from exc
        except ValueError as exc:  # a body that is not JSON (a gateway's error page): worth another try
            raise TransientTierError(f"{self.name}: malformed response: {exc}") from exc

    def _replies(self, response, request: ChatRequest) -> list[ChatReply]:
        if not getattr(response, "choices", None):  # JSON, but not a chat completion (the SDK builds it leniently)
            raise TierError(f"{self.name}: response has no choices")

        def token_logprobs(choice) -> list | None:
            if not (request.logprobs and choice.logprobs and choice.logprobs.content):
                return None
            return [(bytes(t.bytes) if t.bytes is not None else t.token.encode("utf-8"), t.logprob)
                    for t in choice.logprobs.content]

        return ChatReply.from_choices(response.choices, response.usage, token_logprobs)

    def probe(self) -> str:
        """Whether the endpoint answers, spending no tokens: the v1 API's model list (GET /openai/v1/models, an
        OpenAI-compatible server's /models), or a managed-compute endpoint's model info (GET /info)."""
        with self._tier_errors():
            if self.route.info_path:
                info = self.client.get(self.route.info_path, cast_to=object)
                name = info.get("model_name", "?") if isinstance(info, dict) else "?"
                return f"{self.config.backend.value} managed compute reachable: serves {name}"
            models = self.client.models.list()
        return f"{self.config.backend.value} reachable at {self.route.base_url} ({len(models.data)} models listed)"


def _chat_completion(raw: bytes) -> ChatCompletion:
    """A reply as the SDK's ChatCompletion: validated in one pass when it has every field the model requires, else
    built leniently as the SDK builds it, for servers that leave out fields the tier never reads (`id`,
    `created`). A body that is not a JSON object is a ValueError (a malformed response)."""
    try:
        return ChatCompletion.model_validate_json(raw)
    except pydantic.ValidationError:
        reply = json.loads(raw)
        if not isinstance(reply, dict):
            raise ValueError(f"a JSON {type(reply).__name__}, not an object") from None
        return ChatCompletion.model_construct(**reply)


def _token_provider(scope: str, closing: AsyncExitStack | None):
    """Entra ID tokens for `scope`, the SDK's `api_key` (it asks before each request; azure-identity's provider
    caches the token until it is about to expire). An async client (`closing` given) needs the async credential,
    which belongs to its loop too and is closed with the client."""
    if closing is not None:
        from azure.identity.aio import DefaultAzureCredential as AsyncCredential, get_bearer_token_provider as aprovider

        credential = AsyncCredential()
        closing.push_async_callback(credential.close)
        return aprovider(credential, scope)
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider

    return get_bearer_token_provider(DefaultAzureCredential(), scope)


def _strict_compatible(schema: dict[str, Any]) -> bool:
    """OpenAI strict mode needs every property required and no additional properties."""
    props = schema.get("properties", {})
    return schema.get("additionalProperties") is False and set(schema.get("required", [])) == set(props)

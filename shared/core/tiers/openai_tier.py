"""Azure OpenAI (the frontier) and any OpenAI-compatible server (Ollama, vLLM, llama.cpp server).

The blocking path sends through the openai SDK's client. The async path (batches: `Cascade.process_batch`, the
HTTP batch endpoint) sends the same body with aiohttp straight to the same URL and reads the reply into the
SDK's own `ChatCompletion`. On the async path the CPU a request costs is spent on the one event loop every item of
a batch waits on, and AsyncOpenAI's request path costs most of it: in bench/bench_functions.py a 96-item batch
took 3.26 ms of the app's CPU an item through AsyncAzureOpenAI and 1.32 ms this way, for 87.4% and 93.3% of the
ideal throughput (bench/results/functions.txt). Both paths turn HTTP failures into tier errors through
`status_error`, so they retry and fail alike.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack, contextmanager
from functools import cached_property
from typing import Any, Awaitable, Callable, Iterator, Mapping

import aiohttp
import openai
import pydantic
from openai.types.chat import ChatCompletion

from shared.core.config import Backend, StructuredOutput
from shared.core.tiers.chat import ChatReply, ChatRequest, ChatTier, http_status_error
from shared.errors import TierError, TransientTierError

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
CHAT_COMPLETIONS = "/chat/completions"  # Azure clients map it to /openai/deployments/{model}/chat/completions
MAX_CONNECTIONS = 1000  # the SDK's default pool size (httpx's), so both paths allow as many requests in flight


class OpenAITier(ChatTier):
    @cached_property
    def client(self) -> openai.OpenAI:
        config, endpoint = self.config, self._endpoint
        # Retries are ours (shared.retry), so every backend backs off the same way.
        common: dict[str, Any] = {"max_retries": 0, "timeout": config.timeout_s}
        if config.backend == Backend.AZURE_OPENAI:
            if config.api_key:
                return openai.AzureOpenAI(azure_endpoint=endpoint, api_version=config.api_version,
                                          api_key=config.api_key.get_secret_value(), **common)
            return openai.AzureOpenAI(azure_endpoint=endpoint, api_version=config.api_version,
                                      azure_ad_token_provider=_token_provider(None), **common)
        return openai.OpenAI(base_url=endpoint, api_key=self._api_key or "unused", **common)

    def new_async_client(self, closing: AsyncExitStack) -> "AsyncChatCompletions":
        """The URL and credentials the SDK client above uses, for the async path's sender."""
        headers: dict[str, str] = {}
        token = None
        if self.config.backend == Backend.AZURE_OPENAI:
            url = (f"{self._endpoint}/openai/deployments/{self._model}{CHAT_COMPLETIONS}"
                   f"?api-version={self.config.api_version}")
            if self._api_key:
                headers["api-key"] = self._api_key
            else:
                token = _token_provider(closing)
        else:
            url = f"{self._endpoint}{CHAT_COMPLETIONS}"
            headers["authorization"] = f"Bearer {self._api_key or 'unused'}"
        sender = AsyncChatCompletions(self.name, url, headers, self.config.timeout_s, token)
        closing.push_async_callback(sender.close)
        return sender

    @property
    def _endpoint(self) -> str:
        if not self.config.endpoint:
            raise TierError(f"tier {self.config.name}: no endpoint configured")
        return self.config.endpoint.rstrip("/")

    @property
    def _api_key(self) -> str | None:
        return self.config.api_key.get_secret_value() if self.config.api_key else None

    @property
    def _model(self) -> str:
        return self.config.model or "default"

    # `_body` is already the JSON the endpoint takes, so it goes out through the client's generic `post` (the
    # SDK's documented way to send a body as it is), which skips `create`'s per-call transform of its typed
    # params: 0.6 of 1.8 ms of CPU per call measured here. The reply is parsed into the same ChatCompletion.
    def complete(self, request: ChatRequest) -> list[ChatReply]:
        with self._tier_errors():
            response = self.client.post(CHAT_COMPLETIONS, body=self._body(request), cast_to=ChatCompletion)
        return self._replies(response, request)

    async def acomplete(self, request: ChatRequest) -> list[ChatReply]:
        return self._replies(await self.async_client().post(self._body(request)), request)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self._model,
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": self.config.max_output_tokens,
        }
        mode = self.config.effective_structured_output
        if mode == StructuredOutput.JSON_SCHEMA:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": request.schema,
                                "strict": _strict_compatible(request.schema)},
            }
        elif mode == StructuredOutput.JSON_OBJECT:
            body["response_format"] = {"type": "json_object"}
        if request.logprobs:
            body["logprobs"] = True
        if request.n > 1:
            body["n"] = request.n
        return body

    @contextmanager
    def _tier_errors(self) -> Iterator[None]:
        """The SDK's errors as tier errors: transient ones are retried."""
        try:
            yield
        except openai.APIStatusError as exc:
            raise status_error(self.name, exc.status_code, exc.response.headers, exc.response.content) from exc
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

    def health(self) -> str:
        reply = self.complete(ChatRequest(
            [{"role": "user", "content": 'Reply with JSON: {"ok": true}'}],
            schema={"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"], "additionalProperties": False},
            schema_name="health",
            temperature=0.0,
            logprobs=False,
        ))[0]
        return f"{self.config.backend.value} {self.config.model} answered ({reply.tokens_out} tokens)"


class AsyncChatCompletions:
    """The async path's sender (see the module docstring): one aiohttp session, bound to the event loop it was
    made on, with the endpoint's URL and key; with Entra ID, `token` gives a fresh bearer token per request (the
    azure-identity provider caches it until it is about to expire)."""

    def __init__(self, tier: str, url: str, headers: Mapping[str, str], timeout_s: float,
                 token: Callable[[], Awaitable[str]] | None = None) -> None:
        self._tier, self._url, self._token = tier, url, token
        self._session = aiohttp.ClientSession(
            headers={"content-type": "application/json", **headers}, timeout=aiohttp.ClientTimeout(total=timeout_s),
            connector=aiohttp.TCPConnector(limit=MAX_CONNECTIONS))

    async def post(self, body: dict[str, Any]) -> ChatCompletion:
        headers = {"authorization": f"Bearer {await self._token()}"} if self._token else None
        try:
            async with self._session.post(self._url, data=json.dumps(body), headers=headers) as response:
                raw = await response.read()
                if response.status >= 400:
                    raise status_error(self._tier, response.status, response.headers, raw)
            return _chat_completion(raw)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise TransientTierError(f"{type(exc).__name__} from {self._tier}") from exc
        except ValueError as exc:  # not a chat completion (a gateway's error page): worth another try
            raise TransientTierError(f"{self._tier}: malformed response: {exc}") from exc

    async def close(self) -> None:
        await self._session.close()


def _chat_completion(raw: bytes) -> ChatCompletion:
    """A reply as the SDK's ChatCompletion: validated in one pass by pydantic-core when it has every field the
    model requires (the SDK's own lenient build took about a third of the async path's CPU a request in a profile
    here), else built leniently as the SDK builds it, for servers that leave out fields the tier never reads
    (`id`, `created`)."""
    try:
        return ChatCompletion.model_validate_json(raw)
    except pydantic.ValidationError:
        reply = json.loads(raw)  # ValueError if it is not JSON at all
        if not isinstance(reply, dict):
            raise ValueError(f"a JSON {type(reply).__name__}, not an object") from None
        return ChatCompletion.model_construct(**reply)


def status_error(tier: str, status: int, headers: Mapping[str, str], body: bytes) -> TierError:
    """An HTTP error reply as a tier error, with the message from OpenAI's error body where it has one."""
    try:
        detail = str(json.loads(body)["error"]["message"])
    except (ValueError, KeyError, TypeError):
        detail = body[:200].decode("utf-8", "replace")
    return http_status_error(tier, status, headers, detail)


def _token_provider(closing: AsyncExitStack | None):
    """Entra ID tokens for Azure OpenAI. An async client (`closing` given) needs the async credential, which
    belongs to its loop too and is closed with the client."""
    if closing is not None:
        from azure.identity.aio import DefaultAzureCredential as AsyncCredential, get_bearer_token_provider as aprovider

        credential = AsyncCredential()
        closing.push_async_callback(credential.close)
        return aprovider(credential, COGNITIVE_SERVICES_SCOPE)
    from azure.identity import DefaultAzureCredential, get_bearer_token_provider

    return get_bearer_token_provider(DefaultAzureCredential(), COGNITIVE_SERVICES_SCOPE)


def _strict_compatible(schema: dict[str, Any]) -> bool:
    """OpenAI strict mode needs every property required and no additional properties."""
    props = schema.get("properties", {})
    return schema.get("additionalProperties") is False and set(schema.get("required", [])) == set(props)


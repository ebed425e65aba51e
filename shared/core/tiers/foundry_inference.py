"""LEGACY backend `foundry_inference`: Foundry models through the azure-ai-inference beta SDK, kept only for
hub-based serverless endpoints (`https://<name>.<region>.models.ai.azure.com`).

Microsoft retired the Azure AI Inference beta SDK on 2026-08-26 and points to the OpenAI v1 API with the stable
openai SDK ("Migrate from Azure AI Inference SDK to OpenAI SDK",
https://learn.microsoft.com/azure/ai-foundry/how-to/model-inference-to-openai-migration, checked 2026-12-06): every
other Foundry deployment, managed compute included, is backend `foundry` (`foundry.py`). This is the one module
that imports `azure.ai.inference`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, contextmanager
from functools import cached_property
from typing import Any, Iterator

from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from shared.core.backends import StructuredOutput
from shared.core.tiers.chat import ChatReply, ChatRequest, ChatTier, http_status_error
from shared.errors import TierError, TransientTierError

INFERENCE_SCOPE = "https://ml.azure.com/.default"
AI_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


class FoundryInferenceTier(ChatTier):
    @cached_property
    def client(self):
        from azure.ai.inference import ChatCompletionsClient
        from azure.identity import DefaultAzureCredential

        return self._new_client(ChatCompletionsClient, DefaultAzureCredential)

    def new_async_client(self, closing: AsyncExitStack):
        from azure.ai.inference.aio import ChatCompletionsClient
        from azure.identity.aio import DefaultAzureCredential

        def entra_credential():  # the async credential belongs to the loop too: closed with the client
            credential = DefaultAzureCredential()
            closing.push_async_callback(credential.close)
            return credential

        client = self._new_client(ChatCompletionsClient, entra_credential)
        closing.push_async_callback(client.close)
        return client

    def _new_client(self, client_class, entra_credential):
        config = self.config
        if not config.endpoint:
            raise TierError(f"tier {config.name}: no endpoint configured")
        # retry_total=0: retries are ours (shared.retry), the same for every backend.
        common: dict[str, Any] = {"retry_total": 0, "connection_timeout": config.timeout_s, "read_timeout": config.timeout_s}
        if config.api_key:
            from azure.core.credentials import AzureKeyCredential

            return client_class(config.endpoint, AzureKeyCredential(config.api_key.get_secret_value()), **common)
        # AI Services accounts (*.services.ai.azure.com) take the Cognitive Services scope; ML endpoints take ml.azure.com.
        scope = INFERENCE_SCOPE if ".inference.ml.azure.com" in config.endpoint else AI_SERVICES_SCOPE
        return client_class(config.endpoint, entra_credential(), credential_scopes=[scope], **common)

    def complete(self, request: ChatRequest) -> list[ChatReply]:
        with self._tier_errors():
            result = self.client.complete(**self._body(request))
        return self._replies(result, request)

    async def acomplete(self, request: ChatRequest) -> list[ChatReply]:
        with self._tier_errors():
            result = await self.async_client().complete(**self._body(request))
        return self._replies(result, request)

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        from azure.ai.inference.models import JsonSchemaFormat

        body: dict[str, Any] = {
            "messages": request.messages,
            "temperature": request.temperature,
            "max_tokens": self.config.max_output_tokens,
        }
        if self.config.model:
            body["model"] = self.config.model
        mode = self.config.effective_structured_output
        if mode == StructuredOutput.JSON_SCHEMA:
            body["response_format"] = JsonSchemaFormat(name=request.schema_name, schema=request.schema, strict=True)
        elif mode == StructuredOutput.JSON_OBJECT:
            body["response_format"] = "json_object"
        # Not documented parameters of the Model Inference API: passed through to the model as they are.
        extras = {**({"logprobs": True} if request.logprobs else {}), **({"n": request.n} if request.n > 1 else {})}
        if extras:
            body["model_extras"] = extras
        return body

    @contextmanager
    def _tier_errors(self) -> Iterator[None]:
        """azure-core's errors (the same for both clients) as tier errors: 429 and 5xx are retried."""
        try:
            yield
        except HttpResponseError as exc:
            headers = exc.response.headers if exc.response is not None else None
            raise http_status_error(self.name, exc.status_code or 0, headers, exc.message) from exc
        except (ServiceRequestError, ServiceResponseError) as exc:
            raise TransientTierError(f"{type(exc).__name__} from {self.name}") from exc
        except ValueError as exc:  # a body that is not JSON
            raise TransientTierError(f"{self.name}: malformed response: {exc}") from exc

    def _replies(self, result, request: ChatRequest) -> list[ChatReply]:
        if not getattr(result, "choices", None):  # JSON, but not a chat completion (even a list)
            raise TierError(f"{self.name}: response has no choices")

        def token_logprobs(choice) -> list | None:
            extra = choice.get("logprobs") if request.logprobs else None
            if not (isinstance(extra, dict) and extra.get("content")):
                return None
            return [(bytes(t["bytes"]) if t.get("bytes") is not None else t["token"].encode("utf-8"), float(t["logprob"]))
                    for t in extra["content"]]

        return ChatReply.from_choices(result.choices, result.usage, token_logprobs)

    def probe(self) -> str:
        """The endpoint's model info (GET /info): no tokens."""
        with self._tier_errors():
            info = self.client.get_model_info()
        return f"foundry_inference (legacy) {info.model_name} ({info.model_provider_name}) reachable"

"""An Azure OpenAI / Azure AI Foundry embeddings deployment (e.g. text-embedding-3-small) as an Embedder.

Keyless by default: a Microsoft Entra token from DefaultAzureCredential for the Cognitive Services scope, unless an
api key is given. The SDK's own retries are off (max_retries=0): the caller's retry policy decides, as for the chat
tiers. SDK errors (openai.APIError and subclasses) propagate unchanged so that policy can tell 429/5xx from the rest.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from shared.learning.embedders.base import Embeddings, l2_normalise

if TYPE_CHECKING:
    import openai

COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"
MAX_INPUTS_PER_REQUEST = 2048  # the service's limit on the length of `input`


class AzureOpenAIEmbedder:
    """Embeds through ``POST {endpoint}/openai/deployments/{deployment}/embeddings?api-version=...``.

    ``dimension`` is what the model returns (1536 for text-embedding-3-small); with ``request_dimensions`` it is also
    sent as ``dimensions`` to shorten text-embedding-3 vectors. A reply of another length is an error, never padded.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        deployment: str,
        model: str = "text-embedding-3-small",
        model_version: str = "1",
        dimension: int = 1536,
        request_dimensions: bool = False,
        api_version: str = "2024-10-21",
        api_key: str | None = None,
        batch_size: int = 256,
        timeout_s: float = 30.0,
    ) -> None:
        if not 1 <= batch_size <= MAX_INPUTS_PER_REQUEST:
            raise ValueError(f"batch_size must be between 1 and {MAX_INPUTS_PER_REQUEST}")
        self.endpoint = endpoint
        self.deployment = deployment
        self.model = model
        self.model_version = model_version
        self._dimension = dimension
        self.request_dimensions = request_dimensions
        self.api_version = api_version
        self._api_key = api_key
        self.batch_size = batch_size
        self.timeout_s = timeout_s

    @property
    def id(self) -> str:
        # The embedding space is the model's, not the deployment's: two deployments of one model are interchangeable.
        return f"azure-openai/{self.model}"

    @property
    def model_hash(self) -> str:
        # No model file to hash: the model version and output length pin the vectors instead.
        return f"{self.model}:{self.model_version}:{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def languages(self) -> None:
        # No language is refused. Microsoft's catalog page lists none (https://ai.azure.com/catalog/models/
        # text-embedding-3-small, checked 2026-12-06: "The provider has not supplied this information"); OpenAI's
        # launch of text-embedding-3 (2024-01-25) reports multilingual retrieval (MIRACL 44.0% small, 54.9% large).
        return None

    @cached_property
    def client(self) -> openai.AzureOpenAI:
        import openai

        common: dict[str, Any] = {
            "azure_endpoint": self.endpoint, "api_version": self.api_version,
            "azure_deployment": self.deployment, "max_retries": 0, "timeout": self.timeout_s,
        }
        if self._api_key:
            return openai.AzureOpenAI(api_key=self._api_key, **common)
        from azure.identity import DefaultAzureCredential, get_bearer_token_provider

        provider = get_bearer_token_provider(DefaultAzureCredential(), COGNITIVE_SERVICES_SCOPE)
        return openai.AzureOpenAI(azure_ad_token_provider=provider, **common)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.embed_metered(texts).vectors

    def embed_metered(self, texts: Sequence[str]) -> Embeddings:
        """The rows, and the tokens the deployment billed (`usage.prompt_tokens` of its replies)."""
        result = np.zeros((len(texts), self._dimension), dtype=np.float32)
        tokens = 0
        for start in range(0, len(texts), self.batch_size):
            chunk = list(texts[start:start + self.batch_size])
            request: dict[str, Any] = {"model": self.deployment, "input": chunk, "encoding_format": "float"}
            if self.request_dimensions:
                request["dimensions"] = self._dimension
            response = self.client.embeddings.create(**request)
            if len(response.data) != len(chunk):
                raise ValueError(f"{self.deployment}: {len(response.data)} embeddings for {len(chunk)} inputs")
            for item in response.data:  # `index` says which input a row belongs to; do not rely on reply order
                if len(item.embedding) != self._dimension:
                    raise ValueError(
                        f"{self.deployment}: embedding of length {len(item.embedding)}, expected {self._dimension}"
                    )
                result[start + item.index] = item.embedding
            tokens += response.usage.prompt_tokens if response.usage else 0
        return Embeddings(l2_normalise(result), tokens)

"""Backend `openai_compatible`: any OpenAI-compatible server at the endpoint as given (Ollama, vLLM, llama.cpp's
server: `http://host:port/v1`), with its key or none; it takes no Entra token."""

from __future__ import annotations

from shared.core.tiers.openai_api import OpenAIApiTier, Route


class OpenAICompatibleTier(OpenAIApiTier):
    def route_to(self, endpoint: str) -> Route:
        return Route(endpoint, None)

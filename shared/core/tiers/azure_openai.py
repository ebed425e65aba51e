"""Backend `azure_openai`: an Azure OpenAI deployment on the OpenAI v1 API (`<resource>/openai/v1/`, `v1_route`)."""

from __future__ import annotations

from shared.core.tiers.openai_api import OpenAIApiTier, Route, v1_route


class AzureOpenAITier(OpenAIApiTier):
    # Azure OpenAI's reasoning models refuse max_tokens; every model there takes max_completion_tokens ("Azure
    # OpenAI reasoning models", https://learn.microsoft.com/azure/ai-foundry/openai/how-to/reasoning, checked
    # 2026-12-06).
    max_tokens_field = "max_completion_tokens"

    def route_to(self, endpoint: str) -> Route:
        return v1_route(endpoint)

"""Backend `foundry`: a Foundry Models deployment on the OpenAI v1 API (`v1_route`), or a catalogue model on a
managed-compute online endpoint (`https://<endpoint>.<region>.inference.ml.azure.com`).

A managed-compute endpoint serves the Azure AI Model Inference API at its root (`/chat/completions`, `/info`, with
its api-version); `azureml-model-deployment` routes to one deployment, `extra-parameters: pass-through` lets
`logprobs` and `n` through, and Entra tokens are for https://ml.azure.com/.default
(https://learn.microsoft.com/rest/api/microsoft-foundry/modelinference/ and its "Get Model Info" reference,
https://learn.microsoft.com/azure/ai-studio/reference/reference-model-inference-info; the header:
https://learn.microsoft.com/azure/machine-learning/how-to-safely-rollout-online-endpoints; checked 2026-12-06).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from shared.core.config import is_managed_compute
from shared.core.tiers.openai_api import OpenAIApiTier, Route, v1_route

MACHINE_LEARNING_SCOPE = "https://ml.azure.com/.default"
MODEL_INFERENCE_API_VERSION = "2024-05-01-preview"  # the managed-compute endpoints' Model Inference API


class FoundryTier(OpenAIApiTier):
    def route_to(self, endpoint: str) -> Route:
        if not is_managed_compute(endpoint):
            return v1_route(endpoint)
        url = urlsplit(endpoint)
        headers = {"extra-parameters": "pass-through"}
        if self.config.deployment:
            headers["azureml-model-deployment"] = self.config.deployment
        return Route(f"{url.scheme}://{url.netloc}/", MACHINE_LEARNING_SCOPE, headers,
                     {"api-version": MODEL_INFERENCE_API_VERSION}, info_path="/info")

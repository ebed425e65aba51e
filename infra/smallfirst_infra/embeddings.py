"""The embeddings deployment for the trained tier's managed embedder (stack config; text-embedding-3-small), behind a switch."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import cognitiveservices, resources

from smallfirst_infra.config import EnvironmentConfig
from smallfirst_infra.model_deployments import model_deployment


class EmbeddingsDeployment(pulumi.ComponentResource):
    """An OpenAI embeddings deployment on the AI Services account, and the app settings that make the trained tier
    embed with it (keyless: the app's identity already has Cognitive Services OpenAI User on the account).

    Heads are tied to their embedder, so heads trained on the local MiniLM are refused once this is on: retrain
    them (`smallfirst train`, or the scheduled retrain, which judges an unusable head as no head)."""

    def __init__(self, name: str, rg: resources.ResourceGroup, account: cognitiveservices.Account,
                 openai_endpoint: pulumi.Input[str], config: EnvironmentConfig, after: pulumi.Resource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:EmbeddingsDeployment", name, None, opts)
        self.deployment_name = config.embeddings_model.name
        # Deployments on one account must be created one after another, or Azure answers RequestConflict.
        self.deployment = model_deployment(
            f"{name}-deployment", rg, account, self.deployment_name, config.embeddings_model,
            pulumi.ResourceOptions(parent=self, depends_on=[after]))
        self.app_settings: dict[str, pulumi.Input[str]] = {
            "SMALLFIRST_TRAINED_EMBEDDER": "azure_openai",
            "SMALLFIRST_TRAINED_ENDPOINT": openai_endpoint,
            "SMALLFIRST_TRAINED_EMBEDDINGS_DEPLOYMENT": self.deployment_name,
        }
        self.register_outputs({"deployment_name": self.deployment_name})

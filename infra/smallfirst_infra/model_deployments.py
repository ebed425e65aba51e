"""Cognitive Services model deployments from stack config (the small tier, the frontier, the embeddings)."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import cognitiveservices, resources

from smallfirst_infra.config import ModelDeployment


def model_deployment(name: str, rg: resources.ResourceGroup, account: cognitiveservices.Account, deployment_name: str,
                     model: ModelDeployment, opts: pulumi.ResourceOptions) -> cognitiveservices.Deployment:
    """A deployment of a model from stack config; without a version, Azure deploys the model's default version."""
    return cognitiveservices.Deployment(
        name, resource_group_name=rg.name, account_name=account.name, deployment_name=deployment_name,
        properties={"model": model.model_properties()}, sku={"name": model.sku, "capacity": model.capacity},
        opts=opts)

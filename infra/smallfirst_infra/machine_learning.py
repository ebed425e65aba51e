"""Azure Machine Learning for the small tier: a managed-compute Phi-4 endpoint, or a hub-based serverless one."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import authorization, keyvault, machinelearningservices, resources

from smallfirst_infra.config import EnvironmentConfig
from smallfirst_infra.naming import Names
from smallfirst_infra.storage import secure_storage_account

SERVERLESS_KEY_SECRET = "small-serverless-key"
MANAGED_COMPUTE_DEPLOYMENT = "phi4"
AUTH_MODE = "AADToken"  # Entra ID tokens for https://ml.azure.com
# The API version azure-native 3.x uses for online endpoints, so the traffic update writes the same shape.
ONLINE_ENDPOINT_API_VERSION = "2025-12-01"

# An endpoint's traffic can name only deployments that exist, and a deployment needs its endpoint: so the endpoint
# is created without traffic and written again, with all of it on the deployment, once the deployment exists.
# azure-native has no resource for that second write (ARM's PATCH takes only tags and identity); a template does.
ENDPOINT_TRAFFIC_TEMPLATE = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {"workspaceName": {"type": "string"}, "endpointName": {"type": "string"},
                   "location": {"type": "string"}, "authMode": {"type": "string"}, "traffic": {"type": "object"}},
    "resources": [{
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
        "apiVersion": ONLINE_ENDPOINT_API_VERSION,
        "name": "[format('{0}/{1}', parameters('workspaceName'), parameters('endpointName'))]",
        "location": "[parameters('location')]",
        "identity": {"type": "SystemAssigned"},
        "properties": {"authMode": "[parameters('authMode')]", "traffic": "[parameters('traffic')]"},
    }],
}


def endpoint_root(scoring_uri: str) -> str:
    """`https://<endpoint>.<region>.inference.ml.azure.com/score` -> the endpoint's root, where the foundry tier
    reaches a catalogue model on managed compute (shared/core/tiers/foundry.py says which API and why)."""
    return scoring_uri.removesuffix("/").removesuffix("/score")


def key_vault_reference(vault_uri: str, secret_name: str) -> str:
    """An app setting that App Service resolves from Key Vault with the app's identity: the secret stays out.

    The URI names no version, so a rotated key is picked up: a reference without a version resolves to the
    secret's latest version, refetched within 24 hours of a rotation
    (learn.microsoft.com/azure/app-service/app-service-key-vault-references, checked 2026-12-06).
    """
    return f"@Microsoft.KeyVault(SecretUri={vault_uri.rstrip('/')}/secrets/{secret_name})"


class MachineLearningDependencies(pulumi.ComponentResource):
    """What every Azure ML workspace (and AI hub) must be created with: storage, Key Vault, App Insights."""

    def __init__(self, name: str, rg: resources.ResourceGroup, names: Names, app_insights_id: pulumi.Input[str],
                 private: bool = False, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:MachineLearningDependencies", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.storage = secure_storage_account(f"{name}-storage", rg, names.storage_account("ml"), child)
        tenant_id = authorization.get_client_config_output().tenant_id
        # Private: the app resolves its reference through the private endpoint (network.py); the ML workspaces
        # reach the vault as trusted services.
        network = {"public_network_access": "Disabled",
                   "network_acls": {"default_action": "Deny", "bypass": "AzureServices"}} if private else {
            "public_network_access": "Enabled"}
        # RBAC, not access policies: the workspaces and the app get roles like everything else here.
        self.key_vault = keyvault.Vault(
            f"{name}-kv", resource_group_name=rg.name, vault_name=names.dns_label("kv"),
            properties={"tenant_id": tenant_id, "sku": {"family": "A", "name": "standard"},
                        "enable_rbac_authorization": True, "enable_soft_delete": True,
                        "soft_delete_retention_in_days": 7, **network},
            opts=child)
        self.app_insights_id = app_insights_id
        self.register_outputs({"key_vault_uri": self.key_vault.properties.vault_uri})

    def workspace_args(self) -> dict:
        # Identity-based datastores: the storage account keeps shared keys off.
        return {"storage_account": self.storage.id, "key_vault": self.key_vault.id,
                "application_insights": self.app_insights_id, "identity": {"type": "SystemAssigned"},
                "system_datastores_auth_mode": "Identity"}


class ManagedComputeEndpoint(pulumi.ComponentResource):
    """A dedicated GPU endpoint (Entra ID auth) serving Phi-4: the optional second small tier."""

    def __init__(self, name: str, rg: resources.ResourceGroup, config: EnvironmentConfig, names: Names,
                 dependencies: MachineLearningDependencies, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:ManagedComputeEndpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = machinelearningservices.Workspace(
            f"{name}-ws", resource_group_name=rg.name, workspace_name=names.dns_label("mlws"), kind="Default",
            sku={"name": "Basic", "tier": "Basic"},
            **dependencies.workspace_args(), opts=child)
        # The endpoint name is a DNS label within the region (<name>.<region>.inference.ml.azure.com).
        self.endpoint = machinelearningservices.OnlineEndpoint(
            f"{name}-endpoint", resource_group_name=rg.name, workspace_name=self.workspace.name,
            endpoint_name=names.dns_label("gpu"), identity={"type": "SystemAssigned"},
            properties={"auth_mode": AUTH_MODE}, opts=child)
        self.deployment_name = MANAGED_COMPUTE_DEPLOYMENT
        self.deployment = machinelearningservices.OnlineDeployment(
            f"{name}-deployment", resource_group_name=rg.name, workspace_name=self.workspace.name,
            endpoint_name=self.endpoint.name, deployment_name=self.deployment_name,
            # The typed args, not a dict: `properties` is a union type, so a dict's keys are not translated.
            properties=machinelearningservices.ManagedOnlineDeploymentArgs(
                endpoint_compute_type="Managed", model=config.managed_compute_model_id,
                instance_type=config.managed_compute_instance_type,
                request_settings=machinelearningservices.OnlineRequestSettingsArgs(
                    request_timeout=f"PT{config.managed_compute_request_timeout_s}S",
                    max_concurrent_requests_per_instance=config.managed_compute_max_concurrent_requests)),
            sku={"name": "Default", "capacity": config.managed_compute_instance_count}, opts=child)
        # Without this the endpoint sends 0% of its traffic to the deployment and every call fails.
        self.traffic = resources.Deployment(
            f"{name}-traffic", resource_group_name=rg.name,
            properties={"mode": "Incremental", "template": ENDPOINT_TRAFFIC_TEMPLATE, "parameters": {
                "workspaceName": {"value": self.workspace.name}, "endpointName": {"value": self.endpoint.name},
                "location": {"value": self.endpoint.location}, "authMode": {"value": AUTH_MODE},
                "traffic": {"value": {self.deployment_name: 100}}}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.deployment]))
        self.inference_url = self.endpoint.properties.scoring_uri.apply(endpoint_root)
        self.register_outputs({"inference_url": self.inference_url})


class ServerlessSmallModel(pulumi.ComponentResource):
    """Phi-4 as a serverless endpoint in an AI hub project: pay per token where GlobalStandard is refused.

    Serverless endpoints take only key auth. The key goes into Key Vault, and the app reads it through a Key
    Vault reference resolved with its own identity, so no secret is stored in the app settings.
    """

    def __init__(self, name: str, rg: resources.ResourceGroup, config: EnvironmentConfig, names: Names,
                 dependencies: MachineLearningDependencies, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:ServerlessSmallModel", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.hub = machinelearningservices.Workspace(
            f"{name}-hub", resource_group_name=rg.name, workspace_name=names.dns_label("hub"), kind="Hub",
            sku={"name": "Basic", "tier": "Basic"},
            **dependencies.workspace_args(), opts=child)
        self.project = machinelearningservices.Workspace(
            f"{name}-project", resource_group_name=rg.name, workspace_name=names.dns_label("proj"), kind="Project",
            hub_resource_id=self.hub.id,
            sku={"name": "Basic", "tier": "Basic"}, identity={"type": "SystemAssigned"}, opts=child)
        # Its name is a DNS label within the region (<name>.<region>.models.ai.azure.com).
        self.endpoint = machinelearningservices.ServerlessEndpoint(
            f"{name}-endpoint", resource_group_name=rg.name, workspace_name=self.project.name,
            name=names.dns_label("small"), sku={"name": "Consumption"},
            properties={"auth_mode": "Key", "model_settings": {"model_id": config.serverless_model_id}},
            opts=child)
        keys = machinelearningservices.list_serverless_endpoint_keys_output(
            name=self.endpoint.name, resource_group_name=rg.name, workspace_name=self.project.name)
        self.key_secret = keyvault.Secret(
            f"{name}-key", resource_group_name=rg.name, vault_name=dependencies.key_vault.name,
            secret_name=SERVERLESS_KEY_SECRET, properties={"value": pulumi.Output.secret(keys.primary_key)},
            opts=child)
        self.inference_url = self.endpoint.properties.inference_endpoint.uri.apply(lambda uri: uri.rstrip("/"))
        vault_uri = dependencies.key_vault.properties.vault_uri
        self.api_key_setting = pulumi.Output.all(vault_uri, self.key_secret.name).apply(
            lambda args: key_vault_reference(*args))
        self.register_outputs({"inference_url": self.inference_url})

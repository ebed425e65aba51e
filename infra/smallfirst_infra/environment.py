"""ComponentResources for one smallfirst environment. Each component owns one concern."""

from __future__ import annotations

from pathlib import Path

import pulumi
from pulumi_azure_native import (
    applicationinsights, authorization, cognitiveservices, managedidentity, operationalinsights, resources, storage, web,
)

from smallfirst_infra import network, roles
from smallfirst_infra.alerts import Alerts
from smallfirst_infra.blob_trigger import AppCode, BlobEvents
from smallfirst_infra.config import REPOSITORY_ROOT, EnvironmentConfig, SmallModelHosting
from smallfirst_infra.embeddings import EmbeddingsDeployment
from smallfirst_infra.entra import EntraAuth
from smallfirst_infra.machine_learning import MachineLearningDependencies, ManagedComputeEndpoint, ServerlessSmallModel
from smallfirst_infra.model_deployments import model_deployment
from smallfirst_infra.naming import Names
from smallfirst_infra.network import PrivateNetwork
from smallfirst_infra.roles import CustomRole, RoleAssignments
from smallfirst_infra.storage import DataStorage, secure_storage_account

DEPLOYMENT_CONTAINER = "app-package"
# The host's own cap on an HTTP request body, in bytes ("FUNCTIONS_REQUEST_BODY_SIZE_LIMIT: Overrides the default
# limit on the body size of requests sent to HTTP endpoints. The value is given in bytes, with a default maximum
# request size of 104,857,600 bytes", learn.microsoft.com/azure/azure-functions/functions-app-settings, checked
# 2026-12-06): the app's own cap (MAX_BODY_BYTES in functions/http_api.py, which a test holds this to), so a larger
# body is refused by the host before the worker reads it.
HTTP_BODY_LIMIT_BYTES = 1024 * 1024
# Where the code zip is written for the publish step (ignored by git: `build/`).
PACKAGE_DIR = REPOSITORY_ROOT / "infra" / "build"


class Monitoring(pulumi.ComponentResource):
    def __init__(self, name: str, rg: resources.ResourceGroup, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = operationalinsights.Workspace(
            f"{name}-logs", resource_group_name=rg.name, sku={"name": "PerGB2018"}, retention_in_days=30, opts=child)
        self.app_insights = applicationinsights.Component(
            f"{name}-appi", resource_group_name=rg.name, kind="web", application_type="web",
            workspace_resource_id=self.workspace.id, disable_local_auth=True, opts=child)
        self.register_outputs({"connection_string": self.app_insights.connection_string})


class AiFoundry(pulumi.ComponentResource):
    """AI Services account and project, the Phi-4 pay-per-token (unless hosted elsewhere) and frontier deployments."""

    def __init__(self, name: str, rg: resources.ResourceGroup, config: EnvironmentConfig, names: Names,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:AiFoundry", name, None, opts)
        # Private: reachable only through the private endpoint (network.py); no trusted service calls it.
        public_access = {"public_network_access": "Disabled", "network_acls": {"default_action": "Deny"}} \
            if config.private_networking else {"public_network_access": "Enabled"}
        child = pulumi.ResourceOptions(parent=self)
        # The custom subdomain is a global DNS name (<subdomain>.services.ai.azure.com): hence the random suffix.
        self.subdomain = names.dns_label("ai")
        self.account = cognitiveservices.Account(
            f"{name}-account", resource_group_name=rg.name, account_name=self.subdomain, kind="AIServices",
            sku={"name": "S0"}, identity={"type": "SystemAssigned"},
            properties={"custom_sub_domain_name": self.subdomain, "disable_local_auth": True,
                        "allow_project_management": True, **public_access},
            opts=child)
        self.project = cognitiveservices.Project(
            f"{name}-project", resource_group_name=rg.name, account_name=self.account.name,
            identity={"type": "SystemAssigned"}, properties={"description": "smallfirst"}, opts=child)
        self.small_deployment_name = config.small_model.name.lower()
        self.frontier_deployment_name = config.frontier_model.name
        previous: pulumi.Resource = self.project
        if config.small_model_hosting == SmallModelHosting.AI_SERVICES:
            previous = self.small_deployment = model_deployment(
                f"{name}-small", rg, self.account, self.small_deployment_name, config.small_model,
                pulumi.ResourceOptions(parent=self, depends_on=[self.project]))
        # Deployments on one account must be created one after another, or Azure answers RequestConflict.
        self.frontier_deployment = model_deployment(
            f"{name}-frontier", rg, self.account, self.frontier_deployment_name, config.frontier_model,
            pulumi.ResourceOptions(parent=self, depends_on=[previous]))
        # The resource endpoints; the tiers talk to `<endpoint>openai/v1/` on either (OpenAI v1 API, no api-version).
        self.foundry_endpoint = pulumi.Output.concat("https://", self.subdomain, ".services.ai.azure.com/")
        self.openai_endpoint = pulumi.Output.concat("https://", self.subdomain, ".openai.azure.com/")
        self.register_outputs({"foundry_endpoint": self.foundry_endpoint})


class FunctionApp(pulumi.ComponentResource):
    """Flex Consumption (FC1) Python app with a user-assigned identity and keyless settings."""

    def __init__(self, name: str, rg: resources.ResourceGroup, config: EnvironmentConfig, names: Names,
                 data: DataStorage, monitoring: Monitoring, model_settings: dict[str, pulumi.Input[str]],
                 private_network: PrivateNetwork | None = None, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:FunctionApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.identity = managedidentity.UserAssignedIdentity(f"{name}-id", resource_group_name=rg.name, opts=child)
        self.host_storage = secure_storage_account(f"{name}-host", rg, names.storage_account("host"), child,
                                                   private=private_network is not None)
        self.deployment_container = storage.BlobContainer(
            f"{name}-package", resource_group_name=rg.name, account_name=self.host_storage.name,
            container_name=DEPLOYMENT_CONTAINER, public_access="None", opts=child)
        self.plan = web.AppServicePlan(
            f"{name}-plan", resource_group_name=rg.name, kind="functionapp", reserved=True,
            sku={"name": "FC1", "tier": "FlexConsumption"}, opts=child)
        client_id = self.identity.client_id
        settings: dict[str, pulumi.Input[str]] = {
            "AzureWebJobsStorage__accountName": self.host_storage.name,
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": client_id,
            "DataStorage__blobServiceUri": data.account.primary_endpoints.blob,
            "DataStorage__queueServiceUri": data.account.primary_endpoints.queue,
            "DataStorage__credential": "managedidentity",
            "DataStorage__clientId": client_id,
            "AZURE_CLIENT_ID": client_id,  # DefaultAzureCredential picks the user-assigned identity
            "APPLICATIONINSIGHTS_CONNECTION_STRING": monitoring.app_insights.connection_string,
            "APPLICATIONINSIGHTS_AUTHENTICATION_STRING": client_id.apply(lambda c: f"ClientId={c};Authorization=AAD"),
            # The Python worker exports its own OpenTelemetry spans and logs ("Use OpenTelemetry with Azure
            # Functions", learn.microsoft.com/azure/azure-functions/opentelemetry-howto, checked 2026-12-06).
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
            "FUNCTIONS_REQUEST_BODY_SIZE_LIMIT": str(HTTP_BODY_LIMIT_BYTES),
            # key: inference takes function keys; entra: it also needs a token with the Caller role (entra.py).
            "SMALLFIRST_CALLER_AUTH": str(config.caller_auth),
            **model_settings,
        }
        # Flex Consumption VNet integration: the app's outbound traffic goes through the delegated subnet.
        vnet = {"virtual_network_subnet_id": private_network.app_subnet.id} if private_network else {}
        # The app name is the global host name <name>.azurewebsites.net.
        self.app = web.WebApp(
            f"{name}-app", resource_group_name=rg.name, name=names.dns_label("func"), kind="functionapp,linux",
            server_farm_id=self.plan.id, https_only=True,
            identity={"type": "UserAssigned", "user_assigned_identities": [self.identity.id]},
            key_vault_reference_identity=self.identity.id,
            function_app_config={
                "deployment": {"storage": {
                    "type": "blobContainer",
                    "value": pulumi.Output.concat(self.host_storage.primary_endpoints.blob, DEPLOYMENT_CONTAINER),
                    "authentication": {"type": "UserAssignedIdentity",
                                       "user_assigned_identity_resource_id": self.identity.id}}},
                "runtime": {"name": "python", "version": config.python_version},
                "scale_and_concurrency": {"maximum_instance_count": config.maximum_instance_count,
                                          "instance_memory_mb": config.instance_memory_mb},
            },
            site_config={"app_settings": [{"name": k, "value": v} for k, v in settings.items()],
                         "min_tls_version": "1.2", "ftps_state": "Disabled"},
            **vnet, opts=child)
        # No basic-auth publishing credentials: code goes in through /api/publish with an Entra token (publish.py).
        self.scm_basic_auth = web.WebAppScmAllowed(
            f"{name}-scm-basic-auth", name=self.app.name, resource_group_name=rg.name, allow=False, opts=child)
        self.ftp_basic_auth = web.WebAppFtpAllowed(
            f"{name}-ftp-basic-auth", name=self.app.name, resource_group_name=rg.name, allow=False, opts=child)
        self.app_settings = settings
        self.register_outputs({"url": self.app.default_host_name})


class SmallfirstEnvironment(pulumi.ComponentResource):
    def __init__(self, name: str, config: EnvironmentConfig, opts: pulumi.ResourceOptions | None = None,
                 package_dir: Path = PACKAGE_DIR) -> None:
        super().__init__("smallfirst:infra:Environment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        prefix = config.name_prefix
        names = Names(prefix, child)
        self.rg = resources.ResourceGroup(f"{prefix}-rg", opts=child)
        self.monitoring = Monitoring(f"{prefix}-mon", self.rg, child)
        self.alerts = Alerts(f"{prefix}-alerts", self.rg, self.monitoring.app_insights.id, email=config.alert_email,
                             failure_rate_threshold=config.failure_rate_threshold,
                             accuracy_target=config.accuracy_target, opts=child)
        self.network = PrivateNetwork(f"{prefix}-net", self.rg, child) if config.private_networking else None
        self.data = DataStorage(f"{prefix}-data", self.rg, names.storage_account("data"), config.retention,
                                private=config.private_networking, opts=child)
        self.ai = AiFoundry(f"{prefix}-ai", self.rg, config, names, child)

        model_settings: dict[str, pulumi.Input[str]] = {
            "SMALLFIRST_SMALL_BACKEND": "foundry",
            "SMALLFIRST_SMALL_ENDPOINT": self.ai.foundry_endpoint,
            "SMALLFIRST_SMALL_MODEL": self.ai.small_deployment_name,
            "SMALLFIRST_SMALL_STRUCTURED_OUTPUT": "instructions",
            "SMALLFIRST_SMALL_LOGPROBS": "false",
            "SMALLFIRST_FRONTIER_BACKEND": "azure_openai",
            "SMALLFIRST_FRONTIER_ENDPOINT": self.ai.openai_endpoint,
            "SMALLFIRST_FRONTIER_MODEL": self.ai.frontier_deployment_name,
            "SMALLFIRST_FRONTIER_STRUCTURED_OUTPUT": "json_schema",
            "SMALLFIRST_FRONTIER_LOGPROBS": "true" if config.frontier_logprobs else "false",
            "SMALLFIRST_FRONTIER_REASONING_EFFORT": config.frontier_reasoning_effort,
            # retrained heads are activated in the data account's models container (the package is read-only)
            "SMALLFIRST_TRAINED_HEADS_STORE": "blob",
            "SMALLFIRST_RETRAIN_SCHEDULE": config.retrain_schedule,
            "SMALLFIRST_SHADOW_FRACTION": config.shadow_fraction,
            "SMALLFIRST_RETRAIN_TASKS": config.retrain_tasks,
        }
        self.embeddings = None
        if config.embeddings_deployment:
            self.embeddings = EmbeddingsDeployment(f"{prefix}-embeddings", self.rg, self.ai.account,
                                                   self.ai.openai_endpoint, config, self.ai.frontier_deployment, child)
            model_settings |= self.embeddings.app_settings
        self.ml_dependencies = self.managed_compute = self.serverless = None
        if config.enable_managed_compute or config.small_model_hosting == SmallModelHosting.SERVERLESS_ENDPOINT:
            self.ml_dependencies = MachineLearningDependencies(
                f"{prefix}-ml", self.rg, names, self.monitoring.app_insights.id, private=config.private_networking,
                opts=child)
        if config.small_model_hosting == SmallModelHosting.SERVERLESS_ENDPOINT:
            self.serverless = ServerlessSmallModel(f"{prefix}-serverless", self.rg, config, names,
                                                   self.ml_dependencies, child)
            # A serverless endpoint serves one model: no deployment name to send.
            del model_settings["SMALLFIRST_SMALL_MODEL"]
            # Hub-based serverless endpoints are served only by the legacy azure-ai-inference backend.
            model_settings |= {"SMALLFIRST_SMALL_BACKEND": "foundry_inference",
                               "SMALLFIRST_SMALL_ENDPOINT": self.serverless.inference_url,
                               "SMALLFIRST_SMALL_API_KEY": self.serverless.api_key_setting}
        if config.enable_managed_compute:
            self.managed_compute = ManagedComputeEndpoint(f"{prefix}-compute", self.rg, config, names,
                                                          self.ml_dependencies, child)
            model_settings |= {
                "SMALLFIRST_SMALL2_BACKEND": "foundry",
                "SMALLFIRST_SMALL2_ENDPOINT": self.managed_compute.inference_url,
                # Sent as `azureml-model-deployment`, so a call reaches this deployment whatever the traffic split.
                "SMALLFIRST_SMALL2_DEPLOYMENT": self.managed_compute.deployment_name,
                "SMALLFIRST_SMALL2_TIMEOUT_S": str(config.managed_compute_request_timeout_s),
                "SMALLFIRST_SMALL2_PRICE_IN_PER_M": "0",
                "SMALLFIRST_SMALL2_PRICE_OUT_PER_M": "0",
            }
        self.function = FunctionApp(f"{prefix}-func", self.rg, config, names, self.data, self.monitoring,
                                    model_settings, self.network, child)
        if self.network is not None:
            self.connect_private_endpoints(self.network)

        stack_label = pulumi.Output.concat(prefix, "-", names.suffix)
        subscription_id = authorization.get_client_config_output().subscription_id
        tenant_id = authorization.get_client_config_output().tenant_id
        self.entra = EntraAuth(f"{prefix}-entra", self.rg, self.function.app, stack_label, tenant_id,
                               config.reviewers, config.callers, child)

        # Each grant at the narrowest scope the code's calls allow (infra/README.md, "Least privilege").
        grants: list[tuple[str, pulumi.Input[str], pulumi.Input[str]]] = [
            ("data-blob", self.data.account.id, roles.STORAGE_BLOB_DATA_CONTRIBUTOR),
            ("data-queue", self.data.account.id, roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
            ("host-blob", self.function.host_storage.id, roles.STORAGE_BLOB_DATA_OWNER),
            ("host-queue", self.function.host_storage.id, roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
            ("ai-openai-user", self.ai.account.id, roles.COGNITIVE_SERVICES_OPENAI_USER),
            ("appi-metrics", self.monitoring.app_insights.id, roles.MONITORING_METRICS_PUBLISHER),
        ]
        self.custom_roles: list[CustomRole] = []
        if config.small_model_hosting == SmallModelHosting.AI_SERVICES:
            models_user = self.custom_role(
                f"{prefix}-models-role", roles.FOUNDRY_MODELS_USER_ROLE, stack_label, roles.FOUNDRY_MODELS_INFERENCE,
                "Inference on the Foundry Models (non-OpenAI) deployments of one AI Services account")
            grants.append(("ai-models-user", self.ai.account.id, models_user.role))
        if self.managed_compute is not None:
            scorer = self.custom_role(
                f"{prefix}-score-role", roles.ONLINE_ENDPOINT_SCORER_ROLE, stack_label, roles.ONLINE_ENDPOINT_SCORE,
                "Score one managed online endpoint with an Entra token; no control of endpoints or deployments")
            grants.append(("ml-endpoint", self.managed_compute.endpoint.id, scorer.role))
        if self.serverless is not None:
            # Azure RBAC for Key Vault takes a single secret as scope: the hub's other secrets stay out of reach.
            grants.append(("kv-secret", self.serverless.key_secret.id, roles.KEY_VAULT_SECRETS_USER))
        self.roles = RoleAssignments(f"{prefix}-roles", self.function.identity.principal_id, grants, child)

        host_name = self.function.app.default_host_name
        self.code = AppCode(f"{prefix}-code", self.rg, subscription_id, self.function.app.name, host_name,
                            config.app_source_dir, package_dir, self.roles, child)
        self.blob_events = BlobEvents(f"{prefix}-events", self.rg, self.data, host_name, self.code, self.roles, child)
        self.outputs = {
            # What `smallfirst smoke` reads (`pulumi stack output --json`) to find and call the deployed app.
            "subscription_id": subscription_id,
            "resource_group": self.rg.name,
            "function_app_name": self.function.app.name,
            "function_app_url": host_name.apply(lambda host: f"https://{host}"),
            "data_account": self.data.account.name,
            "data_blob_endpoint": self.data.account.primary_endpoints.blob,
            "code_deployment_id": self.code.publish.deployment_id,
            "small_endpoint": model_settings["SMALLFIRST_SMALL_ENDPOINT"],
            "frontier_endpoint": self.ai.openai_endpoint,
            "frontier_deployment": self.ai.frontier_deployment_name,
            # What `smallfirst review` asks Entra for (with the user's az login) to call the review routes.
            "entra_client_id": self.entra.client_id,
            "review_token_scope": self.entra.token_scope,
        }
        if self.managed_compute is not None:
            self.outputs["small2_endpoint"] = self.managed_compute.inference_url
        self.register_outputs(self.outputs)

    def custom_role(self, name: str, key: str, stack_label: pulumi.Input[str], data_action: str,
                    description: str) -> CustomRole:
        role = CustomRole(name, self.rg, key, stack_label, [data_action], description,
                          pulumi.ResourceOptions(parent=self))
        self.custom_roles.append(role)
        return role

    def connect_private_endpoints(self, private_network: PrivateNetwork) -> None:
        """A private endpoint for each data plane the app uses; their public access is off (see each resource)."""
        for label, account in (("data", self.data.account), ("host", self.function.host_storage)):
            private_network.connect(f"{label}-blob", account.id, network.BLOB)
            private_network.connect(f"{label}-queue", account.id, network.QUEUE)
        private_network.connect("ai", self.ai.account.id, network.AI_SERVICES)
        if self.ml_dependencies is not None:
            private_network.connect("kv", self.ml_dependencies.key_vault.id, network.KEY_VAULT)

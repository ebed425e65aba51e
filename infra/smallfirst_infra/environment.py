"""ComponentResources for one smallfirst environment. Each component owns one concern."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import (
    applicationinsights, authorization, cognitiveservices, eventgrid, machinelearningservices, managedidentity,
    operationalinsights, resources, storage, web,
)

from smallfirst_infra import roles
from smallfirst_infra.config import EnvironmentConfig

DATA_CONTAINERS = ("incoming", "results", "review", "deadletter")
EVENTGRID_DEADLETTER_CONTAINER = "eventgrid-deadletter"
DEPLOYMENT_CONTAINER = "app-package"
CHUNK_QUEUES = ("smallfirst-chunks", "smallfirst-chunks-poison")
BLOB_FUNCTION = "process_incoming_blob"


def secure_storage_account(name: str, rg: resources.ResourceGroup, opts: pulumi.ResourceOptions) -> storage.StorageAccount:
    """StorageV2, Entra ID only (no shared keys), TLS 1.2, HTTPS only, nothing public."""
    return storage.StorageAccount(
        name,
        resource_group_name=rg.name,
        kind="StorageV2",
        sku={"name": "Standard_LRS"},
        allow_shared_key_access=False,
        allow_blob_public_access=False,
        minimum_tls_version="TLS1_2",
        enable_https_traffic_only=True,
        default_to_o_auth_authentication=True,
        opts=opts,
    )


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


class DataStorage(pulumi.ComponentResource):
    """The data account: incoming/results/review/deadletter containers, soft delete, and the chunk queues."""

    def __init__(self, name: str, rg: resources.ResourceGroup, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:DataStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = secure_storage_account(f"{name}", rg, child)
        self.blob_properties = storage.BlobServiceProperties(
            f"{name}-blob-props", resource_group_name=rg.name, account_name=self.account.name, blob_services_name="default",
            delete_retention_policy={"enabled": True, "days": 7},
            container_delete_retention_policy={"enabled": True, "days": 7}, opts=child)
        self.containers = {
            container: storage.BlobContainer(
                f"{name}-{container}", resource_group_name=rg.name, account_name=self.account.name,
                container_name=container, public_access="None", opts=child)
            for container in (*DATA_CONTAINERS, EVENTGRID_DEADLETTER_CONTAINER)
        }
        self.queues = {
            queue: storage.Queue(f"{name}-{queue}", resource_group_name=rg.name, account_name=self.account.name,
                                 queue_name=queue, opts=child)
            for queue in CHUNK_QUEUES
        }
        self.register_outputs({"blob_endpoint": self.account.primary_endpoints.blob})


class AiFoundry(pulumi.ComponentResource):
    """AI Services account and project, the Phi-4 pay-per-token and frontier deployments, optional managed compute."""

    def __init__(self, name: str, rg: resources.ResourceGroup, config: EnvironmentConfig,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:AiFoundry", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.subdomain = f"{config.name_prefix}-{pulumi.get_stack()}-ai".lower()
        self.account = cognitiveservices.Account(
            f"{name}-ai", resource_group_name=rg.name, kind="AIServices", sku={"name": "S0"},
            identity={"type": "SystemAssigned"},
            properties={"custom_sub_domain_name": self.subdomain, "disable_local_auth": True,
                        "public_network_access": "Enabled", "allow_project_management": True},
            opts=child)
        self.project = cognitiveservices.Project(
            f"{name}-project", resource_group_name=rg.name, account_name=self.account.name,
            identity={"type": "SystemAssigned"}, properties={"description": "smallfirst"}, opts=child)
        self.small_deployment_name = config.small_model_name.lower()
        self.frontier_deployment_name = config.frontier_model_name
        self.small_deployment = cognitiveservices.Deployment(
            f"{name}-small", resource_group_name=rg.name, account_name=self.account.name,
            deployment_name=self.small_deployment_name,
            properties={"model": {"format": "Microsoft", "name": config.small_model_name,
                                  "version": config.small_model_version}},
            sku={"name": config.small_model_sku, "capacity": config.small_model_capacity},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.project]))
        # Deployments on one account must be created one after another, or Azure answers RequestConflict.
        self.frontier_deployment = cognitiveservices.Deployment(
            f"{name}-frontier", resource_group_name=rg.name, account_name=self.account.name,
            deployment_name=self.frontier_deployment_name,
            properties={"model": {"format": "OpenAI", "name": config.frontier_model_name,
                                  "version": config.frontier_model_version}},
            sku={"name": config.frontier_sku, "capacity": config.frontier_capacity},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.small_deployment]))
        self.models_endpoint = f"https://{self.subdomain}.services.ai.azure.com/models"
        self.openai_endpoint = f"https://{self.subdomain}.openai.azure.com/"
        self.online_endpoint = None
        if config.enable_managed_compute:
            self._managed_compute(name, rg, config, child)
        self.register_outputs({"models_endpoint": self.models_endpoint})

    def _managed_compute(self, name: str, rg: resources.ResourceGroup, config: EnvironmentConfig,
                         child: pulumi.ResourceOptions) -> None:
        self.ml_workspace = machinelearningservices.Workspace(
            f"{name}-ml", resource_group_name=rg.name, kind="Default", identity={"type": "SystemAssigned"},
            sku={"name": "Basic", "tier": "Basic"}, opts=child)
        self.online_endpoint = machinelearningservices.OnlineEndpoint(
            f"{name}-endpoint", resource_group_name=rg.name, workspace_name=self.ml_workspace.name,
            identity={"type": "SystemAssigned"}, properties={"auth_mode": "AADToken"}, opts=child)
        self.online_deployment = machinelearningservices.OnlineDeployment(
            f"{name}-endpoint-deployment", resource_group_name=rg.name, workspace_name=self.ml_workspace.name,
            endpoint_name=self.online_endpoint.name, deployment_name="small",
            # The typed args, not a dict: `properties` is a union type, so a dict's keys are not translated.
            properties=machinelearningservices.ManagedOnlineDeploymentArgs(
                endpoint_compute_type="Managed", model=config.managed_compute_model_id,
                instance_type=config.managed_compute_instance_type),
            sku={"name": "Default", "capacity": config.managed_compute_instance_count}, opts=child)


class FunctionApp(pulumi.ComponentResource):
    """Flex Consumption (FC1) Python app with a user-assigned identity and keyless settings."""

    def __init__(self, name: str, rg: resources.ResourceGroup, config: EnvironmentConfig, data: DataStorage,
                 monitoring: Monitoring, ai: AiFoundry, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:FunctionApp", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.identity = managedidentity.UserAssignedIdentity(f"{name}-id", resource_group_name=rg.name, opts=child)
        self.host_storage = secure_storage_account(f"{name}host", rg, child)
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
            "SMALLFIRST_SMALL_BACKEND": "foundry",
            "SMALLFIRST_SMALL_ENDPOINT": ai.models_endpoint,
            "SMALLFIRST_SMALL_MODEL": ai.small_deployment_name,
            "SMALLFIRST_SMALL_STRUCTURED_OUTPUT": "instructions",
            "SMALLFIRST_SMALL_LOGPROBS": "false",
            "SMALLFIRST_FRONTIER_BACKEND": "azure_openai",
            "SMALLFIRST_FRONTIER_ENDPOINT": ai.openai_endpoint,
            "SMALLFIRST_FRONTIER_MODEL": ai.frontier_deployment_name,
            "SMALLFIRST_FRONTIER_STRUCTURED_OUTPUT": "json_schema",
            "SMALLFIRST_FRONTIER_LOGPROBS": "true",
        }
        if ai.online_endpoint is not None:
            settings |= {
                "SMALLFIRST_SMALL2_BACKEND": "foundry",
                "SMALLFIRST_SMALL2_ENDPOINT": ai.online_endpoint.properties.scoring_uri,
                "SMALLFIRST_SMALL2_PRICE_IN_PER_M": "0",
                "SMALLFIRST_SMALL2_PRICE_OUT_PER_M": "0",
            }
        self.app = web.WebApp(
            f"{name}-app", resource_group_name=rg.name, kind="functionapp,linux", server_farm_id=self.plan.id,
            https_only=True,
            identity={"type": "UserAssigned", "user_assigned_identities": [self.identity.id]},
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
            opts=child)
        self.app_settings = settings
        self.register_outputs({"url": self.app.default_host_name})


class RoleAssignments(pulumi.ComponentResource):
    """Keyless access for the app's identity: what it reads, writes and calls."""

    def __init__(self, name: str, principal_id: pulumi.Input[str],
                 grants: list[tuple[str, pulumi.Input[str], str]], opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:RoleAssignments", name, None, opts)
        subscription_id = authorization.get_client_config_output().subscription_id
        self.assignments = [
            authorization.RoleAssignment(
                f"{name}-{label}", principal_id=principal_id, principal_type="ServicePrincipal", scope=scope,
                role_definition_id=subscription_id.apply(lambda sub, role=role: roles.role_definition_id(sub, role)),
                opts=pulumi.ResourceOptions(parent=self))
            for label, scope, role in grants
        ]
        self.register_outputs({})


class SmallfirstEnvironment(pulumi.ComponentResource):
    def __init__(self, name: str, config: EnvironmentConfig, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:Environment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.rg = resources.ResourceGroup(f"{config.name_prefix}-rg", opts=child)
        self.monitoring = Monitoring(f"{config.name_prefix}-mon", self.rg, child)
        self.data = DataStorage(f"{config.name_prefix}data", self.rg, child)
        self.ai = AiFoundry(f"{config.name_prefix}", self.rg, config, child)
        self.function = FunctionApp(f"{config.name_prefix}-func", self.rg, config, self.data, self.monitoring, self.ai, child)
        grants = [
            ("data-blob", self.data.account.id, roles.STORAGE_BLOB_DATA_OWNER),
            ("data-queue", self.data.account.id, roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
            ("host-blob", self.function.host_storage.id, roles.STORAGE_BLOB_DATA_OWNER),
            ("host-queue", self.function.host_storage.id, roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
            ("ai-user", self.ai.account.id, roles.COGNITIVE_SERVICES_USER),
            ("ai-openai-user", self.ai.account.id, roles.COGNITIVE_SERVICES_OPENAI_USER),
            ("appi-metrics", self.monitoring.app_insights.id, roles.MONITORING_METRICS_PUBLISHER),
        ]
        if self.ai.online_endpoint is not None:
            grants.append(("ml-endpoint", self.ai.online_endpoint.id, roles.AZUREML_DATA_SCIENTIST))
        self.roles = RoleAssignments(f"{config.name_prefix}-roles", self.function.identity.principal_id, grants, child)
        self.event_subscription = self._event_subscription(config) if config.enable_event_subscription else None
        self.outputs = {
            "function_app_url": self.function.app.default_host_name.apply(lambda host: f"https://{host}"),
            "data_blob_endpoint": self.data.account.primary_endpoints.blob,
            "small_endpoint": self.ai.models_endpoint,
            "small_deployment": self.ai.small_deployment_name,
            "frontier_endpoint": self.ai.openai_endpoint,
            "frontier_deployment": self.ai.frontier_deployment_name,
        }
        if self.ai.online_endpoint is not None:
            self.outputs["small2_endpoint"] = self.ai.online_endpoint.properties.scoring_uri
        self.register_outputs(self.outputs)

    def _event_subscription(self, config: EnvironmentConfig) -> eventgrid.SystemTopicEventSubscription:
        """BlobCreated under incoming/ -> the blob extension's webhook (its key exists once the code runs)."""
        child = pulumi.ResourceOptions(parent=self)
        topic = eventgrid.SystemTopic(
            f"{config.name_prefix}-blob-events", resource_group_name=self.rg.name, source=self.data.account.id,
            topic_type="Microsoft.Storage.StorageAccounts", opts=child)
        keys = web.list_web_app_host_keys_output(name=self.function.app.name, resource_group_name=self.rg.name)
        blobs_key = keys.system_keys.apply(lambda k: (k or {}).get("blobs_extension", ""))
        endpoint = pulumi.Output.secret(pulumi.Output.format(
            "https://{0}/runtime/webhooks/blobs?functionName=Host.Functions.{1}&code={2}",
            self.function.app.default_host_name, BLOB_FUNCTION, blobs_key))
        return eventgrid.SystemTopicEventSubscription(
            f"{config.name_prefix}-incoming", resource_group_name=self.rg.name, system_topic_name=topic.name,
            destination={"endpoint_type": "WebHook", "endpoint_url": endpoint},
            filter={"included_event_types": ["Microsoft.Storage.BlobCreated"],
                    "subject_begins_with": "/blobServices/default/containers/incoming/"},
            event_delivery_schema="EventGridSchema",
            retry_policy={"max_delivery_attempts": 30, "event_time_to_live_in_minutes": 1440},
            dead_letter_destination={"endpoint_type": "StorageBlob", "resource_id": self.data.account.id,
                                     "blob_container_name": EVENTGRID_DEADLETTER_CONTAINER},
            opts=child)

"""The Pulumi program under mocks: no cloud, no Pulumi CLI."""

from __future__ import annotations

import pytest

from smallfirst_infra import roles
from smallfirst_infra.config import EnvironmentConfig
from tests.infra.mocks import SUBSCRIPTION, build


@pytest.fixture(scope="module")
def default_env():
    return build(EnvironmentConfig())


@pytest.fixture(scope="module")
def full_env():
    return build(EnvironmentConfig(enable_managed_compute=True, enable_event_subscription=True))


def settings_of(mocks) -> dict[str, str]:
    app = mocks.one("web:WebApp")
    return {s["name"]: s["value"] for s in app.inputs["siteConfig"]["appSettings"]}


def test_storage_accounts_are_locked_down(default_env):
    accounts = default_env.of_type("storage:StorageAccount")
    assert len(accounts) == 2  # data + function host
    for account in accounts:
        assert account.inputs["allowSharedKeyAccess"] is False
        assert account.inputs["minimumTlsVersion"] == "TLS1_2"
        assert account.inputs["allowBlobPublicAccess"] is False
        assert account.inputs["enableHttpsTrafficOnly"] is True
    props = default_env.one("storage:BlobServiceProperties").inputs
    assert props["deleteRetentionPolicy"]["enabled"] is True


def test_containers_and_queues_exist(default_env):
    containers = {c.inputs["containerName"] for c in default_env.of_type("storage:BlobContainer")}
    assert {"incoming", "results", "review", "deadletter", "eventgrid-deadletter", "app-package"} == containers
    assert all(c.inputs["publicAccess"] == "None" for c in default_env.of_type("storage:BlobContainer"))
    assert {q.inputs["queueName"] for q in default_env.of_type("storage:Queue")} == {
        "smallfirst-chunks", "smallfirst-chunks-poison"}


def test_function_app_is_flex_consumption_python_with_identity_and_no_secrets(default_env):
    plan = default_env.one("web:AppServicePlan").inputs
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"} and plan["reserved"] is True
    app = default_env.one("web:WebApp").inputs
    assert app["kind"] == "functionapp,linux" and app["httpsOnly"] is True
    assert app["functionAppConfig"]["runtime"] == {"name": "python", "version": "3.11"}
    deployment = app["functionAppConfig"]["deployment"]["storage"]
    assert deployment["type"] == "blobContainer" and deployment["value"].endswith("/app-package")
    assert deployment["authentication"]["type"] == "UserAssignedIdentity"
    identity = default_env.one("managedidentity:UserAssignedIdentity")
    assert app["identity"]["type"] == "UserAssigned" and identity.id in app["identity"]["userAssignedIdentities"]
    settings = settings_of(default_env)
    assert "FUNCTIONS_WORKER_RUNTIME" not in settings and "FUNCTIONS_EXTENSION_VERSION" not in settings
    for key, value in settings.items():
        lowered = (key + value).lower()
        assert "accountkey=" not in lowered and "api_key" not in lowered and "sharedaccesssignature" not in lowered


def test_app_settings_point_at_created_resources(default_env):
    settings = settings_of(default_env)
    data = [a for a in default_env.of_type("storage:StorageAccount") if a.name.endswith("data")][0]
    host = [a for a in default_env.of_type("storage:StorageAccount") if a.name.endswith("host")][0]
    identity = default_env.one("managedidentity:UserAssignedIdentity")
    assert settings["DataStorage__blobServiceUri"] == f"https://{data.name}.blob.core.windows.net/"
    assert settings["DataStorage__queueServiceUri"] == f"https://{data.name}.queue.core.windows.net/"
    assert settings["AzureWebJobsStorage__accountName"] == host.name
    assert settings["AzureWebJobsStorage__clientId"] == settings["AZURE_CLIENT_ID"] == f"client-{identity.name}"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == f"ClientId=client-{identity.name};Authorization=AAD"
    account = default_env.one("cognitiveservices:Account").inputs
    subdomain = account["properties"]["customSubDomainName"]
    assert settings["SMALLFIRST_SMALL_ENDPOINT"] == f"https://{subdomain}.services.ai.azure.com/models"
    assert settings["SMALLFIRST_FRONTIER_ENDPOINT"] == f"https://{subdomain}.openai.azure.com/"
    assert settings["SMALLFIRST_SMALL_MODEL"] == "phi-4" and settings["SMALLFIRST_FRONTIER_MODEL"] == "gpt-4o"
    assert settings["SMALLFIRST_SMALL_LOGPROBS"] == "false" and settings["SMALLFIRST_FRONTIER_BACKEND"] == "azure_openai"


def test_ai_services_account_and_deployments(default_env):
    account = default_env.one("cognitiveservices:Account").inputs
    assert account["kind"] == "AIServices"
    assert account["properties"]["disableLocalAuth"] is True and account["properties"]["allowProjectManagement"] is True
    assert default_env.one("cognitiveservices:Project")
    deployments = {d.inputs["deploymentName"]: d.inputs for d in default_env.of_type("cognitiveservices:Deployment")}
    assert deployments["phi-4"]["properties"]["model"] == {"format": "Microsoft", "name": "Phi-4", "version": "7"}
    assert deployments["phi-4"]["sku"]["name"] == "GlobalStandard"
    assert deployments["gpt-4o"]["properties"]["model"]["format"] == "OpenAI"
    assert deployments["gpt-4o"]["sku"]["capacity"] == 50


def test_role_assignments_target_the_app_identity(default_env):
    identity = default_env.one("managedidentity:UserAssignedIdentity")
    by_id = {r.id: r for r in default_env.resources}
    grants = {(by_id[a.inputs["scope"]].typ.split(":")[-1], a.inputs["roleDefinitionId"].rsplit("/", 1)[-1])
              for a in default_env.of_type("authorization:RoleAssignment")}
    for assignment in default_env.of_type("authorization:RoleAssignment"):
        assert assignment.inputs["principalId"] == f"principal-{identity.name}"
        assert assignment.inputs["principalType"] == "ServicePrincipal"
        assert assignment.inputs["roleDefinitionId"].startswith(f"/subscriptions/{SUBSCRIPTION}/providers/")
    assert grants == {
        ("StorageAccount", roles.STORAGE_BLOB_DATA_OWNER), ("StorageAccount", roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("Account", roles.COGNITIVE_SERVICES_USER), ("Account", roles.COGNITIVE_SERVICES_OPENAI_USER),
        ("Component", roles.MONITORING_METRICS_PUBLISHER),
    }
    assert len(default_env.of_type("authorization:RoleAssignment")) == 7  # blob + queue on both accounts


def test_optional_parts_are_off_by_default(default_env):
    assert default_env.of_type("machinelearningservices:OnlineEndpoint") == []
    assert default_env.of_type("eventgrid:SystemTopicEventSubscription") == []
    assert "SMALLFIRST_SMALL2_ENDPOINT" not in settings_of(default_env)


def test_managed_compute_becomes_a_second_small_tier(full_env):
    endpoint = full_env.one("machinelearningservices:OnlineEndpoint")
    assert endpoint.inputs["properties"]["authMode"] == "AADToken"
    deployment = full_env.one("machinelearningservices:OnlineDeployment").inputs
    assert deployment["properties"]["instanceType"] == "Standard_NC24ads_A100_v4"
    settings = settings_of(full_env)
    assert settings["SMALLFIRST_SMALL2_ENDPOINT"] == f"https://{endpoint.name}.swedencentral.inference.ml.azure.com/score"
    assert any(a.inputs["roleDefinitionId"].endswith(roles.AZUREML_DATA_SCIENTIST) and a.inputs["scope"] == endpoint.id
               for a in full_env.of_type("authorization:RoleAssignment"))


def test_event_grid_subscription_filters_incoming(full_env):
    topic = full_env.one("eventgrid:SystemTopic").inputs
    data = [a for a in full_env.of_type("storage:StorageAccount") if a.name.endswith("data")][0]
    assert topic["source"] == data.id and topic["topicType"] == "Microsoft.Storage.StorageAccounts"
    sub = full_env.one("eventgrid:SystemTopicEventSubscription").inputs
    assert sub["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert sub["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/incoming/"
    destination = sub["destination"]
    assert "value" in destination, "the webhook URL carries the blobs key: it must be a secret"
    url = destination["value"]["endpointUrl"]
    assert "/runtime/webhooks/blobs?functionName=Host.Functions.process_incoming_blob&code=blobs-key" in url
    assert sub["deadLetterDestination"]["blobContainerName"] == "eventgrid-deadletter"
    assert sub["retryPolicy"]["maxDeliveryAttempts"] == 30


def test_config_validation():
    with pytest.raises(ValueError, match="namePrefix"):
        EnvironmentConfig(name_prefix="Bad_Name")
    with pytest.raises(ValueError, match="instanceMemoryMb"):
        EnvironmentConfig(instance_memory_mb=1000)

"""The Pulumi program under mocks that imitate azure-native: no cloud, no Pulumi CLI."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pulumi
import pytest
from pulumi_azure_native import storage

from smallfirst_infra import roles
from smallfirst_infra.blob_trigger import blob_webhook_url
from smallfirst_infra.config import EnvironmentConfig, SmallModelHosting
from smallfirst_infra.machine_learning import ENDPOINT_TRAFFIC_TEMPLATE, endpoint_root
from tests.infra.mocks import REGION, SERVERLESS_KEY, SUBSCRIPTION, AzureMocks, build, is_secret

PHI4_VERSION = "azureml://registries/azureml/models/Phi-4/versions/3"
MANAGED_COMPUTE = EnvironmentConfig(enable_managed_compute=True, managed_compute_model_id=PHI4_VERSION)
# The longest prefix allowed, with every optional part on: the tightest case for name lengths.
EVERYTHING_LONGEST_PREFIX = EnvironmentConfig(name_prefix="abcdefghijk", enable_managed_compute=True,
                                              managed_compute_model_id=PHI4_VERSION,
                                              small_model_hosting=SmallModelHosting.SERVERLESS_ENDPOINT)


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("package")


@pytest.fixture(scope="module")
def default_env(package_dir):
    return build(EnvironmentConfig(), package_dir)


@pytest.fixture(scope="module")
def compute_env(package_dir):
    return build(MANAGED_COMPUTE, package_dir)


@pytest.fixture(scope="module")
def serverless_env(package_dir):
    return build(EnvironmentConfig(small_model_hosting=SmallModelHosting.SERVERLESS_ENDPOINT), package_dir)


def settings_of(mocks) -> dict[str, str]:
    app = mocks.one("web:WebApp")
    return {s["name"]: s["value"] for s in app.inputs["siteConfig"]["appSettings"]}


def account(mocks, logical_suffix: str):
    return next(a for a in mocks.of_type("storage:StorageAccount") if a.name.endswith(logical_suffix))


# --- names ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("config", [EnvironmentConfig(), MANAGED_COMPUTE, EVERYTHING_LONGEST_PREFIX],
                         ids=["default", "managed-compute", "everything-longest-prefix"])
def test_every_resource_name_is_valid_for_its_azure_type(config, tmp_path):
    mocks = build(config, tmp_path)
    assert mocks.name_problems == []


def test_mocks_reject_the_autonamed_host_storage_account_of_issue_10():
    """The old program's `smallfirst-funchost`, autonamed: 27 characters with a hyphen."""
    mocks = AzureMocks()
    pulumi.runtime.set_mocks(mocks, project="smallfirst", stack="dev", preview=False)

    @pulumi.runtime.test
    def program():
        return storage.StorageAccount("smallfirst-funchost", resource_group_name="rg", kind="StorageV2",
                                      sku={"name": "Standard_LRS"}).name

    program()
    assert len(mocks.name_problems) == 1 and "3-24 lowercase letters and digits" in mocks.name_problems[0]


def test_global_names_end_in_one_random_suffix_kept_in_the_state(default_env):
    suffix = next(r for r in default_env.resources if r.typ == "random:index/randomString:RandomString")
    assert suffix.inputs["length"] == 6 and suffix.inputs["upper"] is False and suffix.inputs["special"] is False
    app = default_env.one("web:WebApp")
    ai = default_env.one("cognitiveservices:Account")
    storage_names = [a.azure_name for a in default_env.of_type("storage:StorageAccount")]
    endings = {app.azure_name[-6:], ai.inputs["properties"]["customSubDomainName"][-6:],
               *(name[-6:] for name in storage_names)}
    assert len(endings) == 1
    assert app.azure_name.startswith("smallfirst-func-")
    assert ai.inputs["properties"]["customSubDomainName"].startswith("smallfirst-ai-")
    assert sorted(name[:-6] for name in storage_names) == ["smallfirstdata", "smallfirsthost"]


# --- storage, app, AI ------------------------------------------------------------------------------------------

def test_storage_accounts_are_locked_down(default_env):
    accounts = default_env.of_type("storage:StorageAccount")
    assert len(accounts) == 2  # data + function host
    for acct in accounts:
        assert acct.inputs["allowSharedKeyAccess"] is False
        assert acct.inputs["minimumTlsVersion"] == "TLS1_2"
        assert acct.inputs["allowBlobPublicAccess"] is False
        assert acct.inputs["enableHttpsTrafficOnly"] is True
    props = default_env.one("storage:BlobServiceProperties").inputs
    assert props["deleteRetentionPolicy"]["enabled"] is True


def test_containers_and_queues_exist(default_env):
    containers = {c.inputs["containerName"] for c in default_env.of_type("storage:BlobContainer")}
    assert {"incoming", "results", "review", "deadletter", "claims", "shadow", "corrections", "models",
            "eventgrid-deadletter", "app-package"} == containers
    assert all(c.inputs["publicAccess"] == "None" for c in default_env.of_type("storage:BlobContainer"))
    assert {q.inputs["queueName"] for q in default_env.of_type("storage:Queue")} == {
        "smallfirst-work", "smallfirst-work-poison", "smallfirst-shadow", "smallfirst-shadow-poison"}


def test_every_container_holding_item_text_expires_after_its_configured_days_and_models_stay(default_env):
    from shared.pipeline.blob_names import Containers, InputBlob, shadow_claim

    (policy,) = default_env.of_type("storage:ManagementPolicy")
    rules = {rule["definition"]["filters"]["prefixMatch"][0]: rule["definition"]
             for rule in policy.inputs["policy"]["rules"]}
    days = {prefix.rstrip("/"): rule["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"]
            for prefix, rule in rules.items()}
    containers = Containers()
    assert days == {"incoming": 30, "results": 90, "review": 90, "deadletter": 30, "eventgrid-deadletter": 30,
                    "corrections": 365, "shadow": 90, "claims": 14}
    assert containers.models not in days  # trained heads hold no item text
    # shadow records are append blobs: a block-blob-only rule would never delete them
    assert all(rule["filters"]["blobTypes"] == ["blockBlob", "appendBlob"] for rule in rules.values())
    # every name the app writes under claims/ falls under the claims rule, and only there
    own_claim = InputBlob.from_path("support_ticket/a.jsonl").claim("0" * 64, part=3)
    for name in (shadow_claim("support_ticket", "incoming/a.jsonl", "id-1"), own_claim, f"{own_claim}/items/x.json"):
        assert [prefix for prefix in rules if f"{containers.claims}/{name}".startswith(prefix)] == ["claims/"]
    assert days["claims"] > 7  # a queue message lives 7 days


def test_retention_days_come_from_stack_config(tmp_path):
    values = {"retentionIncomingDays": "7", "retentionCorrectionsDays": "730", "retentionClaimsDays": "10"}
    mocks = build(EnvironmentConfig.from_lookup(values.get), tmp_path)
    (policy,) = mocks.of_type("storage:ManagementPolicy")
    days = {rule["definition"]["filters"]["prefixMatch"][0]:
            rule["definition"]["actions"]["baseBlob"]["delete"]["daysAfterModificationGreaterThan"]
            for rule in policy.inputs["policy"]["rules"]}
    assert (days["incoming/"], days["corrections/"], days["claims/"], days["results/"]) == (7, 730, 10, 90)


def test_function_app_is_flex_consumption_python_with_identity_and_no_flex_invalid_settings(default_env):
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
    assert app["keyVaultReferenceIdentity"] == identity.id
    settings = settings_of(default_env)
    assert not {"FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_EXTENSION_VERSION", "WEBSITE_RUN_FROM_PACKAGE"} & set(settings)


def test_app_settings_point_at_created_resources(default_env):
    settings = settings_of(default_env)
    data, host = account(default_env, "data-account"), account(default_env, "func-host")
    identity = default_env.one("managedidentity:UserAssignedIdentity")
    assert settings["DataStorage__blobServiceUri"] == f"https://{data.azure_name}.blob.core.windows.net/"
    assert settings["DataStorage__queueServiceUri"] == f"https://{data.azure_name}.queue.core.windows.net/"
    assert settings["AzureWebJobsStorage__accountName"] == host.azure_name
    assert settings["AzureWebJobsStorage__clientId"] == settings["AZURE_CLIENT_ID"] == f"client-{identity.azure_name}"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        f"ClientId=client-{identity.azure_name};Authorization=AAD")
    subdomain = default_env.one("cognitiveservices:Account").inputs["properties"]["customSubDomainName"]
    assert settings["SMALLFIRST_SMALL_BACKEND"] == "foundry"
    assert settings["SMALLFIRST_SMALL_ENDPOINT"] == f"https://{subdomain}.services.ai.azure.com/"
    assert settings["SMALLFIRST_FRONTIER_ENDPOINT"] == f"https://{subdomain}.openai.azure.com/"
    assert settings["SMALLFIRST_SMALL_MODEL"] == "phi-4" and settings["SMALLFIRST_FRONTIER_MODEL"] == "gpt-5.4-mini"
    assert settings["SMALLFIRST_SMALL_LOGPROBS"] == "false" and settings["SMALLFIRST_FRONTIER_BACKEND"] == "azure_openai"
    # GPT-5 at reasoning effort none takes logprobs: the frontier's confidence costs one request an item
    assert (settings["SMALLFIRST_FRONTIER_REASONING_EFFORT"], settings["SMALLFIRST_FRONTIER_LOGPROBS"]) == ("none", "true")
    assert settings["SMALLFIRST_SHADOW_FRACTION"] == "0.02"  # live accuracy from 2% of accepted items


@pytest.mark.parametrize("env_name", ["default_env", "compute_env", "serverless_env"])
def test_no_app_setting_names_an_api_version_and_worker_telemetry_is_on(env_name, request):
    settings = settings_of(request.getfixturevalue(env_name))
    assert [name for name in settings if name.endswith("_API_VERSION")] == []
    assert settings["PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"] == "true"


def test_ai_services_account_and_deployments(default_env):
    ai = default_env.one("cognitiveservices:Account")
    assert ai.inputs["kind"] == "AIServices" and ai.azure_name == ai.inputs["properties"]["customSubDomainName"]
    assert ai.inputs["properties"]["disableLocalAuth"] is True
    assert default_env.one("cognitiveservices:Project")
    deployments = {d.inputs["deploymentName"]: d for d in default_env.of_type("cognitiveservices:Deployment")}
    # No version: Azure deploys each model's current default version, so no version number can go stale.
    assert deployments["phi-4"].inputs["properties"]["model"] == {"format": "Microsoft", "name": "Phi-4"}
    assert deployments["phi-4"].inputs["sku"] == {"name": "GlobalStandard", "capacity": 1}
    assert deployments["gpt-5.4-mini"].inputs["properties"]["model"] == {"format": "OpenAI", "name": "gpt-5.4-mini"}
    # One deployment at a time on an account.
    assert deployments["phi-4"].name in default_env.dependencies[deployments["gpt-5.4-mini"].name]


def test_model_name_version_format_and_sku_come_from_stack_config(tmp_path):
    values = {"smallModelName": "Phi-4-mini-instruct", "smallModelVersion": "1", "smallModelSku": "DataZoneStandard",
              "frontierModelName": "gpt-5.5", "frontierModelVersion": "2026-04-24", "frontierModelFormat": "OpenAI",
              "frontierModelCapacity": "20", "frontierLogprobs": "true"}
    config = EnvironmentConfig.from_lookup(values.get)
    mocks = build(config, tmp_path)
    deployments = {d.inputs["deploymentName"]: d.inputs for d in mocks.of_type("cognitiveservices:Deployment")}
    assert deployments["phi-4-mini-instruct"]["properties"]["model"] == {
        "format": "Microsoft", "name": "Phi-4-mini-instruct", "version": "1"}
    assert deployments["phi-4-mini-instruct"]["sku"] == {"name": "DataZoneStandard", "capacity": 1}
    assert deployments["gpt-5.5"]["properties"]["model"] == {"format": "OpenAI", "name": "gpt-5.5",
                                                             "version": "2026-04-24"}
    assert deployments["gpt-5.5"]["sku"] == {"name": "GlobalStandard", "capacity": 20}
    assert settings_of(mocks)["SMALLFIRST_FRONTIER_LOGPROBS"] == "true"


def test_stack_outputs_name_what_the_smoke_command_reads(package_dir):
    mocks = AzureMocks()
    pulumi.runtime.set_mocks(mocks, project="smallfirst", stack="dev", preview=False)
    from smallfirst_infra.environment import SmallfirstEnvironment

    @pulumi.runtime.test
    def program():
        env = SmallfirstEnvironment("smallfirst", EnvironmentConfig(), package_dir=package_dir)
        return pulumi.Output.all(**env.outputs).apply(check)

    def check(outputs):
        app = mocks.one("web:WebApp")
        assert outputs["subscription_id"] == SUBSCRIPTION
        assert outputs["resource_group"] == mocks.one("resources:ResourceGroup").azure_name
        assert outputs["function_app_name"] == app.azure_name
        assert outputs["function_app_url"] == f"https://{app.azure_name}.azurewebsites.net"
        assert outputs["data_blob_endpoint"] == f"https://{account(mocks, 'data-account').azure_name}.blob.core.windows.net/"

    program()


def test_role_assignments_give_the_app_identity_its_grants(default_env):
    identity = default_env.one("managedidentity:UserAssignedIdentity")
    app_grants = [a for a in default_env.of_type("authorization:RoleAssignment")
                  if a.inputs["principalId"] == f"principal-{identity.azure_name}"]
    for assignment in default_env.of_type("authorization:RoleAssignment"):
        assert assignment.inputs["principalType"] == "ServicePrincipal"
        assert assignment.inputs["roleDefinitionId"].startswith(f"/subscriptions/{SUBSCRIPTION}/providers/")
    grants = {(default_env.by_id(a.inputs["scope"]).name, a.inputs["roleDefinitionId"].rsplit("/", 1)[-1])
              for a in app_grants}
    (models_role,) = default_env.of_type("authorization:RoleDefinition")
    assert grants == {
        ("smallfirst-data-account", roles.STORAGE_BLOB_DATA_CONTRIBUTOR),  # Owner only where the host needs it
        ("smallfirst-data-account", roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("smallfirst-func-host", roles.STORAGE_BLOB_DATA_OWNER),
        ("smallfirst-func-host", roles.STORAGE_QUEUE_DATA_CONTRIBUTOR),
        ("smallfirst-ai-account", roles.COGNITIVE_SERVICES_OPENAI_USER),  # the frontier (OpenAI format)
        ("smallfirst-ai-account", models_role.azure_name),  # Phi-4 (Foundry Models): MaaS data actions only
        ("smallfirst-mon-appi", roles.MONITORING_METRICS_PUBLISHER),
    }
    assert len(app_grants) == 7
    assert models_role.inputs["permissions"] == [{"actions": [], "dataActions": [roles.FOUNDRY_MODELS_INFERENCE]}]


# --- the blob trigger from one `pulumi up` ---------------------------------------------------------------------

def dynamic(mocks, logical: str):
    return next(r for r in mocks.of_type("pulumi-python:dynamic:Resource") if r.name == logical)


@pytest.mark.parametrize("env_name", ["default_env", "compute_env"])
def test_one_up_creates_publish_key_and_subscription_with_a_non_empty_key(env_name, request):
    mocks = request.getfixturevalue(env_name)
    key = mocks.one("random:index/randomPassword:RandomPassword")
    subscription = mocks.one("eventgrid:SystemTopicEventSubscription")
    assert {r.name for r in mocks.of_type("pulumi-python:dynamic:Resource")} == {
        "smallfirst-code-publish", "smallfirst-code-blobs-key-write"}
    assert is_secret(subscription.raw_inputs["destination"]), "the webhook URL carries the key: keep it secret"
    url = urlsplit(subscription.inputs["destination"]["endpointUrl"])
    app = mocks.one("web:WebApp")
    assert (url.scheme, url.netloc, url.path) == ("https", f"{app.azure_name}.azurewebsites.net",
                                                  "/runtime/webhooks/blobs")
    query = parse_qs(url.query)
    assert query["functionName"] == ["Host.Functions.process_incoming_blob"]
    assert query["code"] == [key.outputs["result"]] and len(key.outputs["result"]) == 48


def test_blobs_extension_key_write_names_the_apps_host_and_keeps_the_key_secret(default_env):
    write = dynamic(default_env, "smallfirst-code-blobs-key-write")
    assert write.inputs["site_name"] == default_env.one("web:WebApp").azure_name
    assert write.inputs["resource_group"] == default_env.one("resources:ResourceGroup").azure_name
    assert write.inputs["subscription_id"] == SUBSCRIPTION
    assert write.inputs["key_name"] == "blobs_extension"
    assert write.inputs["key_value"] == default_env.one("random:index/randomPassword:RandomPassword").outputs["result"]
    assert is_secret(write.raw_inputs["key_value"])
    assert default_env.of_type("resources:Deployment") == []  # no more ARM template racing the first publish


def test_one_up_orders_publish_then_key_then_subscription(default_env):
    deps = default_env.dependencies
    subscription = default_env.one("eventgrid:SystemTopicEventSubscription").name
    # publish -> key -> subscription, as edges the engine must respect
    assert "smallfirst-code-publish" in deps["smallfirst-code-blobs-key-write"]
    assert "smallfirst-code-blobs-key-write" in deps[subscription]
    assert "smallfirst-code-blobs-key-write" not in deps["smallfirst-code-publish"]
    assert {"smallfirst-code-publish", "smallfirst-events-roles-deadletter-writer",
            "smallfirst-roles-data-blob", "smallfirst-roles-data-queue"} <= deps[subscription]
    # the host storage roles come before the publish (the platform reads the package with the app's identity)
    assert {"smallfirst-roles-host-blob", "smallfirst-roles-host-queue"} <= deps["smallfirst-code-publish"]


def test_publish_step_sends_the_repository_package_to_the_apps_scm_site(default_env, package_dir):
    publish = dynamic(default_env, "smallfirst-code-publish").inputs
    app = default_env.one("web:WebApp")
    assert publish["scm_url"] == f"https://{app.azure_name}.scm.azurewebsites.net"
    assert publish["package_path"].startswith(str(package_dir))
    assert publish["package_path"].endswith(f"app-{publish['package_sha256'][:16]}.zip")
    assert "__provider" in publish


def test_event_grid_filters_incoming_and_dead_letters_with_the_topic_identity(default_env):
    topic = default_env.one("eventgrid:SystemTopic")
    data = account(default_env, "data-account")
    assert topic.inputs["source"] == data.id and topic.inputs["topicType"] == "Microsoft.Storage.StorageAccounts"
    assert topic.inputs["identity"] == {"type": "SystemAssigned"}
    sub = default_env.one("eventgrid:SystemTopicEventSubscription").inputs
    assert sub["filter"]["includedEventTypes"] == ["Microsoft.Storage.BlobCreated"]
    assert sub["filter"]["subjectBeginsWith"] == "/blobServices/default/containers/incoming/"
    assert "deadLetterDestination" not in sub
    dead_letter = sub["deadLetterWithResourceIdentity"]
    assert dead_letter["identity"] == {"type": "SystemAssigned"}
    assert dead_letter["deadLetterDestination"] == {"endpointType": "StorageBlob", "resourceId": data.id,
                                                    "blobContainerName": "eventgrid-deadletter"}
    [writer] = [a for a in default_env.of_type("authorization:RoleAssignment")
                if a.inputs["principalId"] == f"principal-{topic.azure_name}"]
    # the dead-letter container only, not the account's item texts
    assert writer.inputs["scope"] == f"{data.id}/blobServices/default/containers/eventgrid-deadletter"
    assert writer.inputs["roleDefinitionId"].endswith(roles.STORAGE_BLOB_DATA_CONTRIBUTOR)


def test_empty_blobs_key_is_an_error_that_says_what_to_do_never_a_url_ending_in_code():
    with pytest.raises(ValueError, match="blobs_extension system key is empty.*pulumi up"):
        blob_webhook_url("app.azurewebsites.net", "")
    assert blob_webhook_url("app.azurewebsites.net", "k").endswith("&code=k")


# --- managed compute -------------------------------------------------------------------------------------------

def test_managed_compute_workspace_has_its_dependent_resources(compute_env):
    workspace = compute_env.one("machinelearningservices:Workspace")
    ml_storage = account(compute_env, "ml-storage")
    vault = compute_env.one("keyvault:Vault")
    appi = compute_env.one("applicationinsights:Component")
    assert workspace.inputs["storageAccount"] == ml_storage.id
    assert workspace.inputs["keyVault"] == vault.id
    assert workspace.inputs["applicationInsights"] == appi.id
    assert workspace.inputs["systemDatastoresAuthMode"] == "Identity"
    assert ml_storage.inputs["allowSharedKeyAccess"] is False
    assert vault.inputs["properties"]["enableRbacAuthorization"] is True


def test_managed_compute_deployment_waits_long_enough_and_serves_concurrent_requests(compute_env):
    endpoint = compute_env.one("machinelearningservices:OnlineEndpoint")
    assert endpoint.inputs["properties"]["authMode"] == "AADToken"
    deployment = compute_env.one("machinelearningservices:OnlineDeployment").inputs
    assert deployment["properties"]["model"] == PHI4_VERSION
    request_settings = deployment["properties"]["requestSettings"]
    assert request_settings["requestTimeout"] == "PT120S"  # Azure's default is 5 s
    assert request_settings["maxConcurrentRequestsPerInstance"] == 16  # Azure's default is 1
    settings = settings_of(compute_env)
    assert settings["SMALLFIRST_SMALL2_BACKEND"] == "foundry"
    assert settings["SMALLFIRST_SMALL2_ENDPOINT"] == f"https://{endpoint.azure_name}.{REGION}.inference.ml.azure.com"
    assert settings["SMALLFIRST_SMALL2_DEPLOYMENT"] == deployment["deploymentName"] == "phi4"
    assert settings["SMALLFIRST_SMALL2_TIMEOUT_S"] == "120"
    scorer = next(r for r in compute_env.of_type("authorization:RoleDefinition")
                  if r.inputs["permissions"][0]["dataActions"] == [roles.ONLINE_ENDPOINT_SCORE])
    assert scorer.inputs["permissions"][0]["actions"] == []  # no write or delete of endpoints or deployments
    assert [a.inputs["scope"] for a in compute_env.of_type("authorization:RoleAssignment")
            if a.inputs["roleDefinitionId"].endswith(scorer.azure_name)] == [endpoint.id]


def test_managed_compute_endpoint_sends_all_traffic_to_its_deployment_once_it_exists(compute_env):
    endpoint = compute_env.one("machinelearningservices:OnlineEndpoint")
    deployment = compute_env.one("machinelearningservices:OnlineDeployment")
    traffic = compute_env.one("resources:Deployment")
    assert traffic.inputs["properties"]["template"] == ENDPOINT_TRAFFIC_TEMPLATE
    [resource] = ENDPOINT_TRAFFIC_TEMPLATE["resources"]
    assert resource["type"] == "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"
    assert resource["properties"]["traffic"] == "[parameters('traffic')]"
    parameters = {name: value["value"] for name, value in traffic.inputs["properties"]["parameters"].items()}
    assert parameters == {"workspaceName": compute_env.one("machinelearningservices:Workspace").azure_name,
                          "endpointName": endpoint.azure_name, "location": REGION, "authMode": "AADToken",
                          "traffic": {deployment.inputs["deploymentName"]: 100}}
    # Traffic may name only an existing deployment: the update waits for it.
    assert deployment.name in compute_env.dependencies[traffic.name]


def test_managed_compute_needs_a_model_version_and_says_how_to_find_one():
    with pytest.raises(ValueError, match="managedComputeModelId.*az ml model show --registry-name azureml"):
        EnvironmentConfig(enable_managed_compute=True)
    with pytest.raises(ValueError, match="managedComputeModelId"):
        EnvironmentConfig(enable_managed_compute=True,
                          managed_compute_model_id="azureml://registries/azureml/models/Phi-4/labels/latest")


def test_the_app_reads_the_small2_settings_as_a_keyless_managed_compute_foundry_tier(compute_env):
    from shared.core.config import Settings, is_managed_compute

    small2 = Settings.from_env(settings_of(compute_env)).tiers["small2"]  # read exactly as the app reads them
    assert small2.backend == "foundry" and is_managed_compute(small2.endpoint)
    assert small2.deployment == "phi4" and small2.api_key is None


@pytest.mark.parametrize("env_name", ["default_env", "compute_env", "serverless_env"])
def test_the_app_accepts_every_tier_setting_the_stack_writes(env_name, request):
    from shared.core.config import Settings

    tiers = Settings.from_env(settings_of(request.getfixturevalue(env_name))).tiers  # as the app reads them
    assert tiers["frontier"].reasoning_effort == "none" and tiers["frontier"].effective_logprobs
    assert tiers["small"].backend == ("foundry_inference" if env_name == "serverless_env" else "foundry")


def test_an_effort_above_none_with_logprobs_is_refused_by_the_app(tmp_path):
    from shared.core.config import Settings
    from shared.errors import ConfigError

    settings = settings_of(build(EnvironmentConfig(frontier_reasoning_effort="low"), tmp_path))
    with pytest.raises(ConfigError, match="reasoning_effort low takes no logprobs"):
        Settings.from_env(settings)


def test_scoring_uri_becomes_the_endpoint_root():
    assert endpoint_root("https://ep.swedencentral.inference.ml.azure.com/score") == (
        "https://ep.swedencentral.inference.ml.azure.com")


def test_managed_compute_is_off_by_default(default_env):
    assert default_env.of_type("machinelearningservices:OnlineEndpoint") == []
    assert default_env.of_type("machinelearningservices:Workspace") == []
    assert "SMALLFIRST_SMALL2_ENDPOINT" not in settings_of(default_env)


# --- serverless endpoint switch --------------------------------------------------------------------------------

def test_serverless_switch_serves_phi4_from_a_hub_project_with_the_key_in_key_vault(serverless_env):
    workspaces = {w.inputs["kind"]: w for w in serverless_env.of_type("machinelearningservices:Workspace")}
    assert set(workspaces) == {"Hub", "Project"}
    assert workspaces["Project"].inputs["hubResourceId"] == workspaces["Hub"].id
    assert workspaces["Hub"].inputs["keyVault"] == serverless_env.one("keyvault:Vault").id
    endpoint = serverless_env.one("machinelearningservices:ServerlessEndpoint")
    assert endpoint.inputs["workspaceName"] == workspaces["Project"].azure_name
    assert endpoint.inputs["properties"] == {"authMode": "Key",
                                             "modelSettings": {"modelId": "azureml://registries/azureml/models/Phi-4"}}
    secret = serverless_env.one("keyvault:Secret")
    assert secret.inputs["properties"]["value"] == SERVERLESS_KEY and is_secret(secret.raw_inputs["properties"])
    settings = settings_of(serverless_env)
    assert settings["SMALLFIRST_SMALL_BACKEND"] == "foundry_inference"  # the legacy backend serves these endpoints
    assert settings["SMALLFIRST_SMALL_ENDPOINT"] == f"https://{endpoint.azure_name}.{REGION}.models.ai.azure.com"
    assert settings["SMALLFIRST_SMALL_API_KEY"] == (
        f"@Microsoft.KeyVault(SecretUri=https://{secret.inputs['vaultName']}.vault.azure.net/secrets/{secret.azure_name})")
    assert SERVERLESS_KEY not in str(settings) and "SMALLFIRST_SMALL_MODEL" not in settings
    # the one secret, not the vault the hub also uses
    assert [a.inputs["scope"] for a in serverless_env.of_type("authorization:RoleAssignment")
            if a.inputs["roleDefinitionId"].endswith(roles.KEY_VAULT_SECRETS_USER)] == [secret.id]
    # The region refused GlobalStandard Phi-4: no such deployment is attempted.
    assert [d.inputs["deploymentName"] for d in serverless_env.of_type("cognitiveservices:Deployment")] == [
        "gpt-5.4-mini"]


# --- config ----------------------------------------------------------------------------------------------------

def test_config_validation():
    with pytest.raises(ValueError, match="namePrefix"):
        EnvironmentConfig(name_prefix="Bad_Name")
    with pytest.raises(ValueError, match="instanceMemoryMb"):
        EnvironmentConfig(instance_memory_mb=1000)
    with pytest.raises(ValueError, match="managedComputeRequestTimeoutSeconds"):
        EnvironmentConfig(managed_compute_request_timeout_s=30)

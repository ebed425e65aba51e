"""CrossGuard policies, called directly with a passing and a failing resource each; and the program passes them."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from smallfirst_infra.config import EnvironmentConfig, SmallModelHosting
from tests.infra.conftest import INFRA
from tests.infra.mocks import build

sys.path.insert(0, str(INFRA / "policy"))
import policies  # noqa: E402

STORAGE, WEB_APP = "azure-native:storage:StorageAccount", "azure-native:web:WebApp"
GOOD_STORAGE = {"allowSharedKeyAccess": False, "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False,
                "enableHttpsTrafficOnly": True}
FLEX = {"functionAppConfig": {"runtime": {"name": "python"}}, "httpsOnly": True}


@dataclass
class Args:
    resource_type: str
    props: dict


@dataclass
class StackArgs:
    resources: list[Args]


def violations(validate, resource_type: str, props: dict) -> list[str]:
    found: list[str] = []
    validate(Args(resource_type, props), lambda message, urn=None: found.append(message))
    return found


def with_settings(**settings: str) -> dict:
    return {**FLEX, "siteConfig": {"appSettings": [{"name": k, "value": v} for k, v in settings.items()]}}


def test_storage_policy_reports_each_missing_lockdown():
    assert violations(policies.storage_account_locked_down, STORAGE, GOOD_STORAGE) == []
    bad = violations(policies.storage_account_locked_down, STORAGE,
                     {"minimumTlsVersion": "TLS1_0", "enableHttpsTrafficOnly": False})
    assert len(bad) == 4
    assert violations(policies.storage_account_locked_down, WEB_APP, {}) == []


@pytest.mark.parametrize("version,accepted", [("TLS1_2", True), ("TLS1_3", True), ("1.2", True), ("1.3", True),
                                              ("TLS1_1", False), ("1.0", False), (None, False)])
def test_tls_1_2_or_newer_is_accepted_older_is_not(version, accepted):
    assert (violations(policies.storage_account_locked_down, STORAGE,
                       {**GOOD_STORAGE, "minimumTlsVersion": version}) == []) is accepted


@pytest.mark.parametrize("validate,typ,good,bad", [
    (policies.containers_not_public, "azure-native:storage:BlobContainer", {"publicAccess": "None"},
     {"publicAccess": "Blob"}),
    (policies.ai_services_keyless, "azure-native:cognitiveservices:Account",
     {"properties": {"disableLocalAuth": True, "customSubDomainName": "x"}}, {"properties": {"disableLocalAuth": False}}),
    (policies.web_apps_https_only, WEB_APP, {"httpsOnly": True, "siteConfig": {"minTlsVersion": "1.3"}},
     {"httpsOnly": True, "siteConfig": {"minTlsVersion": "1.0"}}),
    (policies.app_insights_local_auth_off, "azure-native:applicationinsights:Component",
     {"disableLocalAuth": True}, {"disableLocalAuth": False}),
    (policies.online_endpoints_keyless, "azure-native:machinelearningservices:OnlineEndpoint",
     {"properties": {"authMode": "AADToken"}}, {"properties": {"authMode": "Key"}}),
    (policies.flex_app_settings_valid, WEB_APP, with_settings(AzureWebJobsStorage__accountName="a"),
     with_settings(FUNCTIONS_WORKER_RUNTIME="python", WEBSITE_RUN_FROM_PACKAGE="1")),
    (policies.no_secrets_in_app_settings, WEB_APP,
     with_settings(SMALLFIRST_SMALL_API_KEY="@Microsoft.KeyVault(SecretUri=https://v.vault.azure.net/secrets/k)",
                   APPLICATIONINSIGHTS_CONNECTION_STRING="InstrumentationKey=ik;IngestionEndpoint=https://x/"),
     with_settings(SMALLFIRST_SMALL_API_KEY="plain-key-value")),
    (policies.no_secrets_in_app_settings, WEB_APP,
     with_settings(DataStorage__blobServiceUri="https://a.blob.core.windows.net/"),
     with_settings(DataStorage="DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc==")),
], ids=["containers", "ai-services", "web-app-tls", "app-insights", "online-endpoint", "flex-settings",
        "secret-by-name", "secret-by-value"])
def test_policy_accepts_the_good_resource_and_reports_the_bad_one(validate, typ, good, bad):
    assert violations(validate, typ, good) == []
    assert violations(validate, typ, bad)


def test_flex_policy_ignores_apps_on_other_plans():
    settings = with_settings(FUNCTIONS_WORKER_RUNTIME="python")
    del settings["functionAppConfig"]
    assert violations(policies.flex_app_settings_valid, WEB_APP, settings) == []


@pytest.mark.parametrize("config", [
    EnvironmentConfig(),
    EnvironmentConfig(enable_managed_compute=True,
                      managed_compute_model_id="azureml://registries/azureml/models/Phi-4/versions/3"),
    EnvironmentConfig(small_model_hosting=SmallModelHosting.SERVERLESS_ENDPOINT, private_networking=True)],
    ids=["default", "compute", "serverless-private"])
def test_the_program_passes_every_policy(config, tmp_path):
    mocks = build(config, tmp_path)
    for resource in mocks.resources:
        for name, (validate, _) in policies.POLICIES.items():
            assert violations(validate, resource.typ, resource.inputs) == [], (name, resource.name)
    stack = StackArgs([Args(r.typ, r.inputs) for r in mocks.resources])
    for name, (validate, _) in policies.STACK_POLICIES.items():
        assert stack_violations(validate, stack) == [], name
    assert any(r.typ == policies.ROLE_ASSIGNMENT for r in mocks.resources)  # the stack rule had work to do


# --- role assignments within their declared scope ---------------------------------------------------------------

SUB = "/subscriptions/s/resourceGroups/rg/providers"
DATA, HOST = f"{SUB}/Microsoft.Storage/storageAccounts/data1", f"{SUB}/Microsoft.Storage/storageAccounts/host1"
VAULT = f"{SUB}/Microsoft.KeyVault/vaults/kv1"
ENDPOINT = f"{SUB}/Microsoft.MachineLearningServices/workspaces/ws/onlineEndpoints/gpu"
WORKSPACE = f"{SUB}/Microsoft.MachineLearningServices/workspaces/ws"
OWNER, CONTRIBUTOR, SECRETS_USER = (
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b", "ba92f5b4-2d11-453d-a403-e96b0029c9fe", "4633458b-17de-408a-b874-0445c86b69e6")
SCORER_GUID = "11111111-2222-3333-4444-555555555555"
APP = Args(WEB_APP, with_settings(AzureWebJobsStorage__accountName="host1"))
SCORER = Args(policies.ROLE_DEFINITION, {"roleDefinitionId": SCORER_GUID,
                                          "roleName": "smallfirst-online-endpoint-scorer (smallfirst-abc123)"})


def assignment(scope: str, role: str) -> Args:
    return Args(policies.ROLE_ASSIGNMENT, {
        "scope": scope, "roleDefinitionId": f"/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role}"})


def stack_violations(validate, stack: StackArgs) -> list[str]:
    found: list[str] = []
    validate(stack, lambda message, urn=None: found.append(message))
    return found


def scope_violations(*resources: Args) -> list[str]:
    return stack_violations(policies.role_assignments_within_declared_scope, StackArgs([APP, SCORER, *resources]))


@pytest.mark.parametrize("scope,expected", [
    (DATA, "Microsoft.Storage/storageAccounts"),
    (f"{DATA}/blobServices/default/containers/eventgrid-deadletter",
     "Microsoft.Storage/storageAccounts/blobServices/containers"),
    (f"{VAULT}/secrets/small-key", "Microsoft.KeyVault/vaults/secrets"),
    (ENDPOINT, "Microsoft.MachineLearningServices/workspaces/onlineEndpoints"),
    ("/subscriptions/s/resourceGroups/rg", "resourceGroup"), ("/subscriptions/s", "subscription")])
def test_scope_type_reads_the_resource_type_an_arm_id_names(scope, expected):
    assert policies.scope_type(scope) == expected


def test_key_vault_secrets_user_passes_on_one_secret_and_fails_on_the_vault():
    assert scope_violations(assignment(f"{VAULT}/secrets/small-key", SECRETS_USER)) == []
    [violation] = scope_violations(assignment(VAULT, SECRETS_USER))
    assert "above its declared scope" in violation and "Microsoft.KeyVault/vaults/secrets" in violation


def test_blob_contributor_passes_on_a_container_and_fails_on_the_resource_group():
    assert scope_violations(assignment(f"{DATA}/blobServices/default/containers/eventgrid-deadletter", CONTRIBUTOR)) == []
    assert scope_violations(assignment("/subscriptions/s/resourceGroups/rg", CONTRIBUTOR))


def test_blob_data_owner_passes_on_the_host_account_and_fails_on_the_data_account():
    assert scope_violations(assignment(HOST, OWNER)) == []
    [violation] = scope_violations(assignment(DATA, OWNER))
    assert "only the Functions host's account" in violation


def test_custom_score_role_passes_on_its_endpoint_and_fails_on_the_workspace():
    assert scope_violations(assignment(ENDPOINT, SCORER_GUID)) == []
    [violation] = scope_violations(assignment(WORKSPACE, SCORER_GUID))
    assert "onlineEndpoints" in violation


def test_a_role_with_no_declared_scope_fails_wherever_it_is_assigned():
    cognitive_services_user, azureml_data_scientist = (
        "a97b65f3-24c7-4388-baec-2e87135dc908", "f6c7c914-8db3-469d-8ca1-694a8f32e121")
    assert "not a role this stack declares" in scope_violations(
        assignment(f"{SUB}/Microsoft.CognitiveServices/accounts/ai", cognitive_services_user))[0]
    assert scope_violations(assignment(ENDPOINT, azureml_data_scientist))


def test_an_assignment_whose_scope_is_not_yet_known_is_left_to_pulumi_up():
    unknown = Args(policies.ROLE_ASSIGNMENT, {"roleDefinitionId": f"x/{SECRETS_USER}"})  # scope an unknown output
    assert scope_violations(unknown) == []


def test_custom_roles_grant_named_data_actions_only():
    good = {"roleName": "r", "permissions": [{"actions": [], "dataActions": [
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/score/action"]}]}
    assert violations(policies.custom_roles_data_plane_only, policies.ROLE_DEFINITION, good) == []
    control_plane = {"roleName": "r", "permissions": [{"actions": [
        "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/write"], "dataActions": []}]}
    assert violations(policies.custom_roles_data_plane_only, policies.ROLE_DEFINITION, control_plane)
    everything = {"roleName": "r", "permissions": [{"actions": [], "dataActions": ["*"]}]}
    assert violations(policies.custom_roles_data_plane_only, policies.ROLE_DEFINITION, everything)

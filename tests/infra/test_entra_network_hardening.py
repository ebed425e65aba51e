"""Under mocks: Entra ID in front of the app, private networking, and the hardened site (issue 31's infra half)."""

from __future__ import annotations

import pytest

from smallfirst_infra import entra, network
from smallfirst_infra.config import CallerAuth, EnvironmentConfig, SmallModelHosting
from smallfirst_infra.environment import HTTP_BODY_LIMIT_BYTES
from tests.infra.mocks import build

REVIEWER = "0f1e2d3c-4b5a-6978-8695-a4b3c2d1e0f9"
REVIEWER_GROUP = "11112222-3333-4444-5555-666677778888"
CALLER_APP = "99998888-7777-6666-5555-444433332222"
PRIVATE = EnvironmentConfig(private_networking=True, small_model_hosting=SmallModelHosting.SERVERLESS_ENDPOINT)


@pytest.fixture(scope="module")
def package_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("package")


@pytest.fixture(scope="module")
def default_env(package_dir):
    return build(EnvironmentConfig(), package_dir)


@pytest.fixture(scope="module")
def entra_env(package_dir):
    config = EnvironmentConfig.from_lookup({
        "reviewers": f'["{REVIEWER}", "{REVIEWER_GROUP}"]', "callers": CALLER_APP, "callerAuth": "entra"}.get)
    return build(config, package_dir)


@pytest.fixture(scope="module")
def private_env(package_dir):
    return build(PRIVATE, package_dir)


def settings_of(mocks) -> dict[str, str]:
    return {s["name"]: s["value"] for s in mocks.one("web:WebApp").inputs["siteConfig"]["appSettings"]}


# --- Entra ID ----------------------------------------------------------------------------------------------------

def test_app_registration_declares_reviewer_and_caller_roles_and_a_scope_the_azure_cli_may_ask_for(default_env):
    application = default_env.one("azuread:index/application:Application").inputs
    roles = {role["value"]: role for role in application["appRoles"]}
    assert set(roles) == {"Reviewer", "Caller"}
    assert roles["Reviewer"]["allowedMemberTypes"] == ["User"]  # people and groups decide reviews
    assert roles["Caller"]["allowedMemberTypes"] == ["User", "Application"]  # services may call inference
    assert application["signInAudience"] == "AzureADMyOrg" and application["api"]["requestedAccessTokenVersion"] == 2
    preauthorized = default_env.one("azuread:index/applicationPreAuthorized:ApplicationPreAuthorized").inputs
    assert preauthorized["authorizedClientId"] == entra.AZURE_CLI_CLIENT_ID
    assert preauthorized["permissionIds"] == [application["api"]["oauth2PermissionScopes"][0]["id"]]
    client_id = default_env.one("azuread:index/application:Application").outputs["clientId"]
    uri = default_env.one("azuread:index/applicationIdentifierUri:ApplicationIdentifierUri").inputs
    assert uri["identifierUri"] == f"api://{client_id}"


def test_configured_reviewers_and_callers_get_their_app_role_on_the_service_principal(entra_env):
    principal = entra_env.one("azuread:index/servicePrincipal:ServicePrincipal").outputs["objectId"]
    assignments = {(a.inputs["principalObjectId"], a.inputs["appRoleId"])
                   for a in entra_env.of_type("azuread:index/appRoleAssignment:AppRoleAssignment")}
    assert assignments == {(REVIEWER, entra.REVIEWER_ROLE_ID), (REVIEWER_GROUP, entra.REVIEWER_ROLE_ID),
                           (CALLER_APP, entra.CALLER_ROLE_ID)}
    assert {a.inputs["resourceObjectId"] for a in entra_env.of_type("azuread:index/appRoleAssignment:AppRoleAssignment")
            } == {principal}


def test_no_reviewers_configured_means_no_role_assignments(default_env):
    assert default_env.of_type("azuread:index/appRoleAssignment:AppRoleAssignment") == []


def test_easy_auth_lets_anonymous_requests_through_and_validates_tokens_for_this_app(default_env):
    auth = default_env.one("web:WebAppAuthSettingsV2").inputs
    app = default_env.one("web:WebApp")
    client_id = default_env.one("azuread:index/application:Application").outputs["clientId"]
    assert auth["name"] == app.azure_name and auth["platform"] == {"enabled": True}
    # function keys keep working for inference: Easy Auth refuses nobody, it only adds X-MS-CLIENT-PRINCIPAL
    assert auth["globalValidation"] == {"requireAuthentication": False, "unauthenticatedClientAction": "AllowAnonymous"}
    aad = auth["identityProviders"]["azureActiveDirectory"]
    assert aad["registration"] == {"clientId": client_id,
                                   "openIdIssuer": "https://login.microsoftonline.com/tenant/v2.0"}
    assert aad["validation"]["allowedAudiences"] == [client_id, f"api://{client_id}"]
    assert auth["login"]["tokenStore"] == {"enabled": False}


@pytest.mark.parametrize("env_name,expected", [("default_env", "key"), ("entra_env", "entra")])
def test_caller_auth_reaches_the_app_as_a_setting(env_name, expected, request):
    assert settings_of(request.getfixturevalue(env_name))["SMALLFIRST_CALLER_AUTH"] == expected


def test_stack_outputs_give_the_cli_the_token_scope_for_review(package_dir):
    import pulumi

    from smallfirst_infra.environment import SmallfirstEnvironment
    from tests.infra.mocks import AzureMocks

    mocks = AzureMocks()
    pulumi.runtime.set_mocks(mocks, project="smallfirst", stack="dev", preview=False)

    @pulumi.runtime.test
    def program():
        env = SmallfirstEnvironment("smallfirst", EnvironmentConfig(), package_dir=package_dir)
        return pulumi.Output.all(env.outputs["entra_client_id"], env.outputs["review_token_scope"]).apply(check)

    def check(outputs):
        client_id, scope = outputs
        assert client_id == mocks.one("azuread:index/application:Application").outputs["clientId"]
        assert scope == f"api://{client_id}/.default"

    program()


@pytest.mark.parametrize("key,raw,message", [
    ("reviewers", "alice@example.com", "reviewers.*Entra object ids"), ("callerAuth", "oauth", "callerAuth: one of"),
    ("retentionClaimsDays", "5", "retentionClaimsDays: more than 7"), ("retentionShadowDays", "0", "1-3650")])
def test_bad_security_config_is_refused_with_the_key_it_names(key, raw, message):
    with pytest.raises(ValueError, match=message):
        EnvironmentConfig.from_lookup({key: raw}.get)


def test_config_defaults_keep_keys_and_public_networking():
    config = EnvironmentConfig()
    assert config.caller_auth == CallerAuth.KEY and config.private_networking is False and config.reviewers == ()


# --- private networking ------------------------------------------------------------------------------------------

def test_private_networking_is_off_by_default(default_env):
    assert default_env.of_type("network:VirtualNetwork") == [] and default_env.of_type("network:PrivateEndpoint") == []
    assert "virtualNetworkSubnetId" not in default_env.one("web:WebApp").inputs
    for account in default_env.of_type("storage:StorageAccount"):
        assert "publicNetworkAccess" not in account.inputs and "networkRuleSet" not in account.inputs
    assert default_env.one("cognitiveservices:Account").inputs["properties"]["publicNetworkAccess"] == "Enabled"


def test_flex_app_joins_a_subnet_delegated_to_container_app_environments(private_env):
    subnets = {s.inputs["addressPrefix"]: s for s in private_env.of_type("network:Subnet")}
    app_subnet = subnets[network.APP_SUBNET]
    assert [d["serviceName"] for d in app_subnet.inputs["delegations"]] == ["Microsoft.App/environments"]
    assert private_env.one("web:WebApp").inputs["virtualNetworkSubnetId"] == app_subnet.id
    assert subnets[network.ENDPOINT_SUBNET].inputs["privateEndpointNetworkPolicies"] == "Disabled"


def test_every_data_plane_has_a_private_endpoint_registered_in_its_linked_zones(private_env):
    vnet = private_env.one("network:VirtualNetwork")
    zones = {z.id: z.inputs["privateZoneName"] for z in private_env.of_type("privatedns:PrivateZone")}
    linked = {link.inputs["privateZoneName"] for link in private_env.of_type("privatedns:VirtualNetworkLink")
              if link.inputs["virtualNetwork"] == {"id": vnet.id}}
    assert linked == set(zones.values()) == {
        "privatelink.blob.core.windows.net", "privatelink.queue.core.windows.net",
        "privatelink.cognitiveservices.azure.com", "privatelink.openai.azure.com",
        "privatelink.services.ai.azure.com", "privatelink.vaultcore.azure.net"}
    groups = {g.inputs["privateEndpointName"]: {zones[c["privateDnsZoneId"]] for c in g.inputs["privateDnsZoneConfigs"]}
              for g in private_env.of_type("network:PrivateDnsZoneGroup")}
    targets = {}
    for endpoint in private_env.of_type("network:PrivateEndpoint"):
        (connection,) = endpoint.inputs["privateLinkServiceConnections"]
        target = private_env.by_id(connection["privateLinkServiceId"]).name
        targets[(target, connection["groupIds"][0])] = groups[endpoint.azure_name]
    assert targets == {
        ("smallfirst-data-account", "blob"): {"privatelink.blob.core.windows.net"},
        ("smallfirst-data-account", "queue"): {"privatelink.queue.core.windows.net"},
        ("smallfirst-func-host", "blob"): {"privatelink.blob.core.windows.net"},
        ("smallfirst-func-host", "queue"): {"privatelink.queue.core.windows.net"},
        ("smallfirst-ai-account", "account"): {"privatelink.cognitiveservices.azure.com",
                                               "privatelink.openai.azure.com", "privatelink.services.ai.azure.com"},
        ("smallfirst-ml-kv", "vault"): {"privatelink.vaultcore.azure.net"},
    }


def test_public_access_is_off_on_each_data_plane_except_the_trusted_services_event_grid_needs(private_env):
    accounts = {a.name: a.inputs for a in private_env.of_type("storage:StorageAccount")}
    host = accounts["smallfirst-func-host"]
    assert host["publicNetworkAccess"] == "Disabled" and host["networkRuleSet"]["defaultAction"] == "Deny"
    data = accounts["smallfirst-data-account"]
    # Event Grid's system-assigned identity writes dead letters only through the trusted-services exception
    assert data["networkRuleSet"] == {"defaultAction": "Deny", "bypass": "AzureServices"}
    ai = private_env.one("cognitiveservices:Account").inputs["properties"]
    assert ai["publicNetworkAccess"] == "Disabled" and ai["networkAcls"] == {"defaultAction": "Deny"}
    vault = private_env.one("keyvault:Vault").inputs["properties"]
    assert vault["publicNetworkAccess"] == "Disabled" and vault["networkAcls"]["defaultAction"] == "Deny"
    topic = private_env.one("eventgrid:SystemTopic").inputs
    assert topic["identity"] == {"type": "SystemAssigned"}


# --- the hardened site -------------------------------------------------------------------------------------------

def test_scm_and_ftp_basic_auth_publishing_are_off(default_env):
    app = default_env.one("web:WebApp")
    for typ in ("web:WebAppScmAllowed", "web:WebAppFtpAllowed"):
        policy = default_env.one(typ).inputs
        assert policy["allow"] is False and policy["name"] == app.azure_name


def test_code_publish_uses_an_entra_bearer_token_not_basic_auth():
    from smallfirst_infra.publish import OneDeployPublisher

    sent: list[dict[str, str]] = []

    class Recording(OneDeployPublisher):
        @staticmethod
        def request(method, url, headers, data):
            sent.append(headers)
            return (202, '"d1"') if method == "POST" else (200, '{"status": 4, "id": "d1"}')

    import hashlib
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".zip") as package:
        package.write(b"zip")
        package.flush()
        Recording(token_source=lambda: "entra-token", poll_interval_s=0).publish({
            "package_path": package.name, "package_sha256": hashlib.sha256(b"zip").hexdigest(),
            "scm_url": "https://app.scm.azurewebsites.net"})
    assert sent and all(h["Authorization"] == "Bearer entra-token" for h in sent)


def test_host_body_limit_is_the_apps_own_cap(default_env):
    from functions.http_api import MAX_BODY_BYTES

    assert settings_of(default_env)["FUNCTIONS_REQUEST_BODY_SIZE_LIMIT"] == str(HTTP_BODY_LIMIT_BYTES)
    assert HTTP_BODY_LIMIT_BYTES == MAX_BODY_BYTES == 1024 * 1024


def test_key_vault_reference_names_no_secret_version(package_dir):
    mocks = build(EnvironmentConfig(small_model_hosting=SmallModelHosting.SERVERLESS_ENDPOINT), package_dir)
    secret = mocks.one("keyvault:Secret")
    reference = settings_of(mocks)["SMALLFIRST_SMALL_API_KEY"]
    assert reference.endswith(f"/secrets/{secret.azure_name})")  # latest version, so a rotated key is picked up
    assert secret.outputs["properties"]["secretUriWithVersion"].rsplit("/", 1)[-1] not in reference

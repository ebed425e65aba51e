"""Security properties every smallfirst stack must keep. Validate functions are plain, testable callables."""

from __future__ import annotations

import re
from typing import Any, Callable

STORAGE = "azure-native:storage:StorageAccount"
BLOB_CONTAINER = "azure-native:storage:BlobContainer"
AI_ACCOUNT = "azure-native:cognitiveservices:Account"
WEB_APP = "azure-native:web:WebApp"
APP_INSIGHTS = "azure-native:applicationinsights:Component"
ONLINE_ENDPOINT = "azure-native:machinelearningservices:OnlineEndpoint"
ROLE_ASSIGNMENT = "azure-native:authorization:RoleAssignment"
ROLE_DEFINITION = "azure-native:authorization:RoleDefinition"

# The declared scope of each role a stack may assign: the ARM resource types an assignment of it may name. A role
# not listed here, or assigned on a broader scope (a whole account where a container is declared, a vault where a
# secret is, a resource group or subscription), fails. The reasons: infra/README.md, "Least privilege".
STORAGE_ACCOUNT_SCOPE = "Microsoft.Storage/storageAccounts"
BUILT_IN_ROLE_SCOPES: dict[str, frozenset[str]] = {
    # Storage Blob Data Owner: only the Functions host's own account (checked by name below)
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": frozenset({STORAGE_ACCOUNT_SCOPE}),
    # Storage Blob Data Contributor: the data account, or one container
    "ba92f5b4-2d11-453d-a403-e96b0029c9fe": frozenset({
        STORAGE_ACCOUNT_SCOPE, "Microsoft.Storage/storageAccounts/blobServices/containers"}),
    # Storage Queue Data Contributor: an account's queues, or one queue
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": frozenset({
        STORAGE_ACCOUNT_SCOPE, "Microsoft.Storage/storageAccounts/queueServices/queues"}),
    # Cognitive Services OpenAI User: one AI Services account
    "5e0bd9bd-7b93-4f28-af87-19fc36ad61bd": frozenset({"Microsoft.CognitiveServices/accounts"}),
    # Monitoring Metrics Publisher: one Application Insights component
    "3913510d-42f4-4e42-8a64-420c390055eb": frozenset({"Microsoft.Insights/components"}),
    # Key Vault Secrets User: one secret, never the vault
    "4633458b-17de-408a-b874-0445c86b69e6": frozenset({"Microsoft.KeyVault/vaults/secrets"}),
}
STORAGE_BLOB_DATA_OWNER = "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"
# Custom roles, by the key their roleName starts with (smallfirst_infra/roles.py).
CUSTOM_ROLE_SCOPES: dict[str, frozenset[str]] = {
    "smallfirst-foundry-models-user": frozenset({"Microsoft.CognitiveServices/accounts"}),
    "smallfirst-online-endpoint-scorer": frozenset({"Microsoft.MachineLearningServices/workspaces/onlineEndpoints"}),
}
HOST_STORAGE_SETTING = "AzureWebJobsStorage__accountName"

# Settings the Flex Consumption plan rejects or ignores: their job is done by functionAppConfig.
FLEX_INVALID_SETTINGS = frozenset({
    "FUNCTIONS_EXTENSION_VERSION", "FUNCTIONS_WORKER_RUNTIME", "FUNCTIONS_WORKER_RUNTIME_VERSION",
    "FUNCTIONS_MAX_HTTP_CONCURRENCY", "FUNCTIONS_WORKER_PROCESS_COUNT", "FUNCTIONS_WORKER_DYNAMIC_CONCURRENCY_ENABLED",
    "SCM_DO_BUILD_DURING_DEPLOYMENT", "ENABLE_ORYX_BUILD", "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE", "WEBSITE_CONTENTOVERVNET", "WEBSITE_NODE_DEFAULT_VERSION", "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_MAX_DYNAMIC_APPLICATION_SCALE_OUT", "WEBSITE_SKIP_CONTENTSHARE_VALIDATION", "WEBSITE_VNET_ROUTE_ALL",
    "WEBSITE_DNS_SERVER",
})
# Values that carry a credential, and names that announce one.
SECRET_VALUE = re.compile(r"accountkey=|sharedaccesskey=|sharedaccesssignature=|[?&]sig=|password=|[?&]code=",
                          re.IGNORECASE)
SECRET_NAME = re.compile(r"(KEY|SECRET|PASSWORD|TOKEN|CONNECTION_?STRING)$", re.IGNORECASE)
# Not secrets: App Insights' connection string holds only an instrumentation key (an identifier).
NOT_SECRET_NAMES = frozenset({"APPLICATIONINSIGHTS_CONNECTION_STRING"})
KEY_VAULT_REFERENCE = "@Microsoft.KeyVault("

Report = Callable[..., None]


def tls_at_least_1_2(version: str | None) -> bool:
    """Accepts `TLS1_2`, `TLS1_3`, `1.2`, `1.3`: anything 1.2 or newer."""
    match = re.fullmatch(r"(?:TLS)?(\d)[._](\d)", version or "")
    return bool(match) and (int(match[1]), int(match[2])) >= (1, 2)


def storage_account_locked_down(args: Any, report_violation: Report) -> None:
    if args.resource_type != STORAGE:
        return
    props = args.props
    if props.get("allowSharedKeyAccess") is not False:
        report_violation("storage accounts must disable shared key access (allowSharedKeyAccess: false)")
    if not tls_at_least_1_2(props.get("minimumTlsVersion")):
        report_violation("storage accounts must require TLS 1.2 or newer (minimumTlsVersion: TLS1_2 or TLS1_3)")
    if props.get("allowBlobPublicAccess") is not False:
        report_violation("storage accounts must disallow public blob access (allowBlobPublicAccess: false)")
    if props.get("enableHttpsTrafficOnly") is False:
        report_violation("storage accounts must accept HTTPS only")


def containers_not_public(args: Any, report_violation: Report) -> None:
    if args.resource_type == BLOB_CONTAINER and args.props.get("publicAccess", "None") != "None":
        report_violation("blob containers must not be public (publicAccess: None)")


def ai_services_keyless(args: Any, report_violation: Report) -> None:
    if args.resource_type != AI_ACCOUNT:
        return
    properties = args.props.get("properties") or {}
    if properties.get("disableLocalAuth") is not True:
        report_violation("AI Services accounts must disable local (key) auth (properties.disableLocalAuth: true)")
    if not properties.get("customSubDomainName"):
        report_violation("AI Services accounts need a custom subdomain for Entra ID tokens")


def web_apps_https_only(args: Any, report_violation: Report) -> None:
    if args.resource_type != WEB_APP:
        return
    if args.props.get("httpsOnly") is not True:
        report_violation("function apps must be HTTPS only (httpsOnly: true)")
    min_tls = (args.props.get("siteConfig") or {}).get("minTlsVersion")
    if min_tls is not None and not tls_at_least_1_2(min_tls):
        report_violation("function apps must require TLS 1.2 or newer (siteConfig.minTlsVersion: 1.2 or 1.3)")


def app_insights_local_auth_off(args: Any, report_violation: Report) -> None:
    if args.resource_type == APP_INSIGHTS and args.props.get("disableLocalAuth") is not True:
        report_violation("Application Insights must accept Entra ID ingestion only (disableLocalAuth: true)")


def online_endpoints_keyless(args: Any, report_violation: Report) -> None:
    if args.resource_type != ONLINE_ENDPOINT:
        return
    auth_mode = (args.props.get("properties") or {}).get("authMode")
    if auth_mode not in ("AADToken", "AMLToken"):
        report_violation(f"online endpoints must use Entra ID tokens, not keys (properties.authMode: AADToken; "
                         f"got {auth_mode!r})")


def app_settings(props: dict) -> dict[str, str]:
    return {s.get("name", ""): str(s.get("value", "")) for s in (props.get("siteConfig") or {}).get("appSettings") or []}


def flex_app_settings_valid(args: Any, report_violation: Report) -> None:
    if args.resource_type != WEB_APP or not args.props.get("functionAppConfig"):
        return
    for name in sorted(FLEX_INVALID_SETTINGS & set(app_settings(args.props))):
        report_violation(f"Flex Consumption apps must not set {name}: use functionAppConfig instead")


def no_secrets_in_app_settings(args: Any, report_violation: Report) -> None:
    if args.resource_type != WEB_APP:
        return
    for name, value in app_settings(args.props).items():
        if value.startswith(KEY_VAULT_REFERENCE) or name in NOT_SECRET_NAMES:
            continue
        if SECRET_VALUE.search(value) or (SECRET_NAME.search(name) and value):
            report_violation(f"app setting {name} holds a secret: use the app's identity or a Key Vault reference")


def scope_type(scope: str) -> str:
    """The ARM resource type an id names: `.../providers/Microsoft.Storage/storageAccounts/a/blobServices/default/
    containers/c` -> `Microsoft.Storage/storageAccounts/blobServices/containers`; a resource group or subscription
    by that word."""
    head, _, provider_path = scope.rpartition("/providers/")
    if not head:
        return "resourceGroup" if "/resourceGroups/" in scope else "subscription"
    namespace, *segments = provider_path.strip("/").split("/")
    return "/".join([namespace, *segments[0::2]])


def resource_name(scope: str) -> str:
    return scope.rstrip("/").rsplit("/", 1)[-1]


def role_assignments_within_declared_scope(args: Any, report_violation: Report) -> None:
    """Stack policy: every role assignment names a role this project declares, on a resource of a declared type."""
    resources = list(args.resources)
    custom_roles = {str(r.props.get("roleDefinitionId", "")).lower(): str(r.props.get("roleName", "")).split(" ")[0]
                    for r in resources if r.resource_type == ROLE_DEFINITION}
    host_accounts = {app_settings(r.props).get(HOST_STORAGE_SETTING) for r in resources if r.resource_type == WEB_APP}
    for resource in resources:
        if resource.resource_type != ROLE_ASSIGNMENT:
            continue
        scope, role_id = resource.props.get("scope"), resource.props.get("roleDefinitionId")
        if not isinstance(scope, str) or not isinstance(role_id, str):
            continue  # not known until the resources it names exist: checked at `pulumi up`
        role = role_id.rsplit("/", 1)[-1].lower()
        declared = BUILT_IN_ROLE_SCOPES.get(role)
        if declared is None and role in custom_roles:
            declared = CUSTOM_ROLE_SCOPES.get(custom_roles[role])
        if declared is None:
            report_violation(f"role {role} on {scope}: not a role this stack declares a scope for (policies.py)",
                             getattr(resource, "urn", None))
        elif scope_type(scope) not in declared:
            report_violation(f"role {role} on {scope_type(scope)} {resource_name(scope)!r}: above its declared "
                             f"scope ({', '.join(sorted(declared))})", getattr(resource, "urn", None))
        elif role == STORAGE_BLOB_DATA_OWNER and resource_name(scope) not in host_accounts:
            report_violation(f"Storage Blob Data Owner on {resource_name(scope)!r}: only the Functions host's account "
                             f"({HOST_STORAGE_SETTING}) needs Owner; grant Contributor", getattr(resource, "urn", None))


def custom_roles_data_plane_only(args: Any, report_violation: Report) -> None:
    """A custom role grants named data actions only: no control-plane action, no bare wildcard."""
    if args.resource_type != ROLE_DEFINITION:
        return
    for permission in args.props.get("permissions") or []:
        if permission.get("actions"):
            report_violation(f"custom role {args.props.get('roleName')!r} grants control-plane actions "
                             f"{permission['actions']}: the app needs data actions only")
        if any(action.strip() in ("*", "*/*") for action in permission.get("dataActions") or []):
            report_violation(f"custom role {args.props.get('roleName')!r} grants every data action")


POLICIES = {
    "storage-account-locked-down": (storage_account_locked_down,
                                    "Storage: no shared keys, TLS 1.2 or newer, no public access, HTTPS."),
    "blob-containers-not-public": (containers_not_public, "Blob containers are private."),
    "ai-services-keyless": (ai_services_keyless, "AI Services: Entra ID only."),
    "web-apps-https-only": (web_apps_https_only, "Function apps serve HTTPS only, TLS 1.2 or newer."),
    "app-insights-local-auth-off": (app_insights_local_auth_off, "Application Insights: Entra ID ingestion only."),
    "online-endpoints-keyless": (online_endpoints_keyless, "Azure ML online endpoints: Entra ID tokens, not keys."),
    "flex-app-settings-valid": (flex_app_settings_valid, "Flex Consumption apps: no settings the plan rejects."),
    "no-secrets-in-app-settings": (no_secrets_in_app_settings, "App settings hold no secrets (Key Vault references)."),
    "custom-roles-data-plane-only": (custom_roles_data_plane_only, "Custom roles grant named data actions only."),
}
STACK_POLICIES = {
    "role-assignments-within-declared-scope": (
        role_assignments_within_declared_scope,
        "Every role assignment names a declared role, on no broader a scope than declared for it."),
}

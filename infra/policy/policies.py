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
}

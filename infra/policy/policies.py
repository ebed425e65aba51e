"""Security properties every smallfirst stack must keep. Validate functions are plain, testable callables."""

from __future__ import annotations

from typing import Any, Callable

STORAGE = "azure-native:storage:StorageAccount"
BLOB_CONTAINER = "azure-native:storage:BlobContainer"
AI_ACCOUNT = "azure-native:cognitiveservices:Account"
WEB_APP = "azure-native:web:WebApp"

Report = Callable[..., None]


def storage_account_locked_down(args: Any, report_violation: Report) -> None:
    if args.resource_type != STORAGE:
        return
    props = args.props
    if props.get("allowSharedKeyAccess") is not False:
        report_violation("storage accounts must disable shared key access (allowSharedKeyAccess: false)")
    if props.get("minimumTlsVersion") != "TLS1_2":
        report_violation("storage accounts must require TLS 1.2 (minimumTlsVersion: TLS1_2)")
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
    if args.resource_type == WEB_APP and args.props.get("httpsOnly") is not True:
        report_violation("function apps must be HTTPS only (httpsOnly: true)")


POLICIES = {
    "storage-account-locked-down": (storage_account_locked_down, "Storage: no shared keys, TLS 1.2, no public access, HTTPS."),
    "blob-containers-not-public": (containers_not_public, "Blob containers are private."),
    "ai-services-keyless": (ai_services_keyless, "AI Services: Entra ID only."),
    "web-apps-https-only": (web_apps_https_only, "Function apps serve HTTPS only."),
}

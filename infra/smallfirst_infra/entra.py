"""Entra ID in front of the app: an app registration with the Reviewer and Caller app roles, the reviewers and
callers of stack config assigned to them, and App Service Authentication validating their tokens.

Authentication ("Easy Auth", `Microsoft.Web/sites/config` authsettingsV2) lets unauthenticated requests through,
so the inference routes keep their function keys; a request with a valid token for this app reaches the app with
the `X-MS-CLIENT-PRINCIPAL` header (its claims, roles among them), which the platform strips from any request that
did not authenticate. The app decides per route: a review decision needs the Reviewer role, and inference needs
the Caller role when `callerAuth` is `entra` (SMALLFIRST_CALLER_AUTH).

Flex Consumption supports built-in authentication: Microsoft's migration guide has apps configure it on their new
Flex Consumption app (learn.microsoft.com/azure/azure-functions/migration/migrate-plan-consumption-to-flex,
"Configure built-in authentication", checked 2026-12-06); infra/README.md has the history of that support.
"""

from __future__ import annotations

import pulumi
import pulumi_azuread as azuread
from pulumi_azure_native import resources, web

# App role and scope ids are this application's own: fixed, so a role keeps its id (and its assignments) for good.
REVIEWER_ROLE_ID = "6d0c3b4e-8a1f-4f57-9a55-2a4d3f3f2b01"
CALLER_ROLE_ID = "6d0c3b4e-8a1f-4f57-9a55-2a4d3f3f2b02"
USER_IMPERSONATION_SCOPE_ID = "6d0c3b4e-8a1f-4f57-9a55-2a4d3f3f2b03"
REVIEWER_ROLE = "Reviewer"
CALLER_ROLE = "Caller"
# The Azure CLI's public client id: pre-authorized, so `smallfirst review` gets a token for this app from the
# user's `az login` without a consent prompt (AzureCliCredential, scope api://<client id>/.default).
AZURE_CLI_CLIENT_ID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"


def token_scope(client_id: str) -> str:
    """What a client asks Entra for to call the app (the CLI's `smallfirst review`)."""
    return f"api://{client_id}/.default"


class EntraAuth(pulumi.ComponentResource):
    """The app registration, its service principal, the role assignments, and the site's authsettingsV2."""

    def __init__(self, name: str, rg: resources.ResourceGroup, app: web.WebApp, display_name: pulumi.Input[str],
                 tenant_id: pulumi.Input[str], reviewers: tuple[str, ...], callers: tuple[str, ...],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:EntraAuth", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.application = azuread.Application(
            f"{name}-app", display_name=display_name, sign_in_audience="AzureADMyOrg",
            app_roles=[
                {"id": REVIEWER_ROLE_ID, "value": REVIEWER_ROLE, "display_name": "Reviewer",
                 "description": "Accept, correct or reject items waiting for review", "allowed_member_types": ["User"],
                 "enabled": True},
                {"id": CALLER_ROLE_ID, "value": CALLER_ROLE, "display_name": "Caller",
                 "description": "Call the inference routes with an Entra token",
                 "allowed_member_types": ["User", "Application"], "enabled": True},
            ],
            # v2 tokens: the audience is the client id, the issuer login.microsoftonline.com/<tenant>/v2.0.
            api={"requested_access_token_version": 2, "oauth2_permission_scopes": [{
                "id": USER_IMPERSONATION_SCOPE_ID, "value": "user_impersonation", "type": "User", "enabled": True,
                "admin_consent_display_name": "Use smallfirst", "admin_consent_description": "Use smallfirst as you",
                "user_consent_display_name": "Use smallfirst", "user_consent_description": "Use smallfirst as you"}]},
            # The identifier URI is written by the resource below (it needs the client id this one returns).
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["identifierUris"]))
        self.client_id = self.application.client_id
        self.identifier_uri = azuread.ApplicationIdentifierUri(
            f"{name}-uri", application_id=self.application.id,
            identifier_uri=pulumi.Output.concat("api://", self.client_id), opts=child)
        self.cli_preauthorized = azuread.ApplicationPreAuthorized(
            f"{name}-cli", application_id=self.application.id, authorized_client_id=AZURE_CLI_CLIENT_ID,
            permission_ids=[USER_IMPERSONATION_SCOPE_ID], opts=child)
        self.service_principal = azuread.ServicePrincipal(
            f"{name}-sp", client_id=self.client_id, app_role_assignment_required=False, opts=child)
        self.assignments = [
            azuread.AppRoleAssignment(
                f"{name}-{label}-{object_id[:8]}", app_role_id=role_id, principal_object_id=object_id,
                resource_object_id=self.service_principal.object_id, opts=child)
            for label, role_id, object_ids in (("reviewer", REVIEWER_ROLE_ID, reviewers),
                                               ("caller", CALLER_ROLE_ID, callers))
            for object_id in object_ids
        ]
        self.auth_settings = web.WebAppAuthSettingsV2(
            f"{name}-settings", name=app.name, resource_group_name=rg.name,
            platform={"enabled": True},
            # Anonymous requests pass (function keys guard inference); a valid token adds X-MS-CLIENT-PRINCIPAL.
            global_validation={"require_authentication": False, "unauthenticated_client_action": "AllowAnonymous"},
            identity_providers={"azure_active_directory": {
                "enabled": True,
                "registration": {"client_id": self.client_id, "open_id_issuer": pulumi.Output.concat(
                    "https://login.microsoftonline.com/", tenant_id, "/v2.0")},
                "validation": {"allowed_audiences": [self.client_id, pulumi.Output.concat("api://", self.client_id)]},
            }},
            login={"token_store": {"enabled": False}},  # nothing of the caller's is kept
            http_settings={"require_https": True},
            opts=child)
        self.token_scope = self.client_id.apply(token_scope)
        self.register_outputs({"client_id": self.client_id})

"""Who is calling: the principal App Service Authentication ("Easy Auth") hands the app, and the app roles it holds.

For a request with a valid Entra token the platform adds `X-MS-CLIENT-PRINCIPAL`, "A Base64 encoded JSON
representation of available claims" of the form `{"auth_typ", "claims": [{"typ", "val"}], "name_typ",
"role_typ"}`, and "External requests aren't allowed to set these headers, so they're present only if set by App
Service" ([Work with user identities in Azure App Service authentication](
https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities), checked 2026-12-06).
The app trusts the header for that reason only, so only where the platform is in front of it
(`principal_header_trusted`): under Core Tools (`func start`) or the local host nothing strips a client-sent one.
"""

from __future__ import annotations

import base64
import binascii

from collections.abc import Mapping

from pydantic import BaseModel, ValidationError

from shared.errors import InputError

PRINCIPAL_HEADER = "x-ms-client-principal"
REVIEWER_ROLE = "Reviewer"
CALLER_ROLE = "Caller"
# Claims are mapped by the platform ("some names might differ from what appears in the token", same page): the
# object id arrives as oid or as its long claim type, roles as `roles` (v2 tokens) or the role_typ given.
OBJECT_ID_CLAIMS = ("http://schemas.microsoft.com/identity/claims/objectidentifier", "oid")
NAME_CLAIMS = ("name", "preferred_username", "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn")
MAX_HEADER_CHARS = 16_384  # a principal's claims are a few KB; more is not the platform's
# "Read-only. Injected into a Windows or Linux app to indicate whether App Service authentication is enabled"
# (https://learn.microsoft.com/azure/app-service/reference-app-settings#authentication--authorization, checked
# 2026-12-06). Its value is `True`, compared without case (as Microsoft.Identity.Web's AppServicesAuthentication-
# Information does).
AUTH_ENABLED_SETTING = "WEBSITE_AUTH_ENABLED"
# Where no platform strips the header (the local host, tests), the developer's explicit say-so that requests carry
# the platform's header as it would.
TRUST_PRINCIPAL_SETTING = "SMALLFIRST_LOCAL_PRINCIPAL_HEADER"


class PrincipalClaim(BaseModel):
    typ: str
    val: str


class ClientPrincipal(BaseModel):
    auth_typ: str = ""
    claims: list[PrincipalClaim] = []
    name_typ: str = ""
    role_typ: str = "roles"

    def values(self, *types: str) -> list[str]:
        return [c.val for t in types for c in self.claims if c.typ == t]

    @property
    def roles(self) -> set[str]:
        return set(self.values(self.role_typ, "roles"))

    @property
    def object_id(self) -> str:
        return next(iter(self.values(*OBJECT_ID_CLAIMS)), "")

    @property
    def identity(self) -> str:
        """Who decided, for the audit trail: the display name with the object id, which alone is unique."""
        name = next(iter(self.values(self.name_typ, *NAME_CLAIMS)), "")
        oid = self.object_id
        return f"{name} ({oid})" if name and oid else (name or oid)


def decode_principal(header: str | None) -> ClientPrincipal | None:
    """The principal in the header's value; None when there is none (an anonymous or key-only request). A value
    that is not the platform's format is an InputError `invalid_principal`, never a crash."""
    if not header:
        return None
    if len(header) > MAX_HEADER_CHARS:
        raise InputError("invalid_principal", "the client principal header is too long")
    try:
        return ClientPrincipal.model_validate_json(base64.b64decode(header, validate=True))
    except (binascii.Error, ValidationError, ValueError):
        raise InputError("invalid_principal", "the client principal header is not base64 JSON claims") from None


def encode_principal(principal: ClientPrincipal) -> str:
    """The header's value for `principal`, as the platform writes it (the local host's tests imitate it)."""
    return base64.b64encode(principal.model_dump_json().encode("utf-8")).decode("ascii")


def principal_header_trusted(environ: Mapping[str, str]) -> bool:
    """Whether X-MS-CLIENT-PRINCIPAL can be believed here: App Service Authentication is on (it drops a
    client-sent header and sets its own), or the local setting says the requests imitate it. Elsewhere anyone can
    send the header, so it is ignored."""
    return (environ.get(AUTH_ENABLED_SETTING, "").strip().lower() == "true"
            or environ.get(TRUST_PRINCIPAL_SETTING, "").strip().lower() == "trust")

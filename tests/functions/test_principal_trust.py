"""The functions layer believes X-MS-CLIENT-PRINCIPAL only where App Service Authentication is on or the local trust
setting is given: under Core Tools (`func start`) nothing strips a client-sent one."""

from __future__ import annotations

import json

import azure.functions as func
import pytest

from functions.http_api import authorized
from shared.foundation.principal import (AUTH_ENABLED_SETTING, PRINCIPAL_HEADER, REVIEWER_ROLE,
                                         TRUST_PRINCIPAL_SETTING, ClientPrincipal, PrincipalClaim, encode_principal,
                                         principal_header_trusted)

REVIEWER = encode_principal(ClientPrincipal(auth_typ="aad", name_typ="name", claims=[
    PrincipalClaim(typ="name", val="Ana"), PrincipalClaim(typ="oid", val="oid-ana"),
    PrincipalClaim(typ="roles", val=REVIEWER_ROLE)]))


def review_request() -> func.HttpRequest:
    return func.HttpRequest(method="GET", url="http://localhost/api/review/t", headers={PRINCIPAL_HEADER: REVIEWER},
                            body=b"")


@pytest.fixture
def no_signal(monkeypatch):
    monkeypatch.delenv(AUTH_ENABLED_SETTING, raising=False)
    monkeypatch.delenv(TRUST_PRINCIPAL_SETTING, raising=False)
    return monkeypatch


@pytest.mark.parametrize("setting,value", [(None, None), (AUTH_ENABLED_SETTING, "False"), (AUTH_ENABLED_SETTING, ""),
                                           (TRUST_PRINCIPAL_SETTING, "yes"), (TRUST_PRINCIPAL_SETTING, "")],
                         ids=["core-tools", "easy-auth-off", "easy-auth-empty", "trust-misspelt", "trust-empty"])
def test_a_reviewers_principal_header_is_ignored_without_the_signal(no_signal, setting, value):
    if setting:
        no_signal.setenv(setting, value)
    principal, refused = authorized(review_request(), REVIEWER_ROLE)
    assert principal is None and refused.status_code == 401
    assert json.loads(refused.get_body())["code"] == "not_authenticated"


@pytest.mark.parametrize("setting,value", [(AUTH_ENABLED_SETTING, "True"), (AUTH_ENABLED_SETTING, "true"),
                                           (TRUST_PRINCIPAL_SETTING, "trust")],
                         ids=["easy-auth-on", "easy-auth-on-lowercase", "local-trust"])
def test_a_reviewers_principal_header_is_honoured_with_the_signal(no_signal, setting, value):
    no_signal.setenv(setting, value)
    principal, refused = authorized(review_request(), REVIEWER_ROLE)
    assert refused is None and principal.identity == "Ana (oid-ana)"


def test_the_trust_rule_reads_only_the_two_settings():
    assert not principal_header_trusted({})
    assert principal_header_trusted({AUTH_ENABLED_SETTING: " TRUE "})
    assert not principal_header_trusted({"WEBSITE_SITE_NAME": "app", TRUST_PRINCIPAL_SETTING: "false"})

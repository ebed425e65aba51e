"""CrossGuard policies, called directly; and every resource the program builds passes them."""

from __future__ import annotations

import sys
from dataclasses import dataclass

import pytest

from tests.infra.conftest import INFRA

sys.path.insert(0, str(INFRA / "policy"))
from policies import POLICIES, ai_services_keyless, containers_not_public, storage_account_locked_down, web_apps_https_only  # noqa: E402

from smallfirst_infra.config import EnvironmentConfig  # noqa: E402
from tests.infra.mocks import build  # noqa: E402


@dataclass
class Args:
    resource_type: str
    props: dict


def violations(validate, resource_type: str, props: dict) -> list[str]:
    found: list[str] = []
    validate(Args(resource_type, props), lambda message, urn=None: found.append(message))
    return found


GOOD_STORAGE = {"allowSharedKeyAccess": False, "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False,
                "enableHttpsTrafficOnly": True}


def test_storage_policy():
    assert violations(storage_account_locked_down, "azure-native:storage:StorageAccount", GOOD_STORAGE) == []
    bad = violations(storage_account_locked_down, "azure-native:storage:StorageAccount",
                     {"minimumTlsVersion": "TLS1_0", "enableHttpsTrafficOnly": False})
    assert len(bad) == 4
    assert violations(storage_account_locked_down, "azure-native:web:WebApp", {}) == []


@pytest.mark.parametrize("validate,typ,good,bad", [
    (containers_not_public, "azure-native:storage:BlobContainer", {"publicAccess": "None"}, {"publicAccess": "Blob"}),
    (ai_services_keyless, "azure-native:cognitiveservices:Account",
     {"properties": {"disableLocalAuth": True, "customSubDomainName": "x"}}, {"properties": {"disableLocalAuth": False}}),
    (web_apps_https_only, "azure-native:web:WebApp", {"httpsOnly": True}, {"httpsOnly": False}),
])
def test_policies_accept_good_and_reject_bad(validate, typ, good, bad):
    assert violations(validate, typ, good) == []
    assert violations(validate, typ, bad)


def test_the_program_passes_every_policy(tmp_path):
    mocks = build(EnvironmentConfig(enable_managed_compute=True), tmp_path)
    for resource in mocks.resources:
        for name, (validate, _) in POLICIES.items():
            assert violations(validate, resource.typ, resource.inputs) == [], (name, resource.name)

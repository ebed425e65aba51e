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
    EnvironmentConfig(enable_managed_compute=True,
                      managed_compute_model_id="azureml://registries/azureml/models/Phi-4/versions/3"),
    EnvironmentConfig(small_model_hosting=SmallModelHosting.SERVERLESS_ENDPOINT)], ids=["compute", "serverless"])
def test_the_program_passes_every_policy(config, tmp_path):
    mocks = build(config, tmp_path)
    for resource in mocks.resources:
        for name, (validate, _) in policies.POLICIES.items():
            assert violations(validate, resource.typ, resource.inputs) == [], (name, resource.name)

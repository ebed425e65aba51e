"""Before `pulumi up`: would the region take the model deployments this stack asks for?

    python -m smallfirst_infra.preflight --location swedencentral [--stack-config Pulumi.dev.yaml]

With your Azure credential (DefaultAzureCredential: `az login`, or a pipeline's service principal) it reads the
region's model catalogue and the subscription's quota from Azure Resource Manager (plain GETs) and checks each
Cognitive Services deployment the stack config creates (small tier, frontier, embeddings): model and version offered
in the region, SKU offered for it, enough quota for the capacity asked, and no version retired or about to be.
One line per deployment: OK, or a PROBLEM that `pulumi up` would fail on (exit status 1).

ARM operations (Microsoft.CognitiveServices stable 2026-07-01, azure-rest-api-specs, checked 2026-12-06):
Models_List `GET /subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{location}/models`
and Usages_List `GET /subscriptions/{sub}/providers/Microsoft.CognitiveServices/locations/{location}/usages`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Iterator, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smallfirst_infra.config import EnvironmentConfig, ModelDeployment

ARM_ENDPOINT = "https://management.azure.com"
ARM_SCOPE = "https://management.azure.com/.default"
# The newest stable Microsoft.CognitiveServices version in Azure/azure-rest-api-specs (Models - List,
# https://learn.microsoft.com/rest/api/aiservices/accountmanagement/models/list; Usages - List), checked 2026-12-06.
COGNITIVE_SERVICES_API_VERSION = "2026-07-01"
# Subscriptions - List (https://learn.microsoft.com/rest/api/resources/subscriptions/list), checked 2026-12-06.
SUBSCRIPTIONS_API_VERSION = "2022-12-01"
# The kind of account infra/ creates: the catalogue lists each model once per account kind that offers it.
ACCOUNT_KIND = "AIServices"
# A version retiring this soon is a problem too: Azure stops new deployments of it before the date.
RETIREMENT_WARNING = timedelta(days=60)
RETIRED_STATUSES = {"deprecated", "retired"}


class Credential(Protocol):
    def get_token(self, *scopes: str): ...


class _Arm(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class ModelSku(_Arm):
    name: str
    usage_name: str | None = Field(None, alias="usageName")
    deprecation_date: datetime | None = Field(None, alias="deprecationDate")


class Deprecation(_Arm):
    inference: datetime | None = None


class CatalogueModel(_Arm):
    format: str
    name: str
    version: str
    is_default_version: bool = Field(False, alias="isDefaultVersion")
    skus: list[ModelSku] = []
    deprecation: Deprecation | None = None
    lifecycle_status: str | None = Field(None, alias="lifecycleStatus")


class LocationModel(_Arm):
    kind: str | None = None
    model: CatalogueModel


class UsageName(_Arm):
    value: str


class Usage(_Arm):
    name: UsageName
    current_value: float = Field(0, alias="currentValue")
    limit: float = 0


@dataclass(frozen=True)
class Finding:
    role: str
    problem: bool
    text: str

    def line(self) -> str:
        return f"{'PROBLEM' if self.problem else 'OK'} {self.role}: {self.text}"


class Arm:
    """Plain ARM GETs with a bearer token; list operations follow `nextLink` (an absolute URL)."""

    def __init__(self, credential: Credential, endpoint: str = ARM_ENDPOINT, timeout_s: float = 60.0) -> None:
        self.credential = credential
        self.endpoint = endpoint.rstrip("/")
        self.timeout_s = timeout_s

    def list(self, path: str, api_version: str) -> Iterator[dict]:
        url: str | None = f"{self.endpoint}{path}?api-version={api_version}"
        while url:
            page = self.get(url, path)
            yield from page.get("value", [])
            url = page.get("nextLink")

    def get(self, url: str, path: str) -> dict:
        token = self.credential.get_token(ARM_SCOPE).token
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")[:500]
            raise PreflightError(f"GET {path} answered {error.code}: {body}") from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise PreflightError(f"GET {path}: no answer from Azure Resource Manager ({error})") from error
        except json.JSONDecodeError as error:
            raise PreflightError(f"GET {path}: the answer is not JSON ({error})") from error


class PreflightError(Exception):
    """ARM could not be read: not a finding about the deployments."""


def region_catalogue(arm: Arm, subscription: str, location: str) -> list[CatalogueModel]:
    path = f"/subscriptions/{subscription}/providers/Microsoft.CognitiveServices/locations/{location}/models"
    entries = [LocationModel.model_validate(item) for item in arm.list(path, COGNITIVE_SERVICES_API_VERSION)]
    return [entry.model for entry in entries if (entry.kind or ACCOUNT_KIND).lower() == ACCOUNT_KIND.lower()]


def region_usages(arm: Arm, subscription: str, location: str) -> dict[str, Usage]:
    path = f"/subscriptions/{subscription}/providers/Microsoft.CognitiveServices/locations/{location}/usages"
    usages = (Usage.model_validate(item) for item in arm.list(path, COGNITIVE_SERVICES_API_VERSION))
    return {usage.name.value.lower(): usage for usage in usages}


def check_deployment(role: str, wanted: ModelDeployment, catalogue: list[CatalogueModel],
                     usages: dict[str, Usage], location: str, today: date) -> list[Finding]:
    """What `pulumi up` would meet creating this deployment, from the catalogue and the quota."""
    setting = {"small": "smallModel", "frontier": "frontierModel", "embeddings": "embeddingsModel"}[role]
    versions = [m for m in catalogue
                if m.name.lower() == wanted.name.lower() and m.format.lower() == wanted.format.lower()]
    if not versions:
        return [Finding(role, True, f"{wanted.format} model {wanted.name} is not offered in {location} "
                                    f"(set smallfirst:{setting}Name, or choose another region)")]
    if wanted.version:
        chosen = next((m for m in versions if m.version == wanted.version), None)
        if chosen is None:
            offered = ", ".join(sorted(m.version for m in versions))
            return [Finding(role, True, f"{wanted.name} version {wanted.version} is not offered in {location} "
                                        f"(offered: {offered}; set smallfirst:{setting}Version, or leave it "
                                        "unset for the default version)")]
    else:
        chosen = next((m for m in versions if m.is_default_version), None) or max(versions, key=lambda m: m.version)
    described = f"{chosen.name} {chosen.version}{'' if wanted.version else ' (the default version)'}"
    findings: list[Finding] = []

    sku = next((s for s in chosen.skus if s.name.lower() == wanted.sku.lower()), None)
    if sku is None:
        offered = ", ".join(sorted(s.name for s in chosen.skus)) or "none"
        findings.append(Finding(role, True, f"{described} is not offered as {wanted.sku} in {location} "
                                            f"(offered: {offered}; set smallfirst:{setting}Sku)"))

    retirements = []
    if chosen.deprecation and chosen.deprecation.inference:
        retirements.append((chosen.deprecation.inference, "retirement"))
    if sku and sku.deprecation_date:
        retirements.append((sku.deprecation_date, f"{wanted.sku} deprecation"))
    for when, what in retirements:
        if when.date() <= today:
            findings.append(Finding(role, True, f"{described} is past its {what} date {when.date()} "
                                                f"(choose a current model or version: smallfirst:{setting}Name)"))
        elif when.date() - today <= RETIREMENT_WARNING:
            findings.append(Finding(role, True, f"{described} reaches its {what} date {when.date()} in "
                                                f"{(when.date() - today).days} days (choose a newer version)"))
    if (chosen.lifecycle_status or "").lower() in RETIRED_STATUSES:
        findings.append(Finding(role, True, f"{described} is {chosen.lifecycle_status}: Azure takes no new "
                                            "deployments of it"))

    if sku is not None and sku.usage_name:
        usage = usages.get(sku.usage_name.lower())
        if usage is None:
            findings.append(Finding(role, True, f"no quota {sku.usage_name} in {location} for {described} "
                                                f"{wanted.sku} (request quota, or choose another region)"))
        elif usage.current_value + wanted.capacity > usage.limit:
            free = max(usage.limit - usage.current_value, 0)
            findings.append(Finding(role, True, f"{described} {wanted.sku} asks capacity {wanted.capacity} but "
                                                f"{sku.usage_name} has {free:g} of {usage.limit:g} free in {location} "
                                                f"(lower smallfirst:{setting}Capacity, or request quota)"))
        elif not findings:
            findings.append(Finding(role, False, f"{described} {wanted.sku} in {location}, capacity "
                                                 f"{wanted.capacity} of {usage.limit - usage.current_value:g} free "
                                                 f"({sku.usage_name})"))
    if not findings:
        findings.append(Finding(role, False, f"{described} {wanted.sku} in {location}"))
    return findings


def preflight(config: EnvironmentConfig, location: str, subscription: str, arm: Arm, today: date) -> list[Finding]:
    catalogue = region_catalogue(arm, subscription, location)
    usages = region_usages(arm, subscription, location)
    return [finding for role, wanted in config.deployments().items()
            for finding in check_deployment(role, wanted, catalogue, usages, location, today)]


def default_subscription(arm: Arm) -> str:
    """AZURE_SUBSCRIPTION_ID (or ARM_SUBSCRIPTION_ID, as Pulumi reads it), else the only one the credential sees."""
    for variable in ("AZURE_SUBSCRIPTION_ID", "ARM_SUBSCRIPTION_ID"):
        if os.environ.get(variable):
            return os.environ[variable]
    subscriptions = [item["subscriptionId"] for item in arm.list("/subscriptions", SUBSCRIPTIONS_API_VERSION)]
    if len(subscriptions) == 1:
        return subscriptions[0]
    raise PreflightError(f"{len(subscriptions)} subscriptions are visible to this credential: name one with "
                         "--subscription (or AZURE_SUBSCRIPTION_ID)")


def main(argv: list[str] | None = None, credential: Credential | None = None, arm_endpoint: str = ARM_ENDPOINT,
         today: date | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smallfirst_infra.preflight", description=__doc__.split("\n")[0])
    parser.add_argument("--location", required=True, help="the Azure region `pulumi up` deploys to")
    parser.add_argument("--stack-config", type=Path, help="Pulumi.<stack>.yaml (default: the program's defaults)")
    parser.add_argument("--subscription", help="subscription id (default: AZURE_SUBSCRIPTION_ID, or the only one)")
    args = parser.parse_args(argv)
    try:
        config = EnvironmentConfig.from_stack_file(args.stack_config) if args.stack_config else EnvironmentConfig()
        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        arm = Arm(credential, arm_endpoint)
        subscription = args.subscription or default_subscription(arm)
        findings = preflight(config, args.location.lower(), subscription, arm, today or date.today())
    except (ValueError, PreflightError, ValidationError) as error:
        print(f"preflight could not run: {error}", file=sys.stderr)
        return 2
    except Exception as error:  # azure-identity's CredentialUnavailableError and kin: say so, no traceback
        if type(error).__module__.startswith("azure."):
            print(f"preflight could not get an Azure token ({type(error).__name__}): {error}; run `az login`",
                  file=sys.stderr)
            return 2
        raise
    for finding in findings:
        print(finding.line())
    return 1 if any(finding.problem for finding in findings) else 0


if __name__ == "__main__":
    sys.exit(main())

"""Pulumi mocks that behave like azure-native where it matters: autonaming, name rules, computed outputs.

Like the real provider, a resource without an explicit name gets its logical name plus 8 random characters;
every resulting name is checked against Azure's rule for its type (tests/infra/azure_names.py) and problems are
collected in `name_problems`. `dependencies` records what each resource waits for, as the engine orders a
`pulumi up`.
"""

from __future__ import annotations

import random
import string
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime.mocks import MockMonitor

from tests.infra.azure_names import RULES, UNNAMED_TYPES, autoname

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"
REGION = "swedencentral"
SERVERLESS_KEY = "serverless-primary-key"
SECRET_SIGNATURE = "4dabf18193072939515e22adb298388d"


# ARM ids for the resources that are role assignment scopes or private link targets: the policy pack reads a
# scope's resource type from its id, as it would from Azure's.
ARM_PATHS = {
    "azure-native:resources:ResourceGroup": lambda i, name: f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}",
    "azure-native:storage:StorageAccount": lambda i, name: f"{RG_PROVIDERS}/Microsoft.Storage/storageAccounts/{name}",
    "azure-native:storage:BlobContainer": lambda i, name: (
        f"{RG_PROVIDERS}/Microsoft.Storage/storageAccounts/{i['accountName']}/blobServices/default/containers/{name}"),
    "azure-native:storage:Queue": lambda i, name: (
        f"{RG_PROVIDERS}/Microsoft.Storage/storageAccounts/{i['accountName']}/queueServices/default/queues/{name}"),
    "azure-native:cognitiveservices:Account": lambda i, name: f"{RG_PROVIDERS}/Microsoft.CognitiveServices/accounts/{name}",
    "azure-native:applicationinsights:Component": lambda i, name: f"{RG_PROVIDERS}/Microsoft.Insights/components/{name}",
    "azure-native:keyvault:Vault": lambda i, name: f"{RG_PROVIDERS}/Microsoft.KeyVault/vaults/{name}",
    "azure-native:keyvault:Secret": lambda i, name: (
        f"{RG_PROVIDERS}/Microsoft.KeyVault/vaults/{i['vaultName']}/secrets/{name}"),
    "azure-native:machinelearningservices:Workspace": lambda i, name: (
        f"{RG_PROVIDERS}/Microsoft.MachineLearningServices/workspaces/{name}"),
    "azure-native:machinelearningservices:OnlineEndpoint": lambda i, name: (
        f"{RG_PROVIDERS}/Microsoft.MachineLearningServices/workspaces/{i['workspaceName']}/onlineEndpoints/{name}"),
    "azure-native:authorization:RoleDefinition": lambda i, name: (
        f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{name}"),
}
RG_PROVIDERS = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers"


def plain(value: Any) -> Any:
    """Inputs as the engine sees them, with Pulumi's secret wrappers removed."""
    if isinstance(value, dict):
        if value.get(SECRET_SIGNATURE) == "1b47061264138c4ac30d75fd1eb44270":
            return plain(value["value"])
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIGNATURE in value


@dataclass
class Registered:
    typ: str
    name: str  # the logical (Pulumi) name
    azure_name: str | None
    inputs: dict  # plain values
    raw_inputs: dict  # with secret wrappers, to check what is kept secret
    id: str
    outputs: dict


class AzureMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Registered] = []
        self.name_problems: list[str] = []
        self.dependencies: dict[str, set[str]] = {}  # logical name -> logical names it waits for
        self.rng = random.Random(7)

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        typ, logical = args.typ, args.name
        inputs = plain(dict(args.inputs))
        state = dict(inputs)
        azure_name = None
        rule = RULES.get(typ)
        if rule is not None:
            azure_name = inputs.get(rule.name_property) or autoname(logical, rule, self.rng)
            if problem := rule.problem(azure_name):
                self.name_problems.append(f"{typ} {logical}: {problem}")
            state[rule.name_property] = azure_name
            state["name"] = azure_name
        elif args.custom and typ not in UNNAMED_TYPES:
            self.name_problems.append(f"{typ} {logical}: no naming rule known for this type")
        arm_path = ARM_PATHS.get(typ)
        resource_id = arm_path(inputs, azure_name) if arm_path else f"{RG_PROVIDERS}/{typ}/{logical}"
        if typ.startswith("azure-native:"):
            state.setdefault("location", REGION)  # azure-native's default: the provider's location
        state |= self.computed_outputs(typ, azure_name, inputs)
        self.resources.append(Registered(typ, logical, azure_name, inputs, dict(args.inputs), resource_id, state))
        return [resource_id, state]

    def computed_outputs(self, typ: str, name: str | None, inputs: dict) -> dict:
        """What Azure (or the random provider) fills in after creation."""
        system_identity = {"principalId": f"principal-{name}", "type": "SystemAssigned"}
        if typ == "azure-native:storage:StorageAccount":
            return {"primaryEndpoints": {"blob": f"https://{name}.blob.core.windows.net/",
                                         "queue": f"https://{name}.queue.core.windows.net/"}}
        if typ == "azure-native:managedidentity:UserAssignedIdentity":
            return {"principalId": f"principal-{name}", "clientId": f"client-{name}"}
        if typ == "azure-native:cognitiveservices:Account":
            return {"properties": {**inputs.get("properties", {}),
                                   "endpoint": f"https://{name}.cognitiveservices.azure.com/"}}
        if typ == "azure-native:web:WebApp":
            identities = inputs.get("identity", {}).get("userAssignedIdentities") or []
            # Azure answers a map keyed by identity id.
            return {"defaultHostName": f"{name}.azurewebsites.net",
                    "identity": {**inputs.get("identity", {}), "userAssignedIdentities": {i: {} for i in identities}}}
        if typ == "azure-native:applicationinsights:Component":
            return {"connectionString": f"InstrumentationKey=ik-{name};IngestionEndpoint=https://ingest/"}
        if typ == "azure-native:eventgrid:SystemTopic" and inputs.get("identity", {}).get("type") == "SystemAssigned":
            return {"identity": system_identity}
        if typ == "azure-native:machinelearningservices:OnlineEndpoint":
            return {"properties": {**inputs.get("properties", {}),
                                   "scoringUri": f"https://{name}.{REGION}.inference.ml.azure.com/score"}}
        if typ == "azure-native:machinelearningservices:ServerlessEndpoint":
            return {"properties": {**inputs.get("properties", {}), "inferenceEndpoint": {
                "uri": f"https://{name}.{REGION}.models.ai.azure.com", "headers": {}}}}
        if typ == "azure-native:keyvault:Vault":
            return {"properties": {**inputs.get("properties", {}), "vaultUri": f"https://{name}.vault.azure.net/"}}
        if typ == "azure-native:keyvault:Secret":
            uri = f"https://{inputs['vaultName']}.vault.azure.net/secrets/{name}"
            return {"properties": {**inputs.get("properties", {}), "secretUri": uri,
                                   "secretUriWithVersion": f"{uri}/0123456789abcdef"}}
        if typ in ("random:index/randomString:RandomString", "random:index/randomPassword:RandomPassword"):
            alphabet = (string.ascii_lowercase if inputs.get("lower", True) else "") + (
                string.ascii_uppercase if inputs.get("upper", True) else "") + (
                string.digits if inputs.get("numeric", True) else "") + (
                "!@#$%&*" if inputs.get("special", True) else "")
            return {"result": "".join(self.rng.choices(alphabet, k=int(inputs["length"])))}
        if typ == "random:index/randomUuid:RandomUuid":
            return {"result": str(uuid.UUID(int=self.rng.getrandbits(128)))}
        if typ == "azuread:index/application:Application":
            client_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
            object_id = str(uuid.UUID(int=self.rng.getrandbits(128)))
            return {"clientId": client_id, "objectId": object_id}
        if typ == "azuread:index/servicePrincipal:ServicePrincipal":
            return {"objectId": str(uuid.UUID(int=self.rng.getrandbits(128)))}
        if typ == "pulumi-python:dynamic:Resource":
            return {"deployment_id": "mock-deployment"}
        return {}

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "azure-native:authorization:getClientConfig":
            return {"subscriptionId": SUBSCRIPTION, "tenantId": "tenant", "clientId": "me", "objectId": "me"}
        if args.token == "azure-native:machinelearningservices:listServerlessEndpointKeys":
            return {"primaryKey": SERVERLESS_KEY, "secondaryKey": "serverless-secondary-key"}
        return {}

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == f"azure-native:{typ}" or r.typ == typ]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"{typ}: {len(found)} resources"
        return found[0]

    def by_id(self, resource_id: str) -> Registered:
        return next(r for r in self.resources if r.id == resource_id)


class DependencyRecordingMonitor(MockMonitor):
    """Records what each resource waits for (depends_on and inputs), as the engine would order the deployment."""

    def RegisterResource(self, request):
        self.mocks.dependencies[request.name] = {urn.rsplit("::", 1)[-1] for urn in request.dependencies}
        return super().RegisterResource(request)


def build(config, package_dir: Path) -> AzureMocks:
    """Run the program under mocks, as `pulumi preview` would on a new stack, and return what it registered."""
    mocks = AzureMocks()
    pulumi.runtime.set_mocks(mocks, project="smallfirst", stack="dev", preview=False,
                             monitor=DependencyRecordingMonitor(mocks))
    from smallfirst_infra.environment import SmallfirstEnvironment

    @pulumi.runtime.test
    def program():
        env = SmallfirstEnvironment("smallfirst", config, package_dir=package_dir)
        return pulumi.Output.all(*env.outputs.values())

    program()
    return mocks

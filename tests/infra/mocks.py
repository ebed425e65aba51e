"""Pulumi mocks that record every resource and supply the outputs Azure would compute."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi

SUBSCRIPTION = "00000000-0000-0000-0000-000000000001"


@dataclass
class Registered:
    typ: str
    name: str
    inputs: dict
    id: str


class AzureMocks(pulumi.runtime.Mocks):
    def __init__(self) -> None:
        self.resources: list[Registered] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        name, typ = args.name, args.typ
        resource_id = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/{typ.split(':')[1]}/{name}"
        state = dict(args.inputs)
        state.setdefault("name", name)
        if typ == "azure-native:storage:StorageAccount":
            state["primaryEndpoints"] = {"blob": f"https://{name}.blob.core.windows.net/",
                                         "queue": f"https://{name}.queue.core.windows.net/"}
        elif typ == "azure-native:managedidentity:UserAssignedIdentity":
            state |= {"principalId": f"principal-{name}", "clientId": f"client-{name}"}
        elif typ == "azure-native:cognitiveservices:Account":
            state["properties"] = {**state.get("properties", {}),
                                   "endpoint": f"https://{name}.cognitiveservices.azure.com/"}
        elif typ == "azure-native:web:WebApp":
            state["defaultHostName"] = f"{name}.azurewebsites.net"
            identities = state.get("identity", {}).get("userAssignedIdentities")
            if isinstance(identities, list):  # Azure answers a map keyed by identity id
                state["identity"]["userAssignedIdentities"] = {i: {} for i in identities}
        elif typ == "azure-native:applicationinsights:Component":
            state["connectionString"] = f"InstrumentationKey=ik-{name};IngestionEndpoint=https://ingest/"
        elif typ == "azure-native:machinelearningservices:OnlineEndpoint":
            state["properties"] = {**state.get("properties", {}),
                                   "scoringUri": f"https://{name}.swedencentral.inference.ml.azure.com/score"}
        self.resources.append(Registered(typ, name, dict(args.inputs), resource_id))
        return [resource_id, state]

    def call(self, args: pulumi.runtime.MockCallArgs):
        if args.token == "azure-native:authorization:getClientConfig":
            return {"subscriptionId": SUBSCRIPTION, "tenantId": "tenant", "clientId": "me", "objectId": "me"}
        if args.token == "azure-native:web:listWebAppHostKeys":
            return {"masterKey": "m", "systemKeys": {"blobs_extension": "blobs-key"}, "functionKeys": {}}
        return {}

    def of_type(self, typ: str) -> list[Registered]:
        return [r for r in self.resources if r.typ == f"azure-native:{typ}"]

    def one(self, typ: str) -> Registered:
        found = self.of_type(typ)
        assert len(found) == 1, f"{typ}: {len(found)} resources"
        return found[0]


def build(config) -> AzureMocks:
    """Run the program under mocks and return what it registered."""
    mocks = AzureMocks()
    pulumi.runtime.set_mocks(mocks, project="smallfirst", stack="dev", preview=False)
    from smallfirst_infra.environment import SmallfirstEnvironment

    @pulumi.runtime.test
    def program():
        env = SmallfirstEnvironment("smallfirst", config)
        return pulumi.Output.all(*env.outputs.values())

    program()
    return mocks

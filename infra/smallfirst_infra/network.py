"""Private networking (stack config `privateNetworking: true`): a VNet the app's outbound traffic runs through,
private endpoints for every data plane it uses, and the private DNS zones that resolve their public names to them.

What it costs and what changes for a user outside the VNet: infra/README.md, "Private networking".
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import network, privatedns, resources

ADDRESS_SPACE = "10.40.0.0/16"
# Flex Consumption's VNet integration needs a subnet delegated to Microsoft.App/environments ("The subnet delegation
# required by Flex Consumption apps is Microsoft.App/environments",
# learn.microsoft.com/azure/azure-functions/flex-consumption-plan#considerations, checked 2026-12-06); a /24 leaves
# room for the plan's maximum scale-out.
APP_SUBNET = "10.40.0.0/24"
ENDPOINT_SUBNET = "10.40.1.0/24"
FLEX_SUBNET_DELEGATION = "Microsoft.App/environments"


@dataclass(frozen=True)
class PrivateLinkTarget:
    """A private endpoint's sub-resource (group id) and the private DNS zones its names resolve in
    (learn.microsoft.com/azure/private-link/private-endpoint-dns, checked 2026-12-06)."""

    group_id: str
    zones: tuple[str, ...]


BLOB = PrivateLinkTarget("blob", ("privatelink.blob.core.windows.net",))
QUEUE = PrivateLinkTarget("queue", ("privatelink.queue.core.windows.net",))
# One AI Services account answers on three host names: cognitiveservices, openai and services.ai.
AI_SERVICES = PrivateLinkTarget("account", ("privatelink.cognitiveservices.azure.com", "privatelink.openai.azure.com",
                                            "privatelink.services.ai.azure.com"))
KEY_VAULT = PrivateLinkTarget("vault", ("privatelink.vaultcore.azure.net",))


class PrivateNetwork(pulumi.ComponentResource):
    """The VNet, its two subnets, and one private endpoint (with its DNS zone group) per `connect` call."""

    def __init__(self, name: str, rg: resources.ResourceGroup, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:PrivateNetwork", name, None, opts)
        self.name = name
        self.rg = rg
        child = pulumi.ResourceOptions(parent=self)
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet", resource_group_name=rg.name, address_space={"address_prefixes": [ADDRESS_SPACE]},
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["subnets"]))
        self.app_subnet = network.Subnet(
            f"{name}-app", resource_group_name=rg.name, virtual_network_name=self.vnet.name,
            address_prefix=APP_SUBNET,
            delegations=[{"name": "flex-consumption", "service_name": FLEX_SUBNET_DELEGATION}], opts=child)
        # Subnets of one VNet are written one at a time, or Azure answers AnotherOperationInProgress.
        self.endpoint_subnet = network.Subnet(
            f"{name}-endpoints", resource_group_name=rg.name, virtual_network_name=self.vnet.name,
            address_prefix=ENDPOINT_SUBNET, private_endpoint_network_policies="Disabled",
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.app_subnet]))
        self.zones: dict[str, privatedns.PrivateZone] = {}
        self.endpoints: list[network.PrivateEndpoint] = []
        self.register_outputs({"app_subnet_id": self.app_subnet.id})

    def zone(self, zone_name: str) -> privatedns.PrivateZone:
        """The private DNS zone, created (and linked to the VNet) on first use."""
        if zone_name not in self.zones:
            label = zone_name.removeprefix("privatelink.").replace(".", "-")
            zone = privatedns.PrivateZone(
                f"{self.name}-{label}", resource_group_name=self.rg.name, private_zone_name=zone_name,
                location="global", opts=pulumi.ResourceOptions(parent=self))
            privatedns.VirtualNetworkLink(
                f"{self.name}-{label}-link", resource_group_name=self.rg.name, private_zone_name=zone.name,
                location="global", registration_enabled=False, virtual_network={"id": self.vnet.id},
                opts=pulumi.ResourceOptions(parent=self))
            self.zones[zone_name] = zone
        return self.zones[zone_name]

    def connect(self, label: str, resource_id: pulumi.Input[str], target: PrivateLinkTarget) -> network.PrivateEndpoint:
        """A private endpoint to one sub-resource of `resource_id`, registered in its zones."""
        endpoint = network.PrivateEndpoint(
            f"{self.name}-{label}", resource_group_name=self.rg.name, subnet={"id": self.endpoint_subnet.id},
            private_link_service_connections=[{
                "name": label, "private_link_service_id": resource_id, "group_ids": [target.group_id]}],
            opts=pulumi.ResourceOptions(parent=self))
        network.PrivateDnsZoneGroup(
            f"{self.name}-{label}-dns", resource_group_name=self.rg.name, private_endpoint_name=endpoint.name,
            private_dns_zone_group_name="default",
            private_dns_zone_configs=[
                {"name": zone_name.replace(".", "-"), "private_dns_zone_id": self.zone(zone_name).id}
                for zone_name in target.zones],
            opts=pulumi.ResourceOptions(parent=self))
        self.endpoints.append(endpoint)
        return endpoint

"""Storage accounts: one lockdown for all of them, and the app's data account."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import resources, storage

from shared.pipeline.blob_names import Containers
from smallfirst_infra.config import Retention

CONTAINERS = Containers()
DATA_CONTAINERS = tuple(CONTAINERS.all())
EVENTGRID_DEADLETTER_CONTAINER = "eventgrid-deadletter"
WORK_QUEUES = ("smallfirst-work", "smallfirst-work-poison", "smallfirst-shadow", "smallfirst-shadow-poison")
# Containers whose blobs carry item text (or, for Event Grid's dead letters, input names), and the Retention field
# that says how long each is kept. models/ holds trained heads and no item text: it is not expired.
RETAINED_CONTAINERS = {
    CONTAINERS.incoming: "incoming", CONTAINERS.results: "results", CONTAINERS.review: "review",
    CONTAINERS.deadletter: "deadletter", EVENTGRID_DEADLETTER_CONTAINER: "deadletter",
    CONTAINERS.corrections: "corrections", CONTAINERS.shadow: "shadow", CONTAINERS.claims: "claims",
}


def secure_storage_account(name: str, rg: resources.ResourceGroup, account_name: pulumi.Input[str],
                           opts: pulumi.ResourceOptions, private: bool = False,
                           trusted_services: bool = False) -> storage.StorageAccount:
    """StorageV2, Entra ID only (no shared keys), TLS 1.2, HTTPS only, nothing public.

    `private`: no public network access at all, only the private endpoints (network.py). `trusted_services` keeps
    the firewall's exception for Azure's trusted services instead: Event Grid writes dead letters with its
    system-assigned identity only through it ("If a firewall or virtual network rule is configured for the Azure
    Storage account, you can use only the system-assigned managed identity if Allow Azure services on the trusted
    service list ... is also enabled", learn.microsoft.com/azure/event-grid/handler-storage-queues, checked
    2026-12-06), and the exception is not honoured once public network access is Disabled.
    """
    network: dict = {}
    if private:
        network = {"public_network_access": "Disabled",
                   "network_rule_set": {"default_action": "Deny", "bypass": "None"}}
        if trusted_services:
            network = {"public_network_access": "Enabled",
                       "network_rule_set": {"default_action": "Deny", "bypass": "AzureServices"}}
    return storage.StorageAccount(
        name,
        resource_group_name=rg.name,
        account_name=account_name,
        kind="StorageV2",
        sku={"name": "Standard_LRS"},
        allow_shared_key_access=False,
        allow_blob_public_access=False,
        minimum_tls_version="TLS1_2",
        enable_https_traffic_only=True,
        default_to_o_auth_authentication=True,
        **network,
        opts=opts,
    )


def retention_rules(retention: Retention) -> list[dict]:
    """One lifecycle rule per container: delete a blob `days` after its last write. Block and append blobs (the
    shadow records are append blobs; lifecycle management deletes both)."""
    return [{
        "name": f"expire-{container}", "enabled": True, "type": "Lifecycle",
        "definition": {
            "filters": {"blob_types": ["blockBlob", "appendBlob"], "prefix_match": [f"{container}/"]},
            "actions": {"base_blob": {"delete": {"days_after_modification_greater_than": getattr(retention, field)}}},
        },
    } for container, field in RETAINED_CONTAINERS.items()]


class DataStorage(pulumi.ComponentResource):
    """The data account: the containers of shared/pipeline/blob_names.py, soft delete, the work queues, and
    lifecycle rules that delete what holds item text once its retention (stack config) has passed."""

    def __init__(self, name: str, rg: resources.ResourceGroup, account_name: pulumi.Input[str],
                 retention: Retention, private: bool = False, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:DataStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = secure_storage_account(f"{name}-account", rg, account_name, child, private=private,
                                              trusted_services=True)
        self.blob_properties = storage.BlobServiceProperties(
            f"{name}-blob-props", resource_group_name=rg.name, account_name=self.account.name, blob_services_name="default",
            delete_retention_policy={"enabled": True, "days": 7},
            container_delete_retention_policy={"enabled": True, "days": 7}, opts=child)
        self.containers = {
            container: storage.BlobContainer(
                f"{name}-{container}", resource_group_name=rg.name, account_name=self.account.name,
                container_name=container, public_access="None", opts=child)
            for container in (*DATA_CONTAINERS, EVENTGRID_DEADLETTER_CONTAINER)
        }
        self.queues = {
            queue: storage.Queue(f"{name}-{queue}", resource_group_name=rg.name, account_name=self.account.name,
                                 queue_name=queue, opts=child)
            for queue in WORK_QUEUES
        }
        self.lifecycle = storage.ManagementPolicy(
            f"{name}-lifecycle", resource_group_name=rg.name, account_name=self.account.name,
            management_policy_name="default",
            policy={"rules": retention_rules(retention)}, opts=child)
        self.register_outputs({"blob_endpoint": self.account.primary_endpoints.blob})

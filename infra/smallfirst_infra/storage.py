"""Storage accounts: one lockdown for all of them, and the app's data account."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import resources, storage

DATA_CONTAINERS = ("incoming", "results", "review", "deadletter", "claims", "shadow", "corrections", "models")
EVENTGRID_DEADLETTER_CONTAINER = "eventgrid-deadletter"
WORK_QUEUES = ("smallfirst-work", "smallfirst-work-poison", "smallfirst-shadow", "smallfirst-shadow-poison")
# A claim only has to outlive redeliveries of its queue message, which expires after 7 days (the queue default).
# A live worker's claim is rewritten by its heartbeat; what stays unmodified is shadow claims, and the claim and
# paid-for item records a worker killed after publishing left behind (no later delivery needs them).
CLAIMS_PREFIX = "claims/"
CLAIM_DAYS = 14


def secure_storage_account(name: str, rg: resources.ResourceGroup, account_name: pulumi.Input[str],
                           opts: pulumi.ResourceOptions) -> storage.StorageAccount:
    """StorageV2, Entra ID only (no shared keys), TLS 1.2, HTTPS only, nothing public."""
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
        opts=opts,
    )


class DataStorage(pulumi.ComponentResource):
    """The data account: the containers of shared/pipeline/blob_names.py, soft delete, the work queues, and a
    lifecycle rule that deletes claims once no message can still need them."""

    def __init__(self, name: str, rg: resources.ResourceGroup, account_name: pulumi.Input[str],
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:DataStorage", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.account = secure_storage_account(f"{name}-account", rg, account_name, child)
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
            policy={"rules": [{
                "name": "expire-claims", "enabled": True, "type": "Lifecycle",
                "definition": {
                    "filters": {"blob_types": ["blockBlob"], "prefix_match": [CLAIMS_PREFIX]},
                    "actions": {"base_blob": {"delete": {"days_after_modification_greater_than": CLAIM_DAYS}}},
                },
            }]}, opts=child)
        self.register_outputs({"blob_endpoint": self.account.primary_endpoints.blob})

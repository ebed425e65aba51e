"""The blob trigger from one `pulumi up`: system key, code, then the Event Grid subscription, in that order.

Flex Consumption runs blob triggers only through Event Grid: BlobCreated is delivered to the blob extension's
webhook, authenticated by the `blobs_extension` system key. The Functions host would create that key only when
the code first runs, which is why subscribing used to be a second step. Here the program owns the key (a random
secret in the Pulumi state, written with the ARM type `Microsoft.Web/sites/host/systemkeys`), publishes the code
itself, and creates the subscription only after both: Event Grid's validation handshake then reaches a running
`process_incoming_blob` with the right key.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_random as random
from pulumi_azure_native import eventgrid, resources

from smallfirst_infra import roles
from smallfirst_infra.package import build_package
from smallfirst_infra.publish import CodePublish, scm_url_for
from smallfirst_infra.roles import RoleAssignments
from smallfirst_infra.storage import EVENTGRID_DEADLETTER_CONTAINER, DataStorage

BLOB_FUNCTION = "process_incoming_blob"
BLOBS_EXTENSION_KEY = "blobs_extension"
INCOMING_SUBJECT = "/blobServices/default/containers/incoming/"

# An ARM deployment is the only way azure-native can write a host key: there is no typed resource for it.
SYSTEM_KEY_TEMPLATE = {
    "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
    "contentVersion": "1.0.0.0",
    "parameters": {"siteName": {"type": "string"}, "keyName": {"type": "string"},
                   "keyValue": {"type": "securestring"}},
    "resources": [{
        "type": "Microsoft.Web/sites/host/systemkeys",
        "apiVersion": "2024-04-01",
        "name": "[format('{0}/default/{1}', parameters('siteName'), parameters('keyName'))]",
        "properties": {"name": "[parameters('keyName')]", "value": "[parameters('keyValue')]"},
    }],
}


def blob_webhook_url(host_name: str, key: str) -> str:
    """The blob extension's Event Grid endpoint. A URL without its key would fail Event Grid's validation."""
    if not key:
        raise ValueError(
            f"the {BLOBS_EXTENSION_KEY} system key is empty, so Event Grid could not call {host_name}: "
            "the key comes from this program's random.RandomPassword; check that it is in the stack "
            "(`pulumi stack --show-urns | grep blobs-key`) and run `pulumi up` again")
    return (f"https://{host_name}/runtime/webhooks/blobs"
            f"?functionName=Host.Functions.{BLOB_FUNCTION}&code={key}")


class AppCode(pulumi.ComponentResource):
    """The app's blob extension key and its code package, published with one deploy."""

    def __init__(self, name: str, rg: resources.ResourceGroup, app_name: pulumi.Input[str],
                 default_host_name: pulumi.Input[str], source_dir: Path, package_dir: Path,
                 host_storage_roles: pulumi.Resource, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:AppCode", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.blobs_key = random.RandomPassword(f"{name}-blobs-key", length=48, special=False, opts=child)
        self.blobs_key_deployment = resources.Deployment(
            f"{name}-blobs-key", resource_group_name=rg.name,
            properties={"mode": "Incremental", "template": SYSTEM_KEY_TEMPLATE,
                        "parameters": {"siteName": {"value": app_name}, "keyName": {"value": BLOBS_EXTENSION_KEY},
                                       "keyValue": {"value": pulumi.Output.secret(self.blobs_key.result)}}},
            # The host keeps its keys, and the platform the package, in the host storage account.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[host_storage_roles]))
        package = build_package(source_dir)
        # One deploy restarts the host: after the key is written, so the extension starts with our key.
        self.publish = CodePublish(
            f"{name}-publish", scm_url=pulumi.Output.from_input(default_host_name).apply(scm_url_for),
            package_path=str(package.write(package_dir)), package_sha256=package.sha256,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.blobs_key_deployment]))
        self.package_files = package.files
        self.register_outputs({"package_sha256": package.sha256})


class BlobEvents(pulumi.ComponentResource):
    """BlobCreated under incoming/ -> the blob extension's webhook; undeliverable events dead-lettered."""

    def __init__(self, name: str, rg: resources.ResourceGroup, data: DataStorage,
                 default_host_name: pulumi.Input[str], code: AppCode, app_data_roles: pulumi.Resource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:BlobEvents", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The topic's own identity writes dead letters: the data account accepts no shared keys.
        self.topic = eventgrid.SystemTopic(
            f"{name}-topic", resource_group_name=rg.name, source=data.account.id,
            topic_type="Microsoft.Storage.StorageAccounts", identity={"type": "SystemAssigned"}, opts=child)
        self.deadletter_role = RoleAssignments(
            f"{name}-roles", self.topic.identity.principal_id,
            [("deadletter-writer", data.account.id, roles.STORAGE_BLOB_DATA_CONTRIBUTOR)], child)
        endpoint = pulumi.Output.secret(pulumi.Output.all(default_host_name, code.blobs_key.result).apply(
            lambda args: blob_webhook_url(*args)))
        self.subscription = eventgrid.SystemTopicEventSubscription(
            f"{name}-incoming", resource_group_name=rg.name, system_topic_name=self.topic.name,
            destination={"endpoint_type": "WebHook", "endpoint_url": endpoint},
            filter={"included_event_types": ["Microsoft.Storage.BlobCreated"],
                    "subject_begins_with": INCOMING_SUBJECT},
            event_delivery_schema="EventGridSchema",
            retry_policy={"max_delivery_attempts": 30, "event_time_to_live_in_minutes": 1440},
            dead_letter_with_resource_identity={
                "identity": {"type": "SystemAssigned"},
                "dead_letter_destination": {"endpoint_type": "StorageBlob", "resource_id": data.account.id,
                                            "blob_container_name": EVENTGRID_DEADLETTER_CONTAINER}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[
                code.blobs_key_deployment, code.publish, self.deadletter_role, app_data_roles]))
        self.register_outputs({})

"""The blob trigger from one `pulumi up`: code, then system key, then the Event Grid subscription, in that order.

Flex Consumption runs blob triggers only through Event Grid: BlobCreated is delivered to the blob extension's
webhook, authenticated by the `blobs_extension` system key. The Functions host would create that key only when
the code first runs, which is why subscribing used to be a second step. Here the program owns the key (a random
secret in the Pulumi state), publishes the code, then writes the key through ARM, retrying until the now running
host accepts it (host_key.py), and creates the subscription only after that: Event Grid's validation handshake
then reaches a running `process_incoming_blob` with the right key.
"""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_random as random
from pulumi_azure_native import eventgrid, resources

from smallfirst_infra import roles
from smallfirst_infra.host_key import HostSystemKey
from smallfirst_infra.package import build_package
from smallfirst_infra.publish import CodePublish, scm_url_for
from smallfirst_infra.roles import RoleAssignments
from smallfirst_infra.storage import EVENTGRID_DEADLETTER_CONTAINER, DataStorage

BLOB_FUNCTION = "process_incoming_blob"
BLOBS_EXTENSION_KEY = "blobs_extension"
INCOMING_SUBJECT = "/blobServices/default/containers/incoming/"

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
    """The app's code package, published with one deploy, then its blob extension key."""

    def __init__(self, name: str, rg: resources.ResourceGroup, subscription_id: pulumi.Input[str],
                 app_name: pulumi.Input[str], default_host_name: pulumi.Input[str], source_dir: Path,
                 package_dir: Path, host_storage_roles: pulumi.Resource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:AppCode", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        package = build_package(source_dir)
        # The platform keeps the package, and the host its keys, in the host storage account.
        self.publish = CodePublish(
            f"{name}-publish", scm_url=pulumi.Output.from_input(default_host_name).apply(scm_url_for),
            package_path=str(package.write(package_dir)), package_sha256=package.sha256,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[host_storage_roles]))
        self.blobs_key = random.RandomPassword(f"{name}-blobs-key", length=48, special=False, opts=child)
        # Only a running host takes a key write, so the key follows the publish (and is retried until it is taken).
        self.blobs_key_write = HostSystemKey(
            f"{name}-blobs-key-write", subscription_id=subscription_id, resource_group=rg.name, site_name=app_name,
            key_name=BLOBS_EXTENSION_KEY, key_value=self.blobs_key.result,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.publish]))
        self.package_files = package.files
        self.register_outputs({"package_sha256": package.sha256})


class BlobEvents(pulumi.ComponentResource):
    """BlobCreated under incoming/ -> the blob extension's webhook; undeliverable events dead-lettered."""

    def __init__(self, name: str, rg: resources.ResourceGroup, data: DataStorage,
                 default_host_name: pulumi.Input[str], code: AppCode, app_data_roles: pulumi.Resource,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("smallfirst:infra:BlobEvents", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # The topic's own identity writes dead letters: the data account accepts no shared keys. It is granted the
        # dead-letter container only (a container is a role assignment scope), not the account's item texts.
        self.topic = eventgrid.SystemTopic(
            f"{name}-topic", resource_group_name=rg.name, source=data.account.id,
            topic_type="Microsoft.Storage.StorageAccounts", identity={"type": "SystemAssigned"}, opts=child)
        self.deadletter_role = RoleAssignments(
            f"{name}-roles", self.topic.identity.principal_id,
            [("deadletter-writer", data.containers[EVENTGRID_DEADLETTER_CONTAINER].id,
              roles.STORAGE_BLOB_DATA_CONTRIBUTOR)], child)
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
                code.blobs_key_write, code.publish, self.deadletter_role, app_data_roles]))
        self.register_outputs({})

"""Storage clients from a Functions-style connection setting, and the blob operations the pipeline uses.

A connection named NAME is either a connection string in the setting NAME (Azurite locally:
UseDevelopmentStorage=true), or identity-based: NAME__blobServiceUri / NAME__queueServiceUri, with
NAME__clientId for a user-assigned managed identity.
"""

from __future__ import annotations

import json
import os
from typing import Any, Mapping

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContentSettings
from azure.storage.queue import QueueClient, QueueServiceClient, TextBase64DecodePolicy, TextBase64EncodePolicy


def _credential(connection: str, env: Mapping[str, str]):
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = env.get(f"{connection}__clientId")
    return ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()


def blob_service(connection: str, env: Mapping[str, str] | None = None) -> BlobServiceClient:
    env = os.environ if env is None else env
    if env.get(connection):
        return BlobServiceClient.from_connection_string(env[connection])
    uri = env.get(f"{connection}__blobServiceUri") or env.get(f"{connection}__serviceUri")
    if not uri:
        raise KeyError(f"storage connection {connection!r}: set {connection} or {connection}__blobServiceUri")
    return BlobServiceClient(uri, credential=_credential(connection, env))


def queue_service(connection: str, env: Mapping[str, str] | None = None) -> QueueServiceClient:
    env = os.environ if env is None else env
    if env.get(connection):
        return QueueServiceClient.from_connection_string(env[connection])
    uri = env.get(f"{connection}__queueServiceUri")
    if not uri:
        raise KeyError(f"storage connection {connection!r}: set {connection} or {connection}__queueServiceUri")
    return QueueServiceClient(uri, credential=_credential(connection, env))


def queue_client(service: QueueServiceClient, name: str) -> QueueClient:
    """Base64 text messages: what the Functions queue trigger expects by default."""
    return service.get_queue_client(
        name, message_encode_policy=TextBase64EncodePolicy(), message_decode_policy=TextBase64DecodePolicy()
    )


def ensure_queue(client: QueueClient) -> QueueClient:
    """Create the queue unless it exists; returns the client."""
    try:
        client.create_queue()
    except ResourceExistsError:
        pass
    return client


class BlobStore:
    """The few blob operations the pipeline needs, on one account."""

    def __init__(self, service: BlobServiceClient) -> None:
        self.service = service

    def ensure_containers(self, names: list[str]) -> None:
        for name in names:
            try:
                self.service.create_container(name)
            except ResourceExistsError:
                pass

    def metadata(self, container: str, name: str) -> dict[str, str] | None:
        try:
            return dict(self.service.get_blob_client(container, name).get_blob_properties().metadata)
        except ResourceNotFoundError:
            return None

    def read(self, container: str, name: str) -> bytes:
        return self.service.get_blob_client(container, name).download_blob().readall()

    def write(self, container: str, name: str, data: str | bytes, *, content_type: str, metadata: dict[str, str]) -> None:
        self.service.get_blob_client(container, name).upload_blob(
            data, overwrite=True, metadata=metadata, content_settings=ContentSettings(content_type=content_type)
        )

    def write_json(self, container: str, name: str, obj: Any, metadata: dict[str, str]) -> None:
        self.write(container, name, json.dumps(obj, ensure_ascii=False, indent=2), content_type="application/json",
                   metadata=metadata)

    def write_jsonl(self, container: str, name: str, rows: list[str], metadata: dict[str, str]) -> None:
        self.write(container, name, "".join(row + "\n" for row in rows), content_type="application/x-ndjson",
                   metadata=metadata)

    def list_names(self, container: str, prefix: str) -> list[str]:
        return [b.name for b in self.service.get_container_client(container).list_blobs(name_starts_with=prefix)]

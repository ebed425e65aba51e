"""Storage clients from a Functions-style connection setting: the pipeline's blobs and queues, and the trained
tier's head store, reach storage the same way.

A connection named NAME is either a connection string in the setting NAME (Azurite locally:
UseDevelopmentStorage=true), or identity-based: NAME__blobServiceUri / NAME__queueServiceUri, with
NAME__clientId for a user-assigned managed identity.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

from azure.storage.blob import BlobServiceClient
from azure.storage.queue import QueueServiceClient


def _credential(connection: str, env: Mapping[str, str]):
    from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

    client_id = env.get(f"{connection}__clientId")
    return ManagedIdentityCredential(client_id=client_id) if client_id else DefaultAzureCredential()


def blob_service(connection: str, env: Mapping[str, str] | None = None, **options: Any) -> BlobServiceClient:
    """`options` go to the client (e.g. a retry policy)."""
    env = os.environ if env is None else env
    if env.get(connection):
        return BlobServiceClient.from_connection_string(env[connection], **options)
    uri = env.get(f"{connection}__blobServiceUri") or env.get(f"{connection}__serviceUri")
    if not uri:
        raise KeyError(f"storage connection {connection!r}: set {connection} or {connection}__blobServiceUri")
    return BlobServiceClient(uri, credential=_credential(connection, env), **options)


def queue_service(connection: str, env: Mapping[str, str] | None = None) -> QueueServiceClient:
    env = os.environ if env is None else env
    if env.get(connection):
        return QueueServiceClient.from_connection_string(env[connection])
    uri = env.get(f"{connection}__queueServiceUri")
    if not uri:
        raise KeyError(f"storage connection {connection!r}: set {connection} or {connection}__queueServiceUri")
    return QueueServiceClient(uri, credential=_credential(connection, env))

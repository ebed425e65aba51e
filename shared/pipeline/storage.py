"""The blob and queue operations the pipeline uses; the clients come from a connection setting
(shared/foundation/storage_connections.py)."""

from __future__ import annotations

import hashlib
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, TypeVar
from urllib.parse import quote, unquote

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.storage.blob import ContentSettings
from azure.storage.queue import QueueClient, TextBase64DecodePolicy, TextBase64EncodePolicy

from shared.errors import WriteConflict

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

T = TypeVar("T")

# What a metadata value keeps as it is: printable ASCII but '%', so that reading decodes exactly what was written
# (a manifest's metadata is read back and written again).
HEADER_SAFE = "".join(c for c in string.printable if c not in "\t\n\r\x0b\x0c%")
METADATA_VALUE_MAX_CHARS = 1024


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


@dataclass(frozen=True)
class BlobState:
    etag: str
    metadata: dict[str, str]


def _header_value(value: str) -> str:
    """`value` percent-encoded; past METADATA_VALUE_MAX_CHARS, its start and its hash (metadata names an input for
    people to read: Azure takes 8 KB of it in all, and an input's name in a script of three-byte characters
    is nine times longer encoded)."""
    encoded = quote(value, safe=HEADER_SAFE)
    if len(encoded) <= METADATA_VALUE_MAX_CHARS:
        return encoded
    start, room = [], METADATA_VALUE_MAX_CHARS - 17
    for char in value:  # whole characters, so the start decodes as it was written
        piece = quote(char, safe=HEADER_SAFE)
        if len(piece) > room:
            break
        start.append(piece)
        room -= len(piece)
    return f"{''.join(start)}~{hashlib.sha256(value.encode('utf-8')).hexdigest()[:16]}"


def _metadata(stored: dict[str, str] | None) -> dict[str, str]:
    """Metadata as written to `BlobStore.write`, which percent-encodes it for HTTP headers."""
    return {key: unquote(value) for key, value in (stored or {}).items()}


def _listed(listing: Iterable[T]) -> list[T]:
    """Everything a listing gives; nothing from a container that does not exist (yet), as `state` finds no blob."""
    try:
        return list(listing)
    except ResourceNotFoundError as exc:
        if exc.error_code != "ContainerNotFound":
            raise
        return []


class BlobStore:
    """The blob operations the pipeline needs, on one account; writes can be conditional on an etag."""

    def __init__(self, service: BlobServiceClient) -> None:
        self.service = service

    def ensure_containers(self, names: list[str]) -> None:
        for name in names:
            try:
                self.service.create_container(name)
            except ResourceExistsError:
                pass

    def state(self, container: str, name: str) -> BlobState | None:
        try:
            props = self.service.get_blob_client(container, name).get_blob_properties()
        except ResourceNotFoundError:
            return None
        return BlobState(props.etag, _metadata(props.metadata))

    def read(self, container: str, name: str, *, etag: str | None = None) -> bytes:
        """The blob's bytes; with `etag`, only if it is still that version (else WriteConflict)."""
        condition = {"etag": etag, "match_condition": MatchConditions.IfNotModified} if etag else {}
        try:
            return self.service.get_blob_client(container, name).download_blob(**condition).readall()
        except (ResourceModifiedError, ResourceNotFoundError) as exc:
            raise WriteConflict(f"{container}/{name} changed or is gone") from exc

    def write(self, container: str, name: str, data: str | bytes, *, content_type: str, metadata: dict[str, str],
              replacing: BlobState | None = None, only_if_absent: bool = False) -> str:
        """Write and return the new etag. `replacing`: only over that version; `only_if_absent`: only if none.
        Metadata travels in HTTP headers, which take ASCII only: other characters (an input named in any
        script) are percent-encoded, and a long value is shortened (`_header_value`)."""
        metadata = {key: _header_value(value) for key, value in metadata.items()}
        if replacing is not None:
            condition: dict[str, Any] = {"overwrite": True, "etag": replacing.etag,
                                         "match_condition": MatchConditions.IfNotModified}
        else:
            condition = {"overwrite": not only_if_absent}
        try:
            result = self.service.get_blob_client(container, name).upload_blob(
                data, metadata=metadata, content_settings=ContentSettings(content_type=content_type), **condition)
        except ResourceNotFoundError as exc:
            if exc.error_code == "ContainerNotFound":
                raise
            raise WriteConflict(f"{container}/{name}: gone since it was read") from exc
        except (ResourceExistsError, ResourceModifiedError) as exc:
            raise WriteConflict(f"{container}/{name}: {type(exc).__name__}") from exc
        return result["etag"]

    def append_line(self, container: str, name: str, line: str) -> None:
        """Append one line to an append blob, creating it if absent (each append is atomic; writers never race)."""
        client = self.service.get_blob_client(container, name)
        try:
            client.create_append_blob(content_settings=ContentSettings(content_type="application/x-ndjson"),
                                      if_none_match="*")
        except ResourceExistsError:
            pass
        client.append_block((line.rstrip("\n") + "\n").encode("utf-8"))

    def delete(self, container: str, name: str, state: BlobState | None = None) -> bool:
        """Delete (only that version, with `state`); False if it was already gone or had changed."""
        condition = {"etag": state.etag, "match_condition": MatchConditions.IfNotModified} if state else {}
        try:
            self.service.get_blob_client(container, name).delete_blob(**condition)
        except (ResourceNotFoundError, ResourceModifiedError):
            return False
        return True

    def count(self, container: str, prefix: str) -> int:
        """How many blobs are under `prefix`: names alone, a few times cheaper to list than with their metadata."""
        return len(_listed(self.service.get_container_client(container).list_blob_names(name_starts_with=prefix)))

    def list_states(self, container: str, prefix: str) -> dict[str, BlobState]:
        """The blobs under `prefix`, with their etags and metadata."""
        blobs = self.service.get_container_client(container).list_blobs(name_starts_with=prefix, include=["metadata"])
        return {b.name: BlobState(b.etag, _metadata(b.metadata)) for b in _listed(blobs)}

"""Where head artifacts live: a small key/bytes store with a local-folder and an Azure Blob implementation.

Keys are relative, '/'-separated paths such as ``support_ticket/20250101T120000.000000Z/head.json``; the blob store
puts them under a prefix (``models/`` by default), so a head lands at ``models/{task}/{version}/...``.
Written objects are never overwritten: a version is immutable once saved.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shared.foundation.atomic_files import write_new

if TYPE_CHECKING:
    from azure.storage.blob import ContainerClient

_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ArtifactNotFoundError(FileNotFoundError):
    pass


class ArtifactExistsError(FileExistsError):
    pass


def check_key(key: str) -> str:
    """Refuse keys that could leave the store's root (absolute paths, '..', empty or odd segments)."""
    if not key or not all(_SEGMENT.match(part) for part in key.split("/")):
        raise ValueError(f"invalid artifact key {key!r}")
    return key


class ArtifactStore(Protocol):
    def write(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key``; raises ArtifactExistsError if the key is taken."""

    def read(self, key: str) -> bytes:
        """The bytes under ``key``; raises ArtifactNotFoundError if there are none."""

    def list(self, prefix: str) -> list[str]:
        """Every key that starts with ``prefix``, sorted."""

    def describe(self, key: str) -> str:
        """Where ``key`` is, for messages."""


class LocalFolderStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*check_key(key).split("/"))

    def write(self, key: str, data: bytes) -> None:
        """Whole or not at all (shared/foundation/atomic_files.py; its hidden files are no keys: `list` skips them)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            write_new(path, data)
        except FileExistsError as exc:
            raise ArtifactExistsError(f"{path} already exists") from exc

    def read(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return path.read_bytes()
        except FileNotFoundError as exc:
            raise ArtifactNotFoundError(f"{path} does not exist") from exc

    def list(self, prefix: str) -> list[str]:
        if not self.root.is_dir():
            return []
        keys = (p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())
        return sorted(k for k in keys if k.startswith(prefix) and all(map(_SEGMENT.match, k.split("/"))))

    def describe(self, key: str) -> str:
        return str(self._path(key))


class BlobArtifactStore:
    """Blobs in one container under ``prefix``. The caller builds the ContainerClient (connection string for Azurite,
    account URL + DefaultAzureCredential in Azure), so this class holds no credentials of its own."""

    def __init__(self, container: ContainerClient, prefix: str = "models/") -> None:
        if prefix and not prefix.endswith("/"):
            prefix += "/"
        self.container = container
        self.prefix = prefix

    def write(self, key: str, data: bytes) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self.container.upload_blob(self.prefix + check_key(key), data, overwrite=False)
        except ResourceExistsError as exc:
            raise ArtifactExistsError(f"{self.describe(key)} already exists") from exc

    def read(self, key: str) -> bytes:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.container.download_blob(self.prefix + check_key(key)).readall()
        except ResourceNotFoundError as exc:
            raise ArtifactNotFoundError(f"{self.describe(key)} does not exist") from exc

    def list(self, prefix: str) -> list[str]:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            names = list(self.container.list_blob_names(name_starts_with=self.prefix + prefix))
        except ResourceNotFoundError:  # no container yet: nothing has been stored
            return []
        return sorted(name[len(self.prefix):] for name in names)

    def describe(self, key: str) -> str:
        return f"{self.container.url}/{self.prefix}{key}"

"""Where `smallfirst stats` reads its records: the app's containers (results/, review/, shadow/, corrections/,
through a BlobStore) or local files (.json: one record or a list; .jsonl: one per line).

A source that cannot be read, or holds something that is not a record, raises InputError naming the file or
blob (and the line); a container that does not exist yet holds nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, TypeVar

from azure.core.exceptions import AzureError, ResourceNotFoundError
from azure.storage.blob import ExponentialRetry
from pydantic import BaseModel, ValidationError

from shared.foundation.records import CorrectionRecord, ResultRecord, ShadowRecord
from shared.foundation.text_files import json_problem, jsonl_lines, strict_json
from shared.errors import InputError, WriteConflict
from shared.monitoring.stats import SourcedResult
from shared.pipeline.blob_names import Containers, input_of_output
from shared.foundation.storage_connections import blob_service
from shared.pipeline.storage import BlobStore

M = TypeVar("M", bound=BaseModel)
UNREADABLE = "unreadable_records"


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]


def parse_records(name: str, data: bytes, model: type[M]) -> list[M]:
    """The records of one file or blob; `name`'s ending says the format."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(UNREADABLE, f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    if name.endswith(".jsonl"):
        rows = list(jsonl_lines(text))
    elif name.endswith(".json"):
        rows = [(0, text)]
    else:
        raise InputError(UNREADABLE, f"{name}: not a .json or .jsonl file")
    records = []
    for line, row in rows:
        where = f"{name} line {line}" if line else name
        try:
            value = strict_json(row)
        except ValueError as exc:
            raise InputError(UNREADABLE, f"{where}: not JSON ({json_problem(exc)})") from exc
        except RecursionError as exc:
            raise InputError(UNREADABLE, f"{where}: not JSON (nested too deeply to read)") from exc
        if isinstance(value, dict) and isinstance(value.get("results"), list):  # a batch answer of the HTTP API
            value = value["results"]
        for obj in value if isinstance(value, list) else [value]:
            try:
                records.append(model.model_validate(obj))
            except ValidationError as exc:
                raise InputError(UNREADABLE, f"{where}: not a {model.__name__} ({_first_problem(exc)})") from exc
    return records


def _read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputError(UNREADABLE, f"{path}: {exc.strerror or exc}") from exc


def local_results(paths: list[Path]) -> list[SourcedResult]:
    """Result files such as `smallfirst run --output` writes; each file is its own source."""
    return [SourcedResult(str(path), record) for path in paths
            for record in parse_records(str(path), _read_file(path), ResultRecord)]


def local_shadows(paths: list[Path]) -> list[ShadowRecord]:
    return [pair for path in paths for pair in parse_records(str(path), _read_file(path), ShadowRecord)]


def interactive_store(connection: str) -> BlobStore:
    """A store for a person waiting at a terminal: an unreachable account fails in seconds, not after the SDK's
    default retries (minutes)."""
    return BlobStore(blob_service(connection, retry_policy=ExponentialRetry(initial_backoff=1, increment_base=2,
                                                                            retry_total=2),
                                  connection_timeout=10))


# Told a container's name and how many blobs it holds, before they are read; returns what to call after each read
# (a progress bar's advance).
Reading = Callable[[str, int], Callable[[], None]]


class ContainerRecords:
    """Records from the app's containers, optionally of one task only."""

    def __init__(self, store: BlobStore, containers: Containers = Containers(), task: str | None = None,
                 reading: Reading | None = None) -> None:
        self.store = store
        self.containers = containers
        self.prefix = f"{task}/" if task else ""
        self.reading = reading

    def _blobs(self, container: str) -> Iterator[tuple[str, bytes]]:
        """(name, bytes) of every blob under the prefix; one deleted between listing and reading is skipped
        (an item leaving review/ as a person decides it)."""
        try:
            names = sorted(self.store.list_states(container, self.prefix))
        except ResourceNotFoundError:
            return
        except AzureError as exc:
            raise InputError(UNREADABLE, f"container {container}: {_one_line(exc)}") from exc
        read = self.reading(container, len(names)) if self.reading else lambda: None
        for name in names:
            try:
                data = self.store.read(container, name)
            except WriteConflict:
                continue
            except AzureError as exc:
                raise InputError(UNREADABLE, f"{container}/{name}: {_one_line(exc)}") from exc
            finally:
                read()
            yield name, data

    def results(self) -> list[SourcedResult]:
        """Every result in results/ and review/ (an item waiting for review is in both), manifests skipped."""
        found = []
        for container in (self.containers.results, self.containers.review):
            for name, data in self._blobs(container):
                source = input_of_output(name, self.containers)
                if source is None:
                    continue
                found += [SourcedResult(source.source, record)
                          for record in parse_records(f"{container}/{name}", data, ResultRecord)]
        return found

    def shadows(self) -> list[ShadowRecord]:
        return [pair for name, data in self._blobs(self.containers.shadow)
                for pair in parse_records(f"{self.containers.shadow}/{name}", data, ShadowRecord)]

    def corrections(self) -> list[CorrectionRecord]:
        return [correction for name, data in self._blobs(self.containers.corrections)
                for correction in parse_records(f"{self.containers.corrections}/{name}", data, CorrectionRecord)]


def _one_line(exc: Exception) -> str:
    """The SDK's messages run over several lines (and repeat the request); the first says what went wrong."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__

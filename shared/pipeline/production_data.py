"""Training examples from production: frontier-answered result records joined to their texts, and corrections.

Result records carry no text, so each is joined by item id to the input it came from, read with the pipeline's own
parser (shared/pipeline/parsing.py), so ids are exactly the ones the cascade used:
- from storage: ``results/<task>/<name>.json|.jsonl`` and ``results/<task>/<name>/part-NNNNN.jsonl`` come from
  ``incoming/<task>/<name>`` (shared/pipeline/blob_names.py). The input is used only while it still has the content
  the results were made from (its SHA-256 is the results' ``source_sha256``); corrections are
  ``corrections/<task>/*.json`` (CorrectionRecord, which holds its text);
- from files: result files (``smallfirst run`` output: one record a line, or one .json record) with the input files
  they came from; an id found with two different texts in those inputs is ambiguous and not used.
Nothing unreadable stops a build: each record, input or file that cannot be used is counted under its reason in
the BuildReport, and the rest goes on. Which records may become examples is training_data.py's rule (frontier
answers only: no self-training).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection, Iterable, Iterator

from pydantic import ValidationError

from shared.foundation.records import CorrectionRecord, utc
from shared.foundation.text_files import jsonl_lines, strict_json
from shared.errors import InputError
from shared.learning.training_data import (
    BuildReport,
    LabelledExample,
    disputed_texts,
    examples_from_corrections,
    examples_from_results,
)
from shared.pipeline.blob_names import HASH_KEY, Containers
from shared.pipeline.parsing import parse_input

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

RECORD_SUFFIXES = (".json", ".jsonl")
_RESULT_NAME = re.compile(r"^(?P<input>.+?)(?:/part-\d{5}\.jsonl|\.jsonl|\.json)$")


@dataclass
class ProductionExamples:
    """The examples and, per source (``results``, ``corrections``), what was used and skipped."""

    examples: list[LabelledExample] = field(default_factory=list)
    reports: dict[str, BuildReport] = field(default_factory=dict)

    def add(self, source: str, examples: list[LabelledExample], report: BuildReport) -> None:
        self.examples.extend(examples)
        self.reports.setdefault(source, BuildReport()).merge(report)

    def extend(self, other: "ProductionExamples") -> None:
        self.examples.extend(other.examples)
        for source, report in other.reports.items():
            self.reports.setdefault(source, BuildReport()).merge(report)


def _records(data: bytes, name: str, report: BuildReport) -> Iterator[dict[str, Any]]:
    """JSON objects of a .json file (one object) or a .jsonl file (one a line); what is unreadable is counted."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        report.skip("unreadable file")
        return
    lines = [text] if name.endswith(".json") else [line for _, line in jsonl_lines(text)]
    for line in lines:
        try:
            obj = strict_json(line)
        except (ValueError, RecursionError):
            report.skip("unreadable record")
            continue
        if isinstance(obj, dict):
            yield obj
        else:
            report.skip("unreadable record")


def _finished_since(records: Iterable[dict[str, Any]], since: datetime | None,
                    report: BuildReport) -> Iterator[dict[str, Any]]:
    for record in records:
        finished = record.get("finished_at")
        if since is not None and isinstance(finished, str):
            try:
                if utc(datetime.fromisoformat(finished)) < since:
                    report.skip("finished before the window")
                    continue
            except ValueError:
                pass  # unreadable: the window is judged by the file alone
        yield record


def _examples_from_records(records: Iterable[dict[str, Any]], texts: dict[str, str], *, task: str,
                           frontier_tiers: Collection[str], allowed_labels: Collection[str] | None,
                           report: BuildReport) -> list[LabelledExample]:
    valid = []
    for record in records:
        try:  # one bad record is skipped, not the file
            examples, one = examples_from_results([record], texts, task=task, frontier_tiers=frontier_tiers,
                                                  allowed_labels=allowed_labels)
        except ValidationError:
            report.skip("not a result record")
            continue
        valid.extend(examples)
        report.merge(one)
    return valid


def _corrections(records: Iterable[dict[str, Any]], *, task: str, since: datetime | None,
                 allowed_labels: Collection[str] | None, report: BuildReport) -> list[LabelledExample]:
    valid = []
    for raw in records:
        try:
            record = CorrectionRecord.model_validate(raw)
        except ValidationError:
            report.skip("not a correction record")
            continue
        if since is not None and utc(record.at) < since:
            report.skip("corrected before the window")
            continue
        examples, one = examples_from_corrections([record], task=task, allowed_labels=allowed_labels)
        valid.extend(examples)
        report.merge(one)
    return valid


def _files(paths: Iterable[Path], suffixes: Collection[str]) -> list[Path]:
    """The files named, and the files with those suffixes anywhere under the folders named, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in suffixes))
        else:
            found.append(path)
    return found


def from_files(task: str, *, results: Iterable[Path] = (), inputs: Iterable[Path] = (),
               corrections: Iterable[Path] = (), frontier_tiers: Collection[str],
               allowed_labels: Collection[str] | None = None, since: datetime | None = None) -> ProductionExamples:
    """Examples from local result files (joined to the texts of ``inputs``) and correction files; folders are
    searched for .json/.jsonl files."""
    out = ProductionExamples()
    texts: dict[str, str] = {}
    ambiguous: set[str] = set()
    input_report = BuildReport()
    for path in _files(inputs, {".txt", ".md", ".json", ".jsonl"}):
        try:
            parsed = parse_input(path.name, path.read_bytes())
        except InputError as exc:
            input_report.skip(f"input unusable ({exc.reason})")
            continue
        for item in parsed.items:
            if texts.setdefault(item.id, item.text) != item.text:
                ambiguous.add(item.id)
    for item_id in ambiguous:
        del texts[item_id]
    report = BuildReport(skipped=dict(input_report.skipped))
    if ambiguous:
        report.skip("id with two different texts in the inputs", len(ambiguous))
    examples = []
    for path in _files(results, RECORD_SUFFIXES):
        records = _finished_since(_records(path.read_bytes(), path.name, report), since, report)
        examples += _examples_from_records(records, texts, task=task, frontier_tiers=frontier_tiers,
                                           allowed_labels=allowed_labels, report=report)
    # Result files name no input: results of two inputs that reuse ids, given with only one input's texts, join
    # the other's answers to its texts. What shows it is one text answered two ways; neither answer is kept.
    disputed = disputed_texts(examples)
    conflicting = [e for e in examples if e.text_hash in disputed]
    if conflicting:
        examples = [e for e in examples if e.text_hash not in disputed]
        report.used -= len(conflicting)
        report.skip("one text answered two ways (results of inputs not given, or reusing ids)", len(conflicting))
    out.add("results", examples, report)
    report = BuildReport()
    records = (record for path in _files(corrections, RECORD_SUFFIXES)
               for record in _records(path.read_bytes(), path.name, report))
    out.add("corrections", _corrections(records, task=task, since=since, allowed_labels=allowed_labels,
                                        report=report), report)
    return out


def from_storage(service: BlobServiceClient, task: str, *, frontier_tiers: Collection[str],
                 allowed_labels: Collection[str] | None = None, since: datetime | None = None,
                 containers: Containers = Containers()) -> ProductionExamples:
    """Examples from the results and corrections containers of one account (written since ``since``), each result
    joined to the input it was made from."""
    from azure.core.exceptions import ResourceNotFoundError

    out = ProductionExamples()
    report = BuildReport()
    results = service.get_container_client(containers.results)
    incoming = service.get_container_client(containers.incoming)
    texts_of: dict[tuple[str, str], dict[str, str] | None] = {}  # (input name, sha256) -> texts by id
    examples = []
    for blob in results.list_blobs(name_starts_with=f"{task}/", include=["metadata"]):
        match = _RESULT_NAME.match(blob.name)
        if match is None or blob.name.endswith("/manifest.json"):
            continue
        if since is not None and blob.last_modified < since:
            report.skip("results written before the window")
            continue
        key = (match["input"], (blob.metadata or {}).get(HASH_KEY, ""))
        if key not in texts_of:
            texts_of[key] = _input_texts(incoming, *key)
        data = results.download_blob(blob.name).readall()
        records = list(_finished_since(_records(data, blob.name, report), since, report))
        texts = texts_of[key]
        if texts is None:
            for _ in records:
                report.skip("input gone or changed since its results")
            continue
        examples += _examples_from_records(records, texts, task=task, frontier_tiers=frontier_tiers,
                                           allowed_labels=allowed_labels, report=report)
    out.add("results", examples, report)
    report = BuildReport()
    corrections = service.get_container_client(containers.corrections)

    def correction_records() -> Iterator[dict[str, Any]]:
        try:
            blobs = list(corrections.list_blobs(name_starts_with=f"{task}/"))
        except ResourceNotFoundError:
            return
        for blob in blobs:
            if blob.name.endswith(RECORD_SUFFIXES) and (since is None or blob.last_modified >= since):
                yield from _records(corrections.download_blob(blob.name).readall(), blob.name, report)

    out.add("corrections", _corrections(correction_records(), task=task, since=since, allowed_labels=allowed_labels,
                                        report=report), report)
    return out


def _input_texts(incoming, name: str, sha256: str) -> dict[str, str] | None:
    """Texts by id of ``incoming/<name>`` if it still has the content of that SHA-256, else None."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        data = incoming.download_blob(name).readall()
    except ResourceNotFoundError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    try:
        parsed = parse_input(name, data)
    except InputError:
        return None
    return {item.id: item.text for item in parsed.items}

"""`smallfirst stats` reading the app's containers in Azurite: results/ and review/ (single results, lines,
parts, manifests), shadow/ day blobs and corrections/, written under the names shared/pipeline/blob_names.py
gives them."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from azure.storage.blob import BlobServiceClient
from typer.testing import CliRunner

from shared.cli import app
from shared.errors import InputError
from shared.monitoring.stats import summarise
from shared.monitoring.stats_sources import ContainerRecords
from shared.pipeline.blob_names import Containers, InputBlob, correction, shadow_day
from shared.pipeline.storage import BlobStore
from tests.monitoring.records import correction as correction_record
from tests.monitoring.records import result, shadow

pytestmark = pytest.mark.azurite
TODAY = datetime.now(timezone.utc).replace(microsecond=0)
runner = CliRunner()


@pytest.fixture(scope="module")
def store(emulator) -> BlobStore:
    store = BlobStore(BlobServiceClient.from_connection_string(emulator.connection_string))
    containers = Containers()
    store.ensure_containers([containers.results, containers.review])  # shadow/ and corrections/: see below
    return store


def put(store: BlobStore, container: str, name: str, records) -> None:
    body = "".join(r.model_dump_json() + "\n" for r in records) if isinstance(records, list) else records.model_dump_json()
    store.write(container, name, body, content_type="application/json", metadata={})


@pytest.fixture(scope="module")
def written(store) -> BlobStore:
    """ticket: a.jsonl (3 items, one waiting for review), b.txt (one item, reviewed since), c.jsonl fanned out in
    two parts with a manifest (one item of part 1 in review); 5 shadow pairs, one written twice; 2 corrections."""
    containers = Containers()
    a, b, c = InputBlob("ticket", "a.jsonl"), InputBlob("ticket", "b.txt"), InputBlob("ticket", "c.jsonl")
    waiting = result("a3", "needs_review", at=TODAY, outcomes=("low_confidence",), tiers=("small",))
    put(store, containers.results, a.result_lines, [result("a1", at=TODAY), result("a2", at=TODAY), waiting])
    put(store, containers.review, a.review, [waiting])
    put(store, containers.results, b.result_single, result("b1", "reviewed", at=TODAY))
    put(store, containers.review, b.review, [result("b1", "needs_review", at=TODAY, outcomes=("low_confidence",))])
    put(store, containers.results, c.part(0), [result("c1", at=TODAY), result("c2", at=TODAY)])
    failed = result("c3", "failed", at=TODAY, outcomes=("error",), tiers=("small",))
    put(store, containers.results, c.part(1), [failed])
    put(store, containers.review, c.review_part(1), [failed])
    store.write(containers.results, c.manifest, json.dumps({"source": c.source, "items": 3, "parts": 2}),
                content_type="application/json", metadata={})

    pairs = [shadow("a1", True, at=TODAY, source=a.source), shadow("a2", False, at=TODAY, source=a.source),
             shadow("c1", True, at=TODAY, source=c.source), shadow("c2", True, at=TODAY, source=c.source),
             shadow("c2", True, at=TODAY, source=c.source)]  # a redelivered shadow message
    store.ensure_containers([containers.shadow, containers.corrections])
    put(store, containers.shadow, shadow_day("ticket", TODAY.date()), pairs)
    for record in (correction_record("b1", final="billing", draft="billing", at=TODAY, source=b.source),
                   correction_record("x9", final="account", draft="billing", at=TODAY, source=b.source)):
        put(store, containers.corrections, correction("ticket", b.path, record.id), record)
    return store


def test_results_are_read_from_results_and_review_once_per_item_and_manifests_are_skipped(written):
    records = ContainerRecords(written, task="ticket")
    summary = summarise(records.results(), records.shadows(), records.corrections())
    total = summary.tasks[0].total
    assert total.volume == 7  # a1 a2 a3, b1, c1 c2 c3
    assert total.statuses == {"accepted": 4, "escalated": 0, "needs_review": 1, "failed": 1, "reviewed": 1}
    assert (total.live_accuracy.successes, total.live_accuracy.n) == (3, 4)
    assert (total.draft_accuracy.successes, total.draft_accuracy.n) == (1, 2)
    assert summary.tasks[0].days[0].day == TODAY.date()


def test_the_cli_reads_the_datastorage_account_and_writes_the_page(written, emulator, monkeypatch, tmp_path):
    monkeypatch.setenv("DataStorage", emulator.connection_string)
    outcome = runner.invoke(app, ["stats", "ticket", "--html", str(tmp_path / "stats.html")], env={"COLUMNS": "200"})
    assert outcome.exit_code == 0, outcome.output
    assert "7 items" in outcome.output and "live accuracy 75.0%" in outcome.output and "4 shadow pairs" in outcome.output
    assert "the DataStorage storage account" in (tmp_path / "stats.html").read_text(encoding="utf-8")


def test_containers_not_created_yet_hold_nothing(store):
    records = ContainerRecords(store, Containers(shadow="shadow-never", corrections="corrections-never"))
    assert records.shadows() == [] and records.corrections() == []


def test_a_blob_that_holds_no_records_is_named_with_its_line(store):
    store.write("results", "broken/x.jsonl", result("ok").model_dump_json() + "\n{oops\n",
                content_type="application/x-ndjson", metadata={})
    with pytest.raises(InputError, match=r"^results/broken/x\.jsonl line 2: not JSON"):
        ContainerRecords(store, task="broken").results()


def test_a_task_reads_only_its_own_folders(written):
    records = ContainerRecords(written, task="receipt")
    assert records.results() == [] and records.shadows() == [] and records.corrections() == []
    assert {p.task for p in ContainerRecords(written).shadows()} == {"ticket"}

"""Shadow sampling on real Azurite: accepted items answered again by a fake frontier off the request path, the
pairs recorded per day, live accuracy with its interval, the alert, and no second payment on redelivery."""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.foundation.records import Item, ShadowRecord
from shared.monitoring.stats import summarise
from shared.monitoring.stats_sources import ContainerRecords
from shared.monitoring import shadow as shadow_module
from shared.pipeline.blob_names import InputBlob, shadow_day
from shared.pipeline.ingest import IngestLimits, Ingestor
from shared.monitoring.shadow import ShadowWorker
from shared.pipeline.shadow_pick import picked, shadow_requests
from tests.azure_wire import AzureWireServer, Scripted, chat_completion
from tests.conftest import CountingReads

pytestmark = pytest.mark.azurite
TASK = "shadowed"
TASK_YAML = """\
kind: classification
instruction: Route the customer support ticket to the team that should handle it.
threshold: 0.5
target_accuracy: 0.95
tiers: [small, frontier]
labels: [{name: billing}, {name: technical}, {name: account}, {name: other}]
"""


def reply(label: str) -> Scripted:
    tokens = [('{"label":"', -0.01), (label, -0.01), ('"}', -0.01)]
    return Scripted(body=chat_completion(f'{{"label":"{label}"}}', tokens=tokens, prompt_tokens=300,
                                         completion_tokens=6))


def azurite_queue(emulator, name: str, create: bool = True):
    from azure.storage.queue import QueueServiceClient

    from shared.pipeline.storage import ensure_queue, queue_client

    client = queue_client(QueueServiceClient.from_connection_string(emulator.connection_string), name)
    return ensure_queue(client) if create else client


@pytest.fixture
def tiers():
    """The small tier always says billing; the frontier says technical for ids ending in 0 or 5 (20% disagree)."""
    with AzureWireServer() as small, AzureWireServer() as frontier:
        small.default = lambda request: reply("billing")
        frontier.default = lambda request: reply(
            "technical" if request.body["messages"][-1]["content"].endswith(("0", "5")) else "billing")
        yield small, frontier


def make_pipeline(storage, tmp_path, small, frontier, fraction: str, task_yaml: str = TASK_YAML):
    (tmp_path / f"{TASK}.yaml").write_text(task_yaml)
    env = {"SMALLFIRST_TASKS_DIR": str(tmp_path), "SMALLFIRST_LOCAL_PROFILE": "trained",
           "SMALLFIRST_SMALL_BACKEND": "openai_compatible", "SMALLFIRST_SMALL_ENDPOINT": small.url,
           "SMALLFIRST_SMALL_LOGPROBS": "true", "SMALLFIRST_SMALL_MODEL": "Phi-4",  # priced: its costs are known
           "SMALLFIRST_FRONTIER_BACKEND": "azure_openai", "SMALLFIRST_FRONTIER_ENDPOINT": frontier.url,
           "SMALLFIRST_FRONTIER_MODEL": "gpt-4o", "SMALLFIRST_FRONTIER_API_KEY": "k",
           "SMALLFIRST_SHADOW_FRACTION": fraction}
    cascade = Cascade(Settings.from_env(env))
    work, shadows = [], []
    ingestor = Ingestor(cascade, storage, IngestLimits(max_blob_bytes=1_000_000, chunk_items=500),
                        enqueue=lambda text, delay: work.append(text), shadow=shadows.append)
    return cascade, ingestor, work, shadows


def drop(storage, ingestor, work, name: str, n: int) -> None:
    lines = "".join(json.dumps({"id": f"{name}-{i}", "text": f"ticket number {i}"}) + "\n" for i in range(n))
    client = storage.service.get_blob_client("incoming", f"{TASK}/{name}")
    client.upload_blob(lines.encode(), overwrite=True)
    ingestor.handle_blob(client)
    while work:
        ingestor.handle_work(work.pop(0))


def results(storage, name: str) -> bytes:
    return storage.read("results", InputBlob(TASK, name).result_lines)


def test_every_accepted_item_is_shadowed_at_fraction_one_and_the_answer_is_unchanged(storage, tiers, tmp_path):
    small, frontier = tiers
    cascade, ingestor, work, shadows = make_pipeline(storage, tmp_path, small, frontier, "1.0")
    drop(storage, ingestor, work, "all.jsonl", 20)
    before = results(storage, "all.jsonl")
    assert len(shadows) == 20 and frontier.requests == []  # queued, not answered on the request path
    reader = InMemoryMetricReader()
    worker = ShadowWorker(cascade, storage, meter_provider=MeterProvider(metric_readers=[reader]))
    pairs = [worker.handle(message) for message in shadows]
    assert len(frontier.requests) == 20
    assert results(storage, "all.jsonl") == before  # the user's result is what it was
    assert sum(p.agree for p in pairs) == 16 and {p.frontier_tier for p in pairs} == {"frontier"}
    day = pairs[0].at.date().isoformat()
    recorded = [ShadowRecord.model_validate_json(line) for line in storage.read(
        "shadow", f"{TASK}/{day}.jsonl").decode().splitlines()]
    assert {p.id for p in recorded} >= {p.id for p in pairs}
    gauges = {m.name: list(m.data.data_points) for rm in reader.get_metrics_data().resource_metrics
              for sm in rm.scope_metrics for m in sm.metrics}
    (accuracy,) = [p for p in gauges["smallfirst.shadow.accuracy"] if p.attributes["smallfirst.task"] == TASK]
    (lower,) = [p for p in gauges["smallfirst.shadow.accuracy_lower_bound"] if p.attributes["smallfirst.task"] == TASK]
    assert lower.value < accuracy.value <= 1.0


def test_a_redelivered_shadow_request_does_not_pay_the_frontier_again(storage, tiers, tmp_path):
    small, frontier = tiers
    cascade, ingestor, work, shadows = make_pipeline(storage, tmp_path, small, frontier, "1.0")
    drop(storage, ingestor, work, "again.jsonl", 3)
    worker = ShadowWorker(cascade, storage)
    first = [worker.handle(message) for message in shadows]
    second = [worker.handle(message) for message in shadows]
    assert all(first) and second == [None, None, None] and len(frontier.requests) == 3


def test_an_item_too_long_for_a_queue_message_is_answered_and_published_but_not_shadowed(
        emulator, storage, tiers, tmp_path, caplog):
    small, frontier = tiers
    long_inputs = TASK_YAML + "max_input_tokens: 100000\n"  # the tiers' context is not what this is about
    _, ingestor, work, _ = make_pipeline(storage, tmp_path, small, frontier, "1.0", long_inputs)
    queue = azurite_queue(emulator, "shadow-long-items")
    ingestor.shadow = queue.send_message
    long_text = "我的账单被重复扣款了" * 1700  # 17,000 characters, 51 KB of UTF-8: over a message once base64-encoded
    lines = [{"id": "short", "text": "charged twice"}, {"id": "long", "text": long_text}]
    client = storage.service.get_blob_client("incoming", f"{TASK}/long.jsonl")
    client.upload_blob("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines).encode(), overwrite=True)
    ingestor.handle_blob(client)
    with caplog.at_level(logging.WARNING, logger="shared.pipeline.shadow_pick"):
        assert ingestor.handle_work(work.pop()).disposition == "processed"
    records = [json.loads(line) for line in results(storage, "long.jsonl").splitlines()]
    assert [(r["id"], r["status"]) for r in records] == [("short", "accepted"), ("long", "accepted")]
    (message,) = queue.receive_messages()
    assert json.loads(message.content)["id"] == "short"
    assert "item long" in caplog.text and "queue message" in caplog.text


def test_a_shadow_queue_that_refuses_messages_costs_no_answer(emulator, storage, tiers, tmp_path, caplog):
    small, frontier = tiers
    _, ingestor, work, _ = make_pipeline(storage, tmp_path, small, frontier, "1.0")
    ingestor.shadow = azurite_queue(emulator, "no-such-queue", create=False).send_message
    with caplog.at_level(logging.WARNING, logger="shared.pipeline.shadow_pick"):
        drop(storage, ingestor, work, "refused.jsonl", 3)
    records = [json.loads(line) for line in results(storage, "refused.jsonl").splitlines()]
    assert [r["status"] for r in records] == ["accepted"] * 3
    assert caplog.text.count("could not queue the shadow") == 3


def test_no_shadow_requests_at_fraction_zero(storage, tiers, tmp_path):
    small, frontier = tiers
    _, ingestor, work, shadows = make_pipeline(storage, tmp_path, small, frontier, "0")
    drop(storage, ingestor, work, "none.jsonl", 10)
    assert shadows == [] and frontier.requests == []


def test_the_pick_is_stable_per_item_and_near_the_fraction():
    ids = [f"item-{i}" for i in range(2000)]
    first = [picked("t", "incoming/t/a.jsonl", i, 0.3) for i in ids]
    assert first == [picked("t", "incoming/t/a.jsonl", i, 0.3) for i in ids]
    assert 0.27 < sum(first) / len(ids) < 0.33
    assert not any(picked("t", "s", i, 0.0) for i in ids) and all(picked("t", "s", i, 1.0) for i in ids)


def test_frontier_and_review_answers_are_never_shadowed(storage, tiers, tmp_path):
    small, frontier = tiers
    cascade, *_ = make_pipeline(storage, tmp_path, small, frontier, "1.0")
    task = cascade.tasks.get(TASK)
    items = [Item(id=f"x{i}", text="t") for i in range(3)]
    records = [cascade.process(task, item) for item in items]
    records[1] = records[1].model_copy(update={"tier": "frontier", "status": "escalated"})
    records[2] = records[2].model_copy(update={"status": "needs_review"})
    assert [r.id for r in shadow_requests(cascade, task, items, records, "s")] == ["x0"]


def test_live_accuracy_from_shadow_pairs_brackets_the_frontiers_disagreement_and_alerts_below_target(
        storage, tiers, tmp_path, caplog, monkeypatch):
    small, frontier = tiers
    cascade, ingestor, work, shadows = make_pipeline(storage, tmp_path, small, frontier, "1.0")
    monkeypatch.setattr(shadow_module, "MIN_PAIRS_FOR_ALERT", 30)
    drop(storage, ingestor, work, "many.jsonl", 40)
    worker = ShadowWorker(cascade, storage)
    with caplog.at_level(logging.WARNING, logger="shared.monitoring.shadow"):
        for message in shadows:
            worker.handle(message)
    # 8 of 40 ids end in 0 or 5: the frontier disagrees on 20% of the accepted answers.
    alerts = [r for r in caplog.records if "below the target" in r.getMessage()]
    assert alerts and TASK in alerts[-1].getMessage()
    summary = summarise(ContainerRecords(storage, task=TASK).results(), ContainerRecords(storage, task=TASK).shadows())
    live = summary.tasks[0].total.live_accuracy
    low, high = live.interval
    assert live.n >= 40 and low < 0.8 < high and high < 0.95


def test_a_few_hundred_items_at_five_percent_show_volume_savings_and_live_accuracy_in_stats(storage, tmp_path):
    """The issue's local run: 300 items, 5% shadowed, a frontier that disagrees on a known share (ids ending in
    0 or 5: 20%); `smallfirst stats` reads the containers and its page renders."""
    from shared.monitoring.dashboard import stats_page

    with AzureWireServer() as small, AzureWireServer() as frontier:
        small.default = lambda request: reply("billing")
        frontier.default = lambda request: reply(
            "technical" if request.body["messages"][-1]["content"].endswith(("0", "5")) else "billing")
        task_dir = tmp_path / "tasks"
        task_dir.mkdir()
        (task_dir / "volume.yaml").write_text(TASK_YAML)
        cascade, ingestor, work, shadows = make_pipeline(storage, task_dir, small, frontier, "0.05")
        lines = "".join(json.dumps({"id": f"v-{i}", "text": f"ticket number {i}"}) + "\n" for i in range(300))
        client = storage.service.get_blob_client("incoming", "volume/big.jsonl")
        client.upload_blob(lines.encode(), overwrite=True)
        ingestor.handle_blob(client)
        while work:
            ingestor.handle_work(work.pop(0))
        worker = ShadowWorker(cascade, storage)
        for message in shadows:
            worker.handle(message)
    assert 5 <= len(shadows) <= 30 and len(frontier.requests) == len(shadows)
    records = ContainerRecords(storage, task="volume")
    summary = summarise(records.results(), records.shadows())
    total = summary.tasks[0].total
    assert total.volume == 300 and total.counterfactual_cost_usd > total.cost_usd
    low, high = total.live_accuracy.interval
    assert total.live_accuracy.n == len(shadows) and low < 0.8 < high
    page = stats_page(summary, "test")
    assert "volume" in page and page.count("<img") >= 3


def test_past_the_first_pairs_of_a_day_a_worker_re_reads_the_day_at_most_every_recheck_interval(
        storage, tiers, tmp_path, monkeypatch):
    small, frontier = tiers
    cascade, ingestor, work, shadows = make_pipeline(storage, tmp_path, small, frontier, "1.0")
    drop(storage, ingestor, work, "throttled.jsonl", 12)
    storage.delete("shadow", shadow_day(TASK, datetime.now(timezone.utc).date()))  # earlier tests' pairs of today
    monkeypatch.setattr(shadow_module, "RECHECK_EVERY_PAIR_UP_TO", 5)
    counting = CountingReads(storage, "shadow")  # a day re-read to recompute its live accuracy
    worker = ShadowWorker(cascade, counting)
    for message in shadows[:8]:
        worker.handle(message)
    assert counting.reads == 5  # one per pair while the day had fewer than 5, then none within a minute
    monkeypatch.setattr(shadow_module, "RECHECK_S", 0.0)
    for message in shadows[8:]:
        worker.handle(message)
    assert counting.reads == 9  # the interval passed: each pair re-reads the day

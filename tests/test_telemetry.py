"""Telemetry: the metrics and spans one finished item produces (in-memory reader and exporter), and which
exporters configure_telemetry sets up."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.core.cascade import Cascade
from shared.core.config import Settings
from shared.core.records import Item
from shared.core.telemetry import ItemMetrics, entra_credential
from shared.core.tiers.registry import TierRegistry
from tests.azure_wire import Scripted, chat_completion
from tests.test_cascade import LABEL_TOKENS

REPO = Path(__file__).resolve().parents[1]
SURE = "I was charged twice for my subscription, please refund me"
UNSURE = "Please add my colleague as an admin on our team account."  # just under the trained threshold


@pytest.fixture(scope="module")
def spans() -> InMemorySpanExporter:
    """The global tracer provider can be set once per process; this module's spans go to memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    if trace.get_tracer_provider() is not provider:
        pytest.skip("another test set the global tracer provider first")
    return exporter


def cascade_with_metrics(wire_url: str, catalog) -> tuple[Cascade, InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    env = {"SMALLFIRST_LOCAL_PROFILE": "trained", "SMALLFIRST_FRONTIER_BACKEND": "azure_openai",
           "SMALLFIRST_FRONTIER_ENDPOINT": wire_url, "SMALLFIRST_FRONTIER_MODEL": "gpt-4o",
           "SMALLFIRST_FRONTIER_API_KEY": "k", "SMALLFIRST_FRONTIER_MAX_ATTEMPTS": "1"}
    settings = Settings.from_env(env)
    cascade = Cascade(settings, TierRegistry(settings), catalog,
                      metrics=ItemMetrics(MeterProvider(metric_readers=[reader])))
    return cascade, reader


def points(reader: InMemoryMetricReader) -> dict[str, list]:
    data = reader.get_metrics_data()
    return {metric.name: list(metric.data.data_points)
            for resource in data.resource_metrics for scope in resource.scope_metrics for metric in scope.metrics}


def total(found: dict[str, list], name: str, **attributes: str) -> float:
    return sum(getattr(p, "sum", getattr(p, "value", 0)) for p in found[name]
               if all(p.attributes.get(k) == v for k, v in attributes.items()))


@pytest.mark.parametrize("path", ["sync", "async"])
def test_each_item_records_its_outcome_tokens_cost_and_counterfactual_once(wire, catalog, spans, path):
    task = catalog.get("support_ticket").model_copy(update={"tiers": ["trained", "frontier"]})
    wire.script.extend(Scripted(body=chat_completion('{"label":"billing"}', tokens=LABEL_TOKENS, prompt_tokens=900,
                                                       completion_tokens=8))
                       for _ in range(2))
    cascade, reader = cascade_with_metrics(wire.url, catalog)
    items = [Item(id="a", text=SURE), Item(id="b", text=UNSURE), Item(id="c", text=SURE), Item(id="d", text=UNSURE)]
    if path == "sync":
        records = [cascade.process(task, item) for item in items]
    else:
        records = asyncio.run(cascade.process_batch(task, items))
    assert [r.status for r in records] == ["accepted", "escalated", "accepted", "escalated"]
    found = points(reader)

    assert total(found, "smallfirst.items") == 4
    assert total(found, "smallfirst.items", **{"smallfirst.status": "accepted", "smallfirst.tier": "trained"}) == 2
    assert total(found, "smallfirst.items", **{"smallfirst.status": "escalated", "smallfirst.tier": "frontier"}) == 2
    assert total(found, "smallfirst.escalations", **{"smallfirst.reason": "low_confidence",
                                                     "smallfirst.tier": "trained"}) == 2
    tokens = {p.attributes["gen_ai.token.type"]: p for p in found["gen_ai.client.token.usage"]}
    assert tokens["input"].sum == 1800 and tokens["input"].count == 2 and tokens["output"].sum == 16
    assert tokens["input"].attributes["gen_ai.request.model"] == "gpt-4o"
    assert tokens["input"].attributes["gen_ai.system"] == "az.ai.openai"
    assert total(found, "smallfirst.cost", **{"smallfirst.tier": "frontier"}) == pytest.approx(
        sum(r.cost_usd for r in records))
    assert total(found, "smallfirst.counterfactual_cost") == pytest.approx(
        sum(r.counterfactual_cost_usd for r in records))
    confidence = {p.attributes["smallfirst.tier"]: p.count for p in found["smallfirst.confidence"]}
    assert confidence == {"trained": 4, "frontier": 2}
    assert sum(p.count for p in found["gen_ai.client.operation.duration"]) == 6  # one per tier call

    finished = spans.get_finished_spans()
    item_spans = [s for s in finished if s.name == "smallfirst.item"]
    assert sorted(s.attributes["smallfirst.status"] for s in item_spans[-4:]) == [
        "accepted", "accepted", "escalated", "escalated"]
    frontier_spans = [s for s in finished if s.name == "smallfirst.tier" and s.attributes["smallfirst.tier"] == "frontier"]
    assert frontier_spans[-1].attributes["gen_ai.usage.input_tokens"] == 900
    spans.clear()


def run_configure(env: dict[str, str], stderr: list[str] | None = None) -> dict:
    code = ("import json, os; from opentelemetry import metrics, trace; "
            "from shared.core.telemetry import configure_telemetry; "
            "first = configure_telemetry(os.environ); second = configure_telemetry(os.environ); "
            "print(json.dumps({'first': first, 'second': second, "
            "'meter': type(metrics.get_meter_provider()).__module__, "
            "'tracer': type(trace.get_tracer_provider()).__module__}))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", **env})
    assert result.returncode == 0, result.stderr
    if stderr is not None:
        stderr.append(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_with_nothing_set_no_exporter_is_configured():
    out = run_configure({})
    assert out["first"] == out["second"] == "off"
    assert out["meter"].startswith("opentelemetry.metrics") and out["tracer"].startswith("opentelemetry.trace")


def test_a_connection_string_configures_azure_monitor_once():
    out = run_configure({"APPLICATIONINSIGHTS_CONNECTION_STRING":
                         "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"})
    assert out["first"] == out["second"] == "azure_monitor"
    assert out["meter"].startswith("opentelemetry.sdk") and out["tracer"].startswith("opentelemetry.sdk")


def test_console_telemetry_locally_is_one_setting():
    out = run_configure({"SMALLFIRST_TELEMETRY": "console"})
    assert out["first"] == "console" and out["meter"].startswith("opentelemetry.sdk")


def test_a_telemetry_setting_of_no_known_mode_is_warned_about_and_leaves_telemetry_off():
    stderr: list[str] = []
    out = run_configure({"SMALLFIRST_TELEMETRY": "consol"}, stderr)
    assert out["first"] == "off" and out["meter"].startswith("opentelemetry.metrics")
    assert "'consol' is none of off, console, otlp" in stderr[0]


def test_entra_authentication_string_gives_the_named_managed_identity():
    credential = entra_credential({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=abc-123"})
    assert type(credential).__name__ == "ManagedIdentityCredential"
    assert entra_credential({}) is None

"""Telemetry: the metrics and spans one finished item produces (in-memory reader and exporter), which exporters
configure_telemetry sets up, and the functions' spans continuing the Functions host's trace (real Azurite)."""

from __future__ import annotations

import asyncio
import inspect
import json
import subprocess
import sys
import typing
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import azure.functions as func
import pytest
from azure.storage.blob import BlobServiceClient
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_span_id, format_trace_id

from shared.core.cascade import Cascade
from shared.core.backends import BACKENDS, Backend
from shared.core.config import Settings
from shared.foundation.records import Item
from shared.core.telemetry import ItemMetrics, entra_credential
from shared.core.tiers.registry import TierRegistry
from tests.azure_wire import Scripted, chat_completion
from tests.core.test_cascade import LABEL_TOKENS

REPO = Path(__file__).resolve().parents[2]
SURE = "I was charged twice for my subscription, please refund me"
UNSURE = "The export is slow and costs us extra seats."  # two teams' matter: well under the trained threshold


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


def test_every_backend_has_its_gen_ai_system_name():
    gen_ai_system = {backend.value: spec.gen_ai_system for backend, spec in BACKENDS.items()}
    assert set(gen_ai_system) == {backend.value for backend in Backend}
    assert gen_ai_system["foundry"] == "az.ai.openai" and gen_ai_system["foundry_inference"] == "az.ai.inference"


def run_configure(env: dict[str, str], stderr: list[str] | None = None, prelude: str = "") -> dict:
    code = (prelude + "import json, os; from opentelemetry import metrics, trace; "
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


def test_otlp_without_its_exporter_installed_is_warned_about_and_leaves_telemetry_off():
    """As in Azure, where the local extra's OTLP exporter is not deployed."""
    stderr: list[str] = []
    absent = "import sys; sys.modules['opentelemetry.exporter.otlp.proto.http'] = None; "  # import raises ImportError
    out = run_configure({"SMALLFIRST_TELEMETRY": "otlp"}, stderr, prelude=absent)
    assert out["first"] == "off" and out["meter"].startswith("opentelemetry.metrics")
    assert "the OTLP exporter is not installed" in stderr[0]


def test_with_the_workers_own_telemetry_setting_the_app_configures_no_second_exporter():
    """PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY: the Python worker set up the Azure Monitor distro before loading
    the app; the app leaves the providers to it."""
    out = run_configure({"PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "True",
                         "APPLICATIONINSIGHTS_CONNECTION_STRING":
                         "InstrumentationKey=00000000-0000-0000-0000-000000000000;IngestionEndpoint=http://127.0.0.1:9/"})
    assert out["first"] == out["second"] == "functions_worker"
    assert out["meter"].startswith("opentelemetry.metrics") and out["tracer"].startswith("opentelemetry.trace")


def test_entra_authentication_string_gives_the_named_managed_identity():
    credential = entra_credential({"APPLICATIONINSIGHTS_AUTHENTICATION_STRING": "Authorization=AAD;ClientId=abc-123"})
    assert type(credential).__name__ == "ManagedIdentityCredential"
    assert entra_credential({}) is None


# -- functions continue the host's trace ------------------------------------------------------------------------------
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
HOST_SPAN_ID = "00f067aa0ba902b7"
SAMPLED = f"00-{TRACE_ID}-{HOST_SPAN_ID}-01"


@dataclass
class HostTraceContext:
    """What the worker passes as `context.trace_context`: the host's W3C headers, empty strings when it has none."""

    trace_parent: str
    trace_state: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class InvocationContext:
    trace_context: HostTraceContext


@pytest.fixture(scope="module")
def user_functions(emulator, storage) -> dict[str, typing.Callable]:
    """The app's functions as the worker calls them, against this module's Azurite."""
    from function_app import app
    from functions import services
    from localdev.host import indexed_functions

    with pytest.MonkeyPatch.context() as env:
        env.setenv("DataStorage", emulator.connection_string)
        services.reset()
        yield {f.get_function_name(): f.get_user_function() for f in indexed_functions(app)}
        services.reset()


@pytest.fixture(scope="module")
def blobs(emulator) -> BlobServiceClient:
    return BlobServiceClient.from_connection_string(emulator.connection_string)


def invoke(user_functions, kind: str, context: InvocationContext | None, blobs: BlobServiceClient | None = None):
    """One function of each trigger kind, with the context the worker would pass (None: the local host passes
    none). Returns the function's name and what shows it ran."""
    if kind == "http":
        request = func.HttpRequest("GET", "http://localhost/api/tasks", body=b"")
        response = user_functions["list_tasks"](req=request, context=context)
        return "list_tasks", response.status_code
    if kind == "async_http":  # a body that is not JSON: answered before any tier is called
        request = func.HttpRequest("POST", "http://localhost/api/tasks/support_ticket", body=b"{",
                                   route_params={"task": "support_ticket"})
        response = asyncio.run(user_functions["run_task"](req=request, context=context))
        return "run_task", response.status_code
    if kind == "blob":  # a blob outside any task folder: dead-lettered without a tier call
        name = f"stray-{uuid.uuid4().hex}.txt"
        client = blobs.get_blob_client("incoming", name)
        client.upload_blob(b"hello", overwrite=True)
        user_functions["process_incoming_blob"](client=client, context=context)
        return "process_incoming_blob", dead_letters(blobs, containing=name) == 1
    text = f"not a work message {uuid.uuid4().hex}"
    user_functions["deadletter_poison_work"](message=func.QueueMessage(body=text.encode()), context=context)
    return "deadletter_poison_work", dead_letters(blobs, containing=text) == 1


def dead_letters(blobs: BlobServiceClient, containing: str) -> int:
    container = blobs.get_container_client("deadletter")
    return sum(containing in container.download_blob(b.name).readall().decode() for b in container.list_blobs())


def function_span(spans: InMemorySpanExporter, name: str):
    found = [s for s in spans.get_finished_spans()
             if s.name == "smallfirst.invocation" and s.attributes["smallfirst.function"] == name]
    spans.clear()
    assert len(found) == 1, f"{len(found)} spans for {name}"
    return found[0]


RAN = {"http": 200, "async_http": 400, "blob": True, "queue": True}


@pytest.mark.azurite
@pytest.mark.parametrize("kind", ["http", "async_http", "blob", "queue"])
def test_a_functions_span_is_a_child_of_the_hosts_span_in_the_hosts_trace(user_functions, blobs, spans, kind):
    spans.clear()
    context = InvocationContext(HostTraceContext(SAMPLED, "congo=t61rcWkgMzE"))
    name, ran = invoke(user_functions, kind, context, blobs)
    assert ran == RAN[kind]
    span = function_span(spans, name)
    assert format_trace_id(span.context.trace_id) == TRACE_ID
    assert format_span_id(span.parent.span_id) == HOST_SPAN_ID and span.parent.is_remote
    assert span.context.trace_state.get("congo") == "t61rcWkgMzE"  # the host's tracestate goes on with the trace


@pytest.mark.azurite
@pytest.mark.parametrize("kind", ["http", "async_http", "blob", "queue"])
@pytest.mark.parametrize("context", [None, InvocationContext(HostTraceContext(""))],
                         ids=["no_context_as_the_local_host", "empty_trace_context_as_the_worker_without_one"])
def test_without_a_trace_context_a_functions_span_starts_a_new_trace(user_functions, blobs, spans, kind, context):
    spans.clear()
    name, ran = invoke(user_functions, kind, context, blobs)
    assert ran == RAN[kind]
    span = function_span(spans, name)
    assert span.parent is None and format_trace_id(span.context.trace_id) != TRACE_ID


@pytest.mark.azurite
@pytest.mark.parametrize("traceparent", [
    "garbage", f"00-{TRACE_ID}-{HOST_SPAN_ID}", f"00-{TRACE_ID[:-1]}x-{HOST_SPAN_ID}-01",
    f"00-{'0' * 32}-{HOST_SPAN_ID}-01", f"ff-{TRACE_ID}-{HOST_SPAN_ID}-01",
], ids=["not_a_traceparent", "no_flags", "not_hex", "all_zero_trace_id", "version_ff"])
@pytest.mark.parametrize("kind", ["http", "blob", "queue"])
def test_a_malformed_traceparent_starts_a_new_trace_and_the_function_still_runs(user_functions, blobs, spans, kind,
                                                                                traceparent):
    spans.clear()
    name, ran = invoke(user_functions, kind, InvocationContext(HostTraceContext(traceparent, "=;bad,")), blobs)
    assert ran == RAN[kind]
    assert function_span(spans, name).parent is None


@pytest.mark.azurite
def test_a_trace_the_host_did_not_sample_is_not_recorded_by_the_function_either(user_functions, blobs, spans):
    """Parent-based sampling, the SDK's default: the host's decision (the traceparent's flags) holds for the worker."""
    spans.clear()
    name, ran = invoke(user_functions, "http", InvocationContext(HostTraceContext(f"00-{TRACE_ID}-{HOST_SPAN_ID}-00")))
    assert ran == 200
    assert not [s for s in spans.get_finished_spans() if s.name == "smallfirst.invocation"]


def test_the_first_invocations_span_is_exported_with_its_parent():
    """Exporters are set up on first use, before that invocation's span starts (console here: stdout)."""
    code = ("from types import SimpleNamespace as NS; import azure.functions as func; from function_app import app; "
            "run = {f.get_function_name(): f.get_user_function() for f in app.get_functions()}['list_tasks']; "
            f"context = NS(trace_context=NS(trace_parent='{SAMPLED}', trace_state='')); "
            "print(run(req=func.HttpRequest('GET', 'http://localhost/api/tasks', body=b''), context=context).status_code)")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={"PATH": "/usr/bin:/bin", "SMALLFIRST_TELEMETRY": "console"})
    assert result.returncode == 0, result.stderr
    status, _, spans_out = result.stdout.partition("\n")
    assert status == "200" and spans_out.startswith("{"), result.stdout  # no span: it went nowhere
    exported = json.loads(spans_out[:spans_out.index("\n}") + 2])
    assert exported["name"] == "smallfirst.invocation" and exported["parent_id"] == f"0x{HOST_SPAN_ID}"
    assert exported["context"]["trace_id"] == f"0x{TRACE_ID}"


def test_every_function_takes_the_invocation_context_as_the_python_worker_passes_it():
    """The worker gives a function its Context when the function has a parameter named `context`, un-annotated or
    annotated azure.functions.Context (azure-functions-python-worker, FunctionInfo.is_context_required), reads the
    bindings' types with typing.get_type_hints and runs coroutine functions on its loop: the wrapper keeps all
    three, and the local host, which passes no context, can leave it out."""
    from function_app import app
    from localdev.host import indexed_functions

    functions = {f.get_function_name(): f.get_user_function() for f in indexed_functions(app)}
    assert len(functions) == 11
    for name, function in functions.items():
        parameters = inspect.signature(function).parameters
        assert list(parameters)[-1] == "context" and parameters["context"].default is None, name
        hints = typing.get_type_hints(function)
        assert "context" not in hints and set(hints) == {*list(parameters)[:-1], "return"}, name
        assert inspect.iscoroutinefunction(function) == (name == "run_task"), name

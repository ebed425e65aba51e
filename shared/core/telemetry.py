"""Telemetry: metrics for every finished item, and where spans and metrics go.

Metrics are recorded in one place, `ItemMetrics.record`, once per item when the cascade has its record. Names
follow the OpenTelemetry GenAI semantic conventions where one exists and are `smallfirst.*` otherwise:

    gen_ai.client.token.usage         histogram, tokens per tier call (gen_ai.token.type input/output)
    gen_ai.client.operation.duration  histogram, seconds per tier call
    smallfirst.items                  counter, items by task, status and answering tier
    smallfirst.escalations            counter, refused attempts by task, tier and reason (their outcome)
    smallfirst.confidence             histogram, the confidence each tier gave
    smallfirst.cost                   counter, USD by task and tier
    smallfirst.counterfactual_cost    counter, USD had the frontier answered every item alone, by task
                                      (savings = counterfactual_cost - cost)

`configure_telemetry` sets the exporters once per process: none when the Functions Python worker has set up the
Azure Monitor distro itself (PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY, as infra/ sets it), else the distro when
APPLICATIONINSIGHTS_CONNECTION_STRING is set (Entra ID when APPLICATIONINSIGHTS_AUTHENTICATION_STRING says
`Authorization=AAD`), else a console or OTLP exporter if SMALLFIRST_TELEMETRY asks, else nothing.

`continued_span` makes a function's work part of the trace the Functions host started for the invocation, as
Microsoft's "Use OpenTelemetry with Azure Functions" guide (https://learn.microsoft.com/azure/azure-functions/
opentelemetry-howto?pivots=programming-language-python, page of 2025-11-17, checked 2026-12-06) sets it up:
host.json `"telemetryMode": "OpenTelemetry"`, the app settings APPLICATIONINSIGHTS_CONNECTION_STRING and
PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY=true (the worker then configures the distro and exports the worker's
telemetry itself), and the host's W3C `traceparent`/`tracestate` reaching the function as `context.trace_context`
(azure.functions `Context.trace_context`; the worker extracts them with OpenTelemetry's
TraceContextTextMapPropagator, azure-functions-python-worker `configure_opentelemetry`). The span's parent is read
from that trace context itself, not from whatever context the thread has, so it holds on every path the worker
takes and none where no host passed one.
"""

from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator, Mapping, Protocol

from opentelemetry import metrics, trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from shared.core.backends import BACKENDS
from shared.core.config import Settings
from shared.foundation.records import ResultRecord
from shared.foundation.tasks import AnyTask

log = logging.getLogger(__name__)
METER = TRACER = "smallfirst"
# The Functions host lets the Python worker export OpenTelemetry to Application Insights itself (the guide above).
WORKER_TELEMETRY_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"


class ItemMetrics:
    """The instruments, created once from a meter provider (the global one unless given)."""

    def __init__(self, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = (meter_provider or metrics.get_meter_provider()).get_meter(METER)
        self.token_usage = meter.create_histogram(
            "gen_ai.client.token.usage", unit="{token}", description="Tokens per tier call, input and output")
        self.duration = meter.create_histogram(
            "gen_ai.client.operation.duration", unit="s", description="Seconds per tier call")
        self.items = meter.create_counter("smallfirst.items", unit="{item}", description="Finished items")
        self.escalations = meter.create_counter(
            "smallfirst.escalations", unit="{attempt}", description="Attempts not accepted, by reason")
        self.confidence = meter.create_histogram("smallfirst.confidence", description="Confidence per tier answer")
        self.cost = meter.create_counter("smallfirst.cost", unit="USD", description="Cost of tier calls")
        self.counterfactual_cost = meter.create_counter(
            "smallfirst.counterfactual_cost", unit="USD", description="Cost had the frontier answered alone")

    def record(self, task: AnyTask, record: ResultRecord, settings: Settings) -> None:
        """Everything one finished item contributes."""
        self.items.add(1, {"smallfirst.task": task.name, "smallfirst.status": record.status,
                           "smallfirst.tier": record.tier or "none"})
        if record.counterfactual_cost_usd is not None:
            self.counterfactual_cost.add(record.counterfactual_cost_usd, {"smallfirst.task": task.name})
        for attempt in record.attempts:
            tier = settings.tiers.get(attempt.tier)
            where = {"smallfirst.task": task.name, "smallfirst.tier": attempt.tier}
            if attempt.outcome != "accepted":
                self.escalations.add(1, {**where, "smallfirst.reason": attempt.outcome})
            if attempt.confidence is not None:
                self.confidence.record(attempt.confidence, where)
            self.cost.add(attempt.cost_usd, where)
            model = {"gen_ai.operation.name": "chat",
                     "gen_ai.request.model": (tier.model if tier else None) or attempt.tier,
                     "gen_ai.system": BACKENDS[tier.backend].gen_ai_system if tier else "unknown", **where}
            self.duration.record(attempt.latency_ms / 1000, model)
            if attempt.tokens_in or attempt.tokens_out:
                self.token_usage.record(attempt.tokens_in, {**model, "gen_ai.token.type": "input"})
                self.token_usage.record(attempt.tokens_out, {**model, "gen_ai.token.type": "output"})


class TraceContext(Protocol):
    """The W3C trace context a Functions host passes with an invocation (azure.functions `Context.trace_context`);
    the worker gives empty strings where the host has none."""

    @property
    def trace_parent(self) -> str | None: ...

    @property
    def trace_state(self) -> str | None: ...


@contextmanager
def continued_span(name: str, trace_context: TraceContext | None,
                   attributes: Mapping[str, AttributeValue] | None = None) -> Iterator[trace.Span]:
    """The current span for one invocation, a child of the host's span that `trace_context` names. Without a trace
    context, or with a traceparent that is not valid W3C, the span starts a new trace: telemetry never fails an
    invocation."""
    carrier = {}
    if trace_context is not None:
        carrier = {"traceparent": trace_context.trace_parent or "", "tracestate": trace_context.trace_state or ""}
    parent = TraceContextTextMapPropagator().extract(carrier)  # an empty context, so a root, when nothing parses
    with trace.get_tracer(TRACER).start_as_current_span(name, context=parent, attributes=attributes) as span:
        yield span


_configured: str | None = None
_configure_lock = threading.Lock()


def configure_telemetry(env: Mapping[str, str]) -> str:
    """Set this process's exporters once; returns which: azure_monitor, console, otlp or off."""
    global _configured  # once per process: OpenTelemetry's global providers can be set only once
    with _configure_lock:
        if _configured is None:
            _configured = _configure(env)
            log.info("telemetry: %s", _configured)
        return _configured


def _configure(env: Mapping[str, str]) -> str:
    # The worker set the distro up before loading the app; a second one would export every log record twice.
    if env.get(WORKER_TELEMETRY_SETTING, "").strip().lower() in {"1", "true", "t", "yes", "y"}:  # the worker's rule
        return "functions_worker"
    connection = env.get("APPLICATIONINSIGHTS_CONNECTION_STRING")
    if connection:
        from azure.monitor.opentelemetry import configure_azure_monitor

        configure_azure_monitor(connection_string=connection, credential=entra_credential(env),
                                logger_name="smallfirst")
        return "azure_monitor"
    mode = env.get("SMALLFIRST_TELEMETRY", "off")
    if mode not in ("console", "otlp"):
        if mode != "off":  # a typo must not look like telemetry that exports nothing
            log.warning("SMALLFIRST_TELEMETRY=%r is none of off, console, otlp: telemetry stays off", mode)
        return "off"
    from opentelemetry import trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    if mode == "otlp":  # OTEL_EXPORTER_OTLP_ENDPOINT says where (default http://localhost:4318)
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:  # the exporter is the local extra's, never deployed: the app must still serve
            log.warning("SMALLFIRST_TELEMETRY=otlp, but the OTLP exporter is not installed (it comes with the local "
                        "extra: pip install -e '.[local]'); telemetry stays off")
            return "off"
        span_exporter, metric_exporter = OTLPSpanExporter(), OTLPMetricExporter()
    else:
        span_exporter, metric_exporter = ConsoleSpanExporter(), ConsoleMetricExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(tracer_provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[PeriodicExportingMetricReader(metric_exporter)]))
    return mode


def entra_credential(env: Mapping[str, str]):
    """The managed identity named by APPLICATIONINSIGHTS_AUTHENTICATION_STRING
    (`Authorization=AAD[;ClientId=<id>]`, as infra/ sets it), or None for the connection string's key."""
    parts = dict(part.split("=", 1) for part in env.get("APPLICATIONINSIGHTS_AUTHENTICATION_STRING", "").split(";")
                 if "=" in part)
    if parts.get("Authorization") != "AAD":
        return None
    from azure.identity import ManagedIdentityCredential

    return ManagedIdentityCredential(client_id=parts.get("ClientId"))

"""One call that makes a FastAPI app send traces, logs and HTTP server metrics to otelhouse (or
any OTLP backend).

``instrument_app`` returns an :class:`Instrumentation` handle instead of touching the global
``TracerProvider``: OpenTelemetry lets a process set that only once, and a handle per app lets
two services share a process (``otelhouse demo``) or a test suite build fresh providers.
The handle is also kept on ``app.state`` so a second call finds it and does nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry._logs import get_logger_provider
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.metrics import MeterProvider, NoOpMeterProvider, get_meter_provider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.util.types import AttributeValue

from otelhouse.instrumentation.exporter import (
    build_exporter,
    build_log_exporter,
    build_metric_exporter,
    resolve_protocol,
)
from otelhouse.instrumentation.log_export import LogExport, level_number, logs_export_wanted
from otelhouse.instrumentation.logs import disable_log_correlation, enable_log_correlation
from otelhouse.instrumentation.metric_export import (
    MetricExport,
    ServerMetrics,
    metrics_export_wanted,
)
from otelhouse.instrumentation.resource import build_resource
from otelhouse.instrumentation.server_span import ServerSpanMiddleware
from otelhouse.instrumentation.server_span import excluded_urls as excluded_urls_list
from otelhouse.instrumentation.trace_header import DEFAULT_TRACE_HEADER, ASGIApp, TraceIdHeaderMiddleware
from otelhouse.instrumentation.version import __version__

logger = logging.getLogger(__name__)

STATE_KEY = "otelhouse_instrumentation"
Engine = Literal["lean", "contrib"]
ENGINES: tuple[str, ...] = ("lean", "contrib")
DEFAULT_EXCLUDED_SPANS: tuple[str, ...] = ("receive", "send")
"""For ``engine="contrib"``: its internal spans per ``receive``/``send`` message, two or more
extra spans per request that cost CPU and storage and say little beyond the server span."""


@dataclass(eq=False)
class Instrumentation:
    """What :func:`instrument_app` set up for one app, and how to undo or flush it."""

    app: FastAPI
    tracer_provider: trace.TracerProvider
    owns_provider: bool
    """True when the helper built the provider; only then does :meth:`shutdown` end it."""
    engine: str
    """``lean`` or ``contrib`` as asked, or ``external`` when the app was already instrumented
    (``opentelemetry-instrument``): then only the trace header and log correlation were added."""
    correlate_logs: bool
    logs: LogExport | None
    """Where the app's ``logging`` records are exported, when they are."""
    metrics: MetricExport | None
    """The helper's own meter provider and its export, when it exports metrics."""
    meter_provider: MeterProvider | None
    """Where the request metrics are recorded (``metrics.provider`` or the one passed in);
    None when they are not recorded."""
    _previous_build: Callable[[], object] = field(repr=False)
    _previous_lifespan: Callable[[Any], AbstractAsyncContextManager[Any]] = field(repr=False)
    _active: bool = field(default=True, repr=False)

    @property
    def tracer(self) -> trace.Tracer:
        """A tracer for the app's own spans, from the same provider as the server spans."""
        return self.tracer_provider.get_tracer("instrumentation")

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export the spans ended, the records logged and the metrics recorded so far; True
        when they all went out in time. Under ``opentelemetry-instrument`` (engine
        ``external``) those are the global providers' spans, log records and metrics."""
        spans = flush_provider(self.tracer_provider, timeout_millis)
        logs = metrics = True
        if self.logs:
            logs = self.logs.force_flush(timeout_millis)
        elif self.engine == "external":
            logs = flush_provider(get_logger_provider(), timeout_millis)
        if self.metrics:
            metrics = self.metrics.force_flush(timeout_millis)
        elif self.engine == "external":
            metrics = flush_provider(get_meter_provider(), timeout_millis)
        return spans and logs and metrics

    def shutdown(self, timeout_millis: int = 30_000) -> bool:
        """Flush, then end the tracer provider if the helper built it, the log export (its
        handler leaves the logger) and the metric export; none can be used again.

        True when every span, record and metric went out: the export was acknowledged, and
        otelhouse acknowledges only what it has stored."""
        flushed = self.force_flush(timeout_millis)
        if self.owns_provider and isinstance(self.tracer_provider, TracerProvider):
            self.tracer_provider.shutdown()
        if self.logs:
            flushed = self.logs.close(timeout_millis) and flushed
        if self.metrics:
            flushed = self.metrics.close(timeout_millis) and flushed
        return flushed

    def uninstrument(self) -> None:
        """Undo everything :func:`instrument_app` did to the app; the tracer provider stays
        usable, the log export is closed (its records flushed, its handler removed), and so
        is the helper's metric export (its last measurements exported)."""
        if not self._active:
            return
        self._active = False
        self.app.build_middleware_stack = self._previous_build  # type: ignore[method-assign]
        self.app.router.lifespan_context = self._previous_lifespan
        if self.engine == "contrib":
            FastAPIInstrumentor.uninstrument_app(self.app)
        self.app.middleware_stack = None
        if self.correlate_logs:
            disable_log_correlation()
        if self.logs:
            self.logs.close()
        if self.metrics:
            self.metrics.close()
        delattr(self.app.state, STATE_KEY)


def flush_provider(provider: object, timeout_millis: int) -> bool:
    """``provider.force_flush`` where it has one (the API's no-op providers have none)."""
    flush = getattr(provider, "force_flush", None)
    return bool(flush(timeout_millis)) if flush else True


def flushing_lifespan(
    lifespan: Callable[[Any], AbstractAsyncContextManager[Any]],
    flush: Callable[[], bool],
) -> Callable[[Any], AbstractAsyncContextManager[Any]]:
    """The app's lifespan, then a flush when the server shuts the app down.

    Exit-time flushing is not enough: uvicorn re-raises SIGTERM after its graceful shutdown,
    which kills the process before ``atexit`` handlers run, so the spans of the last few
    seconds would be lost whenever a container is stopped."""

    @asynccontextmanager
    async def lifespan_then_flush(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            yield state
        await asyncio.to_thread(flush)

    return lifespan_then_flush


def instrumentation_of(app: FastAPI) -> Instrumentation | None:
    """The handle of an app instrumented by :func:`instrument_app`, else None."""
    return getattr(app.state, STATE_KEY, None)


def instrument_app(
    app: FastAPI,
    service_name: str | None = None,
    *,
    service_version: str | None = None,
    environment: str | None = None,
    resource_attributes: Mapping[str, AttributeValue] | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: Mapping[str, str] | None = None,
    exporter: SpanExporter | Literal["sdk"] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    engine: Engine = "lean",
    excluded_urls: str | None = None,
    trace_header: str | None = DEFAULT_TRACE_HEADER,
    correlate_logs: bool = True,
    export_logs: bool | None = None,
    log_level: int | str = logging.INFO,
    logger_name: str | None = None,
    exclude_spans: Iterable[str] = DEFAULT_EXCLUDED_SPANS,
    meter_provider: MeterProvider | None = None,
    export_metrics: bool | None = None,
) -> Instrumentation:
    """Trace every request of ``app`` and export the spans, its ``logging`` records and the
    HTTP server metrics over OTLP.

    Unset arguments fall back to the standard env vars: ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES`` for the resource; ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``
    (``grpc``, the default, or ``http/protobuf``); ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``,
    ``_HEADERS``, ``_INSECURE``, ``_TIMEOUT``, ``_COMPRESSION`` for the exporter; ``OTEL_BSP_*``
    for batching; ``OTEL_TRACES_SAMPLER[_ARG]``; ``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``.
    ``endpoint`` may be a bare ``host:port`` (plaintext). ``exporter`` replaces the OTLP one,
    or is ``"sdk"`` for the SDK's OTLP/gRPC exporter instead of the default one that writes
    the same protobuf bytes directly (:mod:`otelhouse.instrumentation.otlp_encode`, about a third of
    the CPU); ``tracer_provider`` replaces the provider (then configure export on it yourself).

    ``engine="lean"`` (default) makes one server span per request with
    :class:`~instrumentation.server_span.ServerSpanMiddleware`; ``engine="contrib"`` uses
    ``opentelemetry-instrumentation-fastapi`` (hooks, header capture, websockets; about
    2-3x the CPU), where ``exclude_spans`` drops its per-message send/receive spans.

    ``export_logs`` (default: ``OTEL_LOGS_EXPORTER``, ``otlp`` unless ``none``) sends the
    records of the logger ``logger_name`` (root by default) and its children at ``log_level``
    and above as OpenTelemetry logs, with the service's resource and the ids of the span that
    was current, to the same endpoint, protocol and headers as the spans
    (``OTEL_EXPORTER_OTLP_LOGS_*`` where no argument is given; ``OTEL_BLRP_*`` for batching).
    The logger's level is lowered to ``log_level`` while instrumented if it is higher. Logs
    are exported only where the helper exports spans: not with ``tracer_provider`` (passing
    ``export_logs=True`` with it is a ``ValueError``), nor under ``opentelemetry-instrument``,
    whose ``OTEL_LOGS_EXPORTER`` setup owns them. A logger that already exports (another app's
    ``instrument_app``, ``opentelemetry-instrument``) is a ``ValueError``: choose another
    ``logger_name`` per app.

    ``export_metrics`` (default: off unless ``OTEL_METRICS_EXPORTER`` is ``otlp``) records
    ``http.server.request.duration`` (a histogram in seconds with the HTTP semantic
    conventions' buckets; ``http.route``, ``http.request.method``, ``http.response.status_code``,
    ``url.scheme``, and ``error.type`` on failures) for every request the lean engine serves,
    from the server span's own start and end times, into a ``MeterProvider`` with the
    service's resource, exported by a ``PeriodicExportingMetricReader`` to the same endpoint,
    protocol and headers as the spans (``OTEL_EXPORTER_OTLP_METRICS_*`` where no argument is
    given, ``OTEL_METRIC_EXPORT_INTERVAL``, default 60 s). ``engine="contrib"`` records its own
    metrics into that provider instead. ``meter_provider`` replaces the helper's provider: the
    metrics are recorded into it and exporting them is yours (with ``export_metrics=False`` it
    is a ``ValueError``). Like logs, metrics are exported only where the helper exports spans
    (``export_metrics=True`` with ``tracer_provider`` is a ``ValueError``; pass
    ``meter_provider``), and not under ``opentelemetry-instrument``, whose
    ``OTEL_METRICS_EXPORTER`` setup records the same metric for the app already.

    Spans, records and metrics are flushed when the server runs the app's lifespan shutdown; call
    ``handle.shutdown()`` yourself where no lifespan runs. Calling this again for the same
    app returns the first handle unchanged.
    """
    existing = instrumentation_of(app)
    if existing is not None:
        return existing
    if tracer_provider is not None and (exporter or endpoint or protocol or headers):
        raise ValueError(
            "instrument_app: pass either tracer_provider or exporter settings "
            "(exporter/endpoint/protocol/headers), not both; add the exporter to your provider"
        )
    if tracer_provider is not None and export_logs:
        raise ValueError(
            "instrument_app: export_logs=True needs the helper's own export; with "
            "tracer_provider, set up log export on your side"
        )
    if tracer_provider is not None and meter_provider is None and export_metrics:
        raise ValueError(
            "instrument_app: export_metrics=True needs the helper's own export; with "
            "tracer_provider, pass meter_provider= as well"
        )
    if meter_provider is not None and export_metrics is False:
        raise ValueError(
            "instrument_app: meter_provider= records the metrics into it; "
            "export_metrics=False says not to record them: pass one or the other"
        )
    if engine not in ENGINES:
        raise ValueError(
            f"instrument_app: engine must be one of {', '.join(ENGINES)}, not {engine!r}"
        )

    threshold = level_number(log_level)
    logs: LogExport | None = None
    metric_export: MetricExport | None = None
    if getattr(app, "_is_instrumented_by_opentelemetry", False):
        logger.info("app already instrumented by OpenTelemetry; adding only header and logs")
        applied, provider, owns_provider = "external", trace.get_tracer_provider(), False
    else:
        applied = engine
        provider, owns_provider = tracer_provider, False
        if provider is None:
            resource = build_resource(
                service_name, service_version, environment, resource_attributes
            )
            provider = TracerProvider(resource=resource)
            span_exporter = (
                exporter
                if isinstance(exporter, SpanExporter)
                else build_exporter(
                    resolve_protocol(protocol), endpoint, headers, encoder=exporter or "wire"
                )
            )
            provider.add_span_processor(BatchSpanProcessor(span_exporter))
            owns_provider = True
            if logs_export_wanted(export_logs):
                log_protocol = resolve_protocol(protocol, signal="logs")
                try:
                    logs = LogExport.attach(
                        resource,
                        lambda: build_log_exporter(log_protocol, endpoint, headers),
                        threshold,
                        logger_name,
                    )
                except Exception:
                    provider.shutdown()
                    raise
            if meter_provider is None and metrics_export_wanted(export_metrics):
                metric_protocol = resolve_protocol(protocol, signal="metrics")
                try:
                    metric_export = MetricExport.start(
                        resource, build_metric_exporter(metric_protocol, endpoint, headers)
                    )
                except Exception:
                    provider.shutdown()
                    if logs:
                        logs.close()
                    raise
                meter_provider = metric_export.provider
    if applied == "external":
        meter_provider = None
    if applied == "contrib":
        FastAPIInstrumentor.instrument_app(
            app,
            tracer_provider=provider,
            meter_provider=meter_provider or NoOpMeterProvider(),
            exclude_spans=list(exclude_spans),  # type: ignore[arg-type]
            excluded_urls=excluded_urls,
        )

    previous_build = app.build_middleware_stack
    tracer = provider.get_tracer(__name__, __version__)
    excluded = excluded_urls_list(excluded_urls)
    server_metrics = ServerMetrics(meter_provider) if meter_provider and applied == "lean" else None

    def build_middleware_stack() -> ASGIApp:
        stack = previous_build()
        if applied == "lean":
            return ServerSpanMiddleware(stack, tracer, excluded, trace_header, server_metrics)
        return TraceIdHeaderMiddleware(stack, trace_header) if trace_header else stack

    app.build_middleware_stack = build_middleware_stack  # type: ignore[method-assign]
    app.middleware_stack = None
    if correlate_logs:
        enable_log_correlation()

    handle = Instrumentation(
        app=app,
        tracer_provider=provider,
        owns_provider=owns_provider,
        engine=applied,
        correlate_logs=correlate_logs,
        logs=logs,
        metrics=metric_export,
        meter_provider=meter_provider,
        _previous_build=previous_build,
        _previous_lifespan=app.router.lifespan_context,
    )
    app.router.lifespan_context = flushing_lifespan(app.router.lifespan_context, handle.force_flush)
    setattr(app.state, STATE_KEY, handle)
    return handle


def uninstrument_app(app: FastAPI) -> None:
    """Undo :func:`instrument_app` for ``app``; a no-op when it is not instrumented."""
    handle = instrumentation_of(app)
    if handle is not None:
        handle.uninstrument()

"""The standard HTTP server metric, ``http.server.request.duration``, exported over OTLP.

The lean middleware records one measurement per request from the same two clock readings
that start and end its server span (:class:`ServerMetrics`), so a request's histogram value is
its span's duration exactly and the metric costs no second timing. A :class:`MetricExport` is
the helper's own ``MeterProvider`` (the app's resource, one ``PeriodicExportingMetricReader``);
its flushes report whether the flush's own export was acknowledged, which the SDK's reader
does not.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource

from otelhouse.instrumentation.exporter import export_wanted
from otelhouse.instrumentation.version import __version__

METRICS_EXPORTER_ENV = "OTEL_METRICS_EXPORTER"
METER_NAME = "otelhouse.instrumentation"
DURATION = "http.server.request.duration"
DURATION_BUCKETS: tuple[float, ...] = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
)
"""The HTTP semantic conventions' explicit bucket boundaries for the duration, in seconds."""
KNOWN_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
)
"""Any other method is recorded as ``_OTHER``, as the conventions ask: a metric's attributes
must not take values a client can invent."""
OTHER = "_OTHER"


def metrics_export_wanted(
    export_metrics: bool | None, env: Mapping[str, str] = os.environ
) -> bool:
    """The argument, else ``OTEL_METRICS_EXPORTER`` (``otlp``: on; ``none``: off), else off.

    Opt-in, unlike logs, though the variable's standard default is ``otlp``: the histogram
    costs about a quarter of tracing's CPU per request (``bench/overhead.py``) and in otelhouse
    tells nothing the server spans do not, unless spans are sampled."""
    if export_metrics is None and METRICS_EXPORTER_ENV not in env:
        return False
    return export_wanted(export_metrics, METRICS_EXPORTER_ENV, env)


class ServerMetrics:
    """The duration histogram of one app, from ``meter_provider``'s meter
    ``otelhouse.instrumentation``."""

    def __init__(self, meter_provider: ApiMeterProvider) -> None:
        meter = meter_provider.get_meter(METER_NAME, __version__)
        self.duration = meter.create_histogram(
            DURATION,
            unit="s",
            description="Duration of HTTP server requests.",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )

    def record(
        self,
        start_ns: int,
        end_ns: int,
        scope: Mapping[str, Any],
        route: str | None,
        status: int,
        error_type: str | None,
        context: Context,
    ) -> None:
        """One request: ``http.request.method`` (``_OTHER`` for unknown methods),
        ``url.scheme``, ``http.route`` when a route matched, ``http.response.status_code``
        when a response started, and ``error.type`` when it failed: the exception's type
        name when one escaped, else the status code of a 5xx, else ``_OTHER`` when no
        response started. ``context`` is the request's, so the SDK's exemplar filter sees
        its span."""
        method = scope["method"]
        attributes: dict[str, str | int] = {
            "http.request.method": method if method in KNOWN_METHODS else OTHER,
            "url.scheme": scope.get("scheme", "http"),
        }
        if route:
            attributes["http.route"] = route
        if status:
            attributes["http.response.status_code"] = status
        if error_type is None and (status >= 500 or not status):
            error_type = str(status) if status else OTHER
        if error_type is not None:
            attributes["error.type"] = error_type
        self.duration.record((end_ns - start_ns) / 1e9, attributes, context)


class OutcomeKeepingExporter(MetricExporter):
    """Passes every export to ``exporter`` and remembers whether the latest succeeded; its
    temporality and aggregation preferences are the wrapped exporter's."""

    def __init__(self, exporter: MetricExporter) -> None:
        super().__init__(
            preferred_temporality=exporter._preferred_temporality,
            preferred_aggregation=exporter._preferred_aggregation,
        )
        self.exporter = exporter
        self.succeeded: bool | None = None
        """The latest export's outcome; None until one happens after :meth:`forget`."""

    def forget(self) -> None:
        self.succeeded = None

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        result = MetricExportResult.FAILURE
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        finally:
            self.succeeded = result is MetricExportResult.SUCCESS
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.exporter.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


@dataclass(eq=False)
class MetricExport:
    """The helper's own meter provider and its one periodic reader; :meth:`close` ends it."""

    provider: MeterProvider
    exporter: OutcomeKeepingExporter
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def start(cls, resource: Resource, exporter: MetricExporter) -> MetricExport:
        """A provider with ``resource`` exporting through ``exporter`` every
        ``OTEL_METRIC_EXPORT_INTERVAL`` ms (60 s unless set; ``OTEL_METRIC_EXPORT_TIMEOUT``
        bounds an export)."""
        keeping = OutcomeKeepingExporter(exporter)
        provider = MeterProvider(
            resource=resource,
            metric_readers=[PeriodicExportingMetricReader(keeping)],
        )
        return cls(provider, keeping)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Collect and export now; True when that export was acknowledged (or there was
        nothing to export). Cumulative temporality, the default, makes it carry every
        request recorded so far, so an earlier failed export is made good by it."""
        if self._closed:
            return True
        self.exporter.forget()
        flushed = self.provider.force_flush(timeout_millis)
        return flushed and self.exporter.succeeded is not False

    def close(self, timeout_millis: int = 30_000) -> bool:
        """Shut the provider down, which exports once more; True when that export was
        acknowledged (or had nothing to send). Later calls do nothing and return True."""
        if self._closed:
            return True
        self._closed = True
        self.exporter.forget()
        self.provider.shutdown(timeout_millis)
        return self.exporter.succeeded is not False

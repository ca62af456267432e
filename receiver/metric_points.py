"""The metrics signal: ``MetricsService/Export`` and ``POST /v1/metrics`` into the five
``otel_metrics_*`` tables.

``convert_metrics_request`` turns a request into :class:`MetricColumns` as the Collector's
ClickHouse exporter writes them: one row per data point in its type's table, attribute maps
rendered and cut by the spans' ``AttributeMapper``, values as ``Float64`` (an int value
converted, an absent one 0), times in seconds (the tables' ``DateTime``), exemplar ids as
hex with all zeros for an absent id, and NaN values and the no-recorded-value flag stored as
sent. (This module is not ``receiver.metrics``, which holds the receiver's own Prometheus
metrics.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from otelhouse.receiver.convert import AttributeMapper
from otelhouse.receiver.limits import DEFAULT_LIMITS, ConvertLimits
from otelhouse.receiver.otlp_json import Path, decode_json
from otelhouse.receiver.signal import Conversion, Signal
from otelhouse.storage.metrics import (
    METRIC_COLUMN_FIELDS,
    TABLES_BY_KIND,
    MetricColumns,
    insert_metrics,
)

METRICS_SERVICE = "opentelemetry.proto.collector.metrics.v1.MetricsService"

NS_PER_S = 1_000_000_000
MAX_TIME_NS = 2**32 * NS_PER_S - 1
"""Latest time a ``DateTime`` column holds (2106-02-07); later points are rejected rather
than failing every batch they land in."""

_ZERO_TRACE_ID = "0" * 32
_ZERO_SPAN_ID = "0" * 16

_METRICS: Path = (
    ("resourceMetrics", "resource_metrics"),
    ("scopeMetrics", "scope_metrics"),
    ("metrics",),
)
_HEX_IDS: tuple[tuple[Path, tuple[str, ...]], ...] = tuple(
    (
        (*_METRICS, kind, ("dataPoints", "data_points"), ("exemplars",)),
        ("traceId", "trace_id", "spanId", "span_id"),
    )
    for kind in (
        ("gauge",),
        ("sum",),
        ("histogram",),
        ("exponentialHistogram", "exponential_histogram"),
    )
)


class PointProblem(ValueError):
    """Why a data point cannot be stored, for the partial_success message."""


@dataclass(frozen=True, slots=True)
class ConvertedMetrics:
    """Rows plus what was refused or cut; ``error_message`` is set whenever either happened
    (``rejected_data_points`` = ``rejected``), as a warning when nothing was rejected."""

    metrics: MetricColumns
    rejected: int
    error_message: str
    truncated_values: int = 0
    dropped_attributes: int = 0


def data_point_count(request: ExportMetricsServiceRequest) -> int:
    """Number of data points in ``request``, of every type, stored or not."""
    return sum(
        len(getattr(metric, kind).data_points)
        for resource_metrics in request.resource_metrics
        for scope_metrics in resource_metrics.scope_metrics
        for metric in scope_metrics.metrics
        if (kind := metric.WhichOneof("data")) is not None
    )


def _seconds(time_ns: int) -> int:
    if time_ns > MAX_TIME_NS:
        raise PointProblem("times must be before 2106-02-07 (the end of DateTime)")
    return time_ns // NS_PER_S


def _number(value: Any) -> float:
    """A NumberDataPoint's or Exemplar's value as Float64; absent is 0, as the exporter does."""
    kind = value.WhichOneof("value")
    if kind == "as_double":
        return value.as_double
    return float(value.as_int) if kind == "as_int" else 0.0


def _fixed_hex(raw: bytes, size: int, absent: str) -> str:
    if len(raw) == size:
        return raw.hex()
    if not raw:
        return absent
    raise PointProblem(f"exemplar ids must be empty or {size} bytes, got {len(raw)}")


class _PointConverter:
    """Own columns of each point type (after the common ones), raising ``PointProblem``."""

    def __init__(self, to_map: Callable[..., dict[str, str]]) -> None:
        self.to_map = to_map

    def exemplars(self, point: Any) -> tuple[list[Any], ...]:
        found = point.exemplars
        return (
            [self.to_map(e.filtered_attributes) for e in found],
            [_seconds(e.time_unix_nano) for e in found],
            [_number(e) for e in found],
            [_fixed_hex(e.span_id, 8, _ZERO_SPAN_ID) for e in found],
            [_fixed_hex(e.trace_id, 16, _ZERO_TRACE_ID) for e in found],
        )

    def gauge(self, point: Any, data: Any) -> tuple[Any, ...]:
        return (_number(point), point.flags, *self.exemplars(point))

    def sum(self, point: Any, data: Any) -> tuple[Any, ...]:
        return (
            *self.gauge(point, data),
            data.aggregation_temporality,
            data.is_monotonic,
        )

    def histogram(self, point: Any, data: Any) -> tuple[Any, ...]:
        counts, bounds = list(point.bucket_counts), list(point.explicit_bounds)
        if counts and len(counts) != len(bounds) + 1:
            raise PointProblem(
                f"histogram has {len(counts)} bucket counts for {len(bounds)} bounds, "
                "must be bounds + 1 (or none)"
            )
        if any(not a < b for a, b in zip(bounds, bounds[1:])) or any(map(math.isnan, bounds)):
            raise PointProblem("histogram bounds must be strictly increasing")
        return (
            point.count, point.sum, counts, bounds, *self.exemplars(point),
            point.flags, point.min, point.max, data.aggregation_temporality,
        )

    def exponential_histogram(self, point: Any, data: Any) -> tuple[Any, ...]:
        positive, negative = point.positive, point.negative
        return (
            point.count, point.sum, point.scale, point.zero_count,
            positive.offset, list(positive.bucket_counts),
            negative.offset, list(negative.bucket_counts),
            *self.exemplars(point),
            point.flags, point.min, point.max, data.aggregation_temporality,
        )

    def summary(self, point: Any, data: Any) -> tuple[Any, ...]:
        quantiles = point.quantile_values
        if any(not 0.0 <= q.quantile <= 1.0 for q in quantiles):
            raise PointProblem("summary quantiles must be within [0, 1]")
        return (
            point.count, point.sum,
            [q.quantile for q in quantiles], [q.value for q in quantiles],
            point.flags,
        )


def convert_metrics_request(
    request: ExportMetricsServiceRequest, limits: ConvertLimits = DEFAULT_LIMITS
) -> ConvertedMetrics:
    """Flatten every data point of ``request`` into its type's table; points that cannot be
    stored are counted, not stored; attributes beyond ``limits`` are cut and counted.

    A point needs a time (``time_unix_nano`` > 0); its start, exemplar and own time must fit
    ``DateTime`` (before 2106); exemplar ids must be empty or full length; a histogram's
    bucket counts must be empty or one more than its strictly increasing bounds; summary
    quantiles lie within [0, 1]. A metric without data points (or without data) adds no row
    and is no error. ``ServiceName`` is the resource's ``service.name`` ("" without one).
    """
    out = MetricColumns()
    mapper = AttributeMapper(limits)
    to_map = mapper.to_map
    points = _PointConverter(to_map)
    rejected = 0
    first_error = ""

    for resource_metrics in request.resource_metrics:
        resource = to_map(resource_metrics.resource.attributes)
        service = resource.get("service.name", "")
        for scope_metrics in resource_metrics.scope_metrics:
            scope = scope_metrics.scope
            scope_columns = (
                resource, resource_metrics.schema_url, scope.name, scope.version,
                to_map(scope.attributes), scope.dropped_attributes_count,
                scope_metrics.schema_url, service,
            )
            for metric in scope_metrics.metrics:
                kind = metric.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(metric, kind)
                own: Callable[[Any, Any], tuple[Any, ...]] = getattr(points, kind)
                columns = out.lists(TABLES_BY_KIND[kind])
                for point in data.data_points:
                    try:
                        row = _point_row(point, data, own, to_map)
                    except PointProblem as problem:
                        rejected += 1
                        first_error = first_error or _point_message(metric, problem)
                        continue
                    for column, value in zip(columns, (*scope_columns, metric.name,
                                                       metric.description, metric.unit, *row)):
                        column.append(value)

    cuts = (mapper.truncated, mapper.dropped)
    message = f"{rejected} data point(s) rejected: {first_error}" if rejected else ""
    if any(cuts):
        message = "; ".join(filter(None, (message, _limits_message(limits, *cuts))))
    return ConvertedMetrics(out, rejected, message, *cuts)


def _point_row(
    point: Any,
    data: Any,
    own: Callable[[Any, Any], tuple[Any, ...]],
    to_map: Callable[..., dict[str, str]],
) -> tuple[Any, ...]:
    """A point's columns from ``Attributes`` on, or ``PointProblem``."""
    if not point.time_unix_nano:
        raise PointProblem("time_unix_nano is required")
    start, time = _seconds(point.start_time_unix_nano), _seconds(point.time_unix_nano)
    return (to_map(point.attributes), start, time, *own(point, data))


def _point_message(metric: Metric, problem: PointProblem) -> str:
    return f"{metric.WhichOneof('data')} {metric.name!r}: {problem}"


def _limits_message(limits: ConvertLimits, truncated: int, dropped: int) -> str:
    parts = [
        f"{truncated} attribute value(s) truncated to {limits.max_value_bytes} bytes"
        if truncated
        else "",
        f"{dropped} attribute(s) dropped beyond {limits.max_attributes} per resource, scope, "
        "data point or exemplar"
        if dropped
        else "",
    ]
    return "limits applied, affected data points are stored: " + ", ".join(filter(None, parts))


def decode_metrics_json(payload: bytes) -> ExportMetricsServiceRequest:
    """An OTLP/JSON metrics export (hex exemplar ids), or ``InvalidRequest``."""
    return decode_json(payload, ExportMetricsServiceRequest, _HEX_IDS)


def convert_metrics(
    request: ExportMetricsServiceRequest, limits: ConvertLimits
) -> Conversion[MetricColumns]:
    converted = convert_metrics_request(request, limits)
    return Conversion(converted.metrics, converted.rejected, converted.error_message)


METRICS: Signal[ExportMetricsServiceRequest, MetricColumns] = Signal(
    name="metrics",
    item="data points",
    grpc_service=METRICS_SERVICE,
    http_path="/v1/metrics",
    request_type=ExportMetricsServiceRequest,
    response_type=ExportMetricsServiceResponse,
    rejected_field="rejected_data_points",
    count=data_point_count,
    decode_json=decode_metrics_json,
    convert=convert_metrics,
    new_columns=MetricColumns,
    column_fields=METRIC_COLUMN_FIELDS,
    insert=insert_metrics,
)

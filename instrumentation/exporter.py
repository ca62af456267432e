"""Which OTLP exporters the helper builds, and where they send.

The SDK exporters already read ``OTEL_EXPORTER_OTLP_[TRACES_|LOGS_|METRICS_]{ENDPOINT,HEADERS,
INSECURE,TIMEOUT,COMPRESSION,CERTIFICATE}`` when an argument is left ``None``, so this module
only adds what they leave to the caller: choosing gRPC or HTTP from
``OTEL_EXPORTER_OTLP_[TRACES_|LOGS_|METRICS_]PROTOCOL`` (the SDK reads that only in
``opentelemetry-instrument``), whether a signal is exported at all from ``OTEL_LOGS_EXPORTER``
/ ``OTEL_METRICS_EXPORTER``, and reading an explicit endpoint the way
``OTEL_EXPORTER_OTLP_ENDPOINT`` is read, so ``"127.0.0.1:4317"`` just works for every signal.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Literal, cast
from urllib.parse import urlsplit

from opentelemetry.sdk._logs.export import LogRecordExporter
from opentelemetry.sdk.metrics.export import MetricExporter
from opentelemetry.sdk.trace.export import SpanExporter

Protocol = Literal["grpc", "http/protobuf"]
PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
Encoder = Literal["wire", "sdk"]
ENCODERS: tuple[Encoder, ...] = ("wire", "sdk")
OtlpSignal = Literal["traces", "logs", "metrics"]
TRACES_PATH = "/v1/traces"


def resolve_protocol(
    protocol: str | None, env: Mapping[str, str] = os.environ, signal: OtlpSignal = "traces"
) -> Protocol:
    """The argument, else the signal's own env var (``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL``,
    ``_LOGS_PROTOCOL``, ``_METRICS_PROTOCOL``), else the general one, else gRPC."""
    chosen = (
        protocol
        or env.get(f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if chosen not in PROTOCOLS:
        raise ValueError(
            f"unsupported OTLP protocol {chosen!r}: use one of {', '.join(PROTOCOLS)} "
            "(the Python SDK has no http/json exporter)"
        )
    return cast(Protocol, chosen)


def exporter_endpoint(endpoint: str, protocol: Protocol, signal: OtlpSignal = "traces") -> str:
    """An explicit endpoint as the signal's exporter wants it.

    A bare ``host:port`` means plaintext (``http://``): the common case is a local receiver,
    and the gRPC exporter would otherwise try TLS. For OTLP/HTTP a URL without a path is a
    base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` is, so ``/v1/traces`` (``/v1/logs``) is
    appended. The endpoint is given for traces, so for logs (metrics) a path ending in
    ``/v1/traces`` becomes ``/v1/logs`` (``/v1/metrics``); any other path names a traces URL
    the other signal's cannot be derived from, which is a ``ValueError``.
    """
    endpoint = endpoint.strip()
    if not endpoint:
        raise ValueError("OTLP endpoint is empty: pass host:port or a URL")
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"OTLP endpoint {endpoint!r} is not host:port or an http(s):// URL")
    if protocol != "http/protobuf":
        return endpoint
    if parts.path in ("", "/"):
        return f"{endpoint.rstrip('/')}/v1/{signal}"
    if signal == "traces":
        return endpoint
    if parts.path.endswith(TRACES_PATH):
        return parts._replace(path=parts.path[: -len(TRACES_PATH)] + f"/v1/{signal}").geturl()
    raise ValueError(
        f"OTLP endpoint {endpoint!r}: its path does not end in {TRACES_PATH}, so the {signal} "
        f"URL cannot be derived from it; pass the base URL, or export_{signal}=False"
    )


def build_exporter(
    protocol: Protocol,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
    encoder: Encoder = "wire",
) -> SpanExporter:
    """An OTLP span exporter; ``None`` arguments fall through to the SDK's env handling.

    For gRPC, ``encoder="wire"`` writes the protobuf bytes directly
    (:mod:`otelhouse.instrumentation.otlp_encode`, the same bytes, a fraction of the CPU) and ``"sdk"``
    keeps the SDK's own exporter. OTLP/HTTP always uses the SDK's exporter."""
    if encoder not in ENCODERS:
        raise ValueError(f"unknown OTLP encoder {encoder!r}: use one of {', '.join(ENCODERS)}")
    target = exporter_endpoint(endpoint, protocol) if endpoint else None
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        from otelhouse.instrumentation.otlp_exporter import WireOTLPSpanExporter

        kind = WireOTLPSpanExporter if encoder == "wire" else OTLPSpanExporter
        return kind(endpoint=target, headers=dict(headers) if headers else None)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HTTPSpanExporter,
    )

    return HTTPSpanExporter(endpoint=target, headers=dict(headers) if headers else None)


SDK_EXPORTERS: dict[tuple[OtlpSignal, Protocol], tuple[str, str]] = {
    ("logs", "grpc"): ("opentelemetry.exporter.otlp.proto.grpc._log_exporter", "OTLPLogExporter"),
    ("logs", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http._log_exporter",
        "OTLPLogExporter",
    ),
    ("metrics", "grpc"): (
        "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
        "OTLPMetricExporter",
    ),
    ("metrics", "http/protobuf"): (
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
        "OTLPMetricExporter",
    ),
}
"""The SDK's exporter class of a signal other than traces, imported only when used."""


def sdk_exporter(
    signal: OtlpSignal,
    protocol: Protocol,
    endpoint: str | None,
    headers: Mapping[str, str] | None,
) -> object:
    """The SDK's OTLP exporter of ``signal``; ``endpoint`` is the one given for traces (see
    :func:`exporter_endpoint`), and ``None`` arguments fall through to the SDK's env handling
    (``OTEL_EXPORTER_OTLP_LOGS_*`` / ``_METRICS_*`` over ``OTEL_EXPORTER_OTLP_*``)."""
    module, name = SDK_EXPORTERS[signal, protocol]
    kind = getattr(importlib.import_module(module), name)
    target = exporter_endpoint(endpoint, protocol, signal) if endpoint else None
    return kind(endpoint=target, headers=dict(headers) if headers else None)


def build_log_exporter(
    protocol: Protocol,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> LogRecordExporter:
    """The SDK's OTLP log exporter (:func:`sdk_exporter`)."""
    return cast(LogRecordExporter, sdk_exporter("logs", protocol, endpoint, headers))


def build_metric_exporter(
    protocol: Protocol,
    endpoint: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> MetricExporter:
    """The SDK's OTLP metric exporter (:func:`sdk_exporter`), whose temporality and histogram
    aggregation preferences come from ``OTEL_EXPORTER_OTLP_METRICS_*`` as usual."""
    return cast(MetricExporter, sdk_exporter("metrics", protocol, endpoint, headers))


def export_wanted(wanted: bool | None, variable: str, env: Mapping[str, str] = os.environ) -> bool:
    """The argument, else the standard ``variable`` (``OTEL_LOGS_EXPORTER``,
    ``OTEL_METRICS_EXPORTER``; unset or ``otlp``: on, ``none``: off), whose default is
    ``otlp``. Other exporters are a ``ValueError``: the helper exports over OTLP only."""
    if wanted is not None:
        return wanted
    names = {name.strip() for name in env.get(variable, "otlp").split(",")} - {""}
    if not names or names == {"otlp"}:
        return True
    if names == {"none"}:
        return False
    flag = "export_" + variable.removeprefix("OTEL_").removesuffix("_EXPORTER").lower()
    raise ValueError(
        f"{variable}={env[variable]!r}: instrument_app exports over OTLP only; use otlp or "
        f"none (or pass {flag}=)"
    )

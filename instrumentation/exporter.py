"""Which OTLP exporter the helper builds, and where it sends.

The SDK exporters already read ``OTEL_EXPORTER_OTLP_[TRACES_]{ENDPOINT,HEADERS,INSECURE,
TIMEOUT,COMPRESSION,CERTIFICATE}`` when an argument is left ``None``, so this module only adds
what they leave to the caller: choosing gRPC or HTTP from ``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``
(the SDK reads that only in ``opentelemetry-instrument``), and reading an explicit endpoint the
way ``OTEL_EXPORTER_OTLP_ENDPOINT`` is read, so ``"127.0.0.1:4317"`` just works.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal, cast
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import SpanExporter

Protocol = Literal["grpc", "http/protobuf"]
PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
Encoder = Literal["wire", "sdk"]
ENCODERS: tuple[Encoder, ...] = ("wire", "sdk")
TRACES_PATH = "/v1/traces"


def resolve_protocol(protocol: str | None, env: Mapping[str, str] = os.environ) -> Protocol:
    """The argument, else the traces-specific env var, else the general one, else gRPC."""
    chosen = (
        protocol
        or env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    if chosen not in PROTOCOLS:
        raise ValueError(
            f"unsupported OTLP protocol {chosen!r}: use one of {', '.join(PROTOCOLS)} "
            "(the Python SDK has no http/json exporter)"
        )
    return cast(Protocol, chosen)


def exporter_endpoint(endpoint: str, protocol: Protocol) -> str:
    """An explicit endpoint as the exporter wants it.

    A bare ``host:port`` means plaintext (``http://``): the common case is a local receiver,
    and the gRPC exporter would otherwise try TLS. For OTLP/HTTP a URL without a path is a
    base URL, as ``OTEL_EXPORTER_OTLP_ENDPOINT`` is, so ``/v1/traces`` is appended.
    """
    endpoint = endpoint.strip()
    if not endpoint:
        raise ValueError("OTLP endpoint is empty: pass host:port or a URL")
    if "://" not in endpoint:
        endpoint = f"http://{endpoint}"
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"OTLP endpoint {endpoint!r} is not host:port or an http(s):// URL")
    if protocol == "http/protobuf" and parts.path in ("", "/"):
        return endpoint.rstrip("/") + TRACES_PATH
    return endpoint


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

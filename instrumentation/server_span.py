"""A lean ASGI middleware that makes one server span per HTTP request.

Why not ``opentelemetry-instrumentation-fastapi``: measured here (``bench/overhead.py``) its
machinery costs about 75 µs of CPU per request even when the span is not sampled (it matches
the route a second time to name the span, parses the URL three times, wraps the app in three
extra middlewares and computes metric attributes), against a 50 µs budget for the whole
tracing overhead. This middleware names the span from the route the router already matched
(``scope["route"]``) and sets the stable HTTP semantic-convention attributes once; the
contrib instrumentation stays available (``instrument_app(..., engine="contrib")``) for its
hooks, header capture and websocket spans, and is what ``opentelemetry-instrument`` uses.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from time import time_ns
from typing import Any

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.util.http import ExcludeList, get_excluded_urls, parse_excluded_urls

from otelhouse.instrumentation.metric_export import ServerMetrics
from otelhouse.instrumentation.span_attributes import (
    CleanValue,
    sampler_ignores_attributes,
    set_clean_attributes,
)
from otelhouse.instrumentation.traceparent import is_w3c_default, remote_parent
from otelhouse.instrumentation.trace_header import (
    ASGIApp,
    Message,
    Receive,
    Send,
    TraceIdHeaderMiddleware,
    add_trace_id,
    header_name,
)


EMPTY_CONTEXT = Context()
"""The parent of a request that carries no propagation header: a new trace, whatever the
server's own context holds (as ``propagate.extract`` gives for such a request)."""


class PropagationHeaders:
    """Picks the headers the global propagator reads out of a request's, in one pass.

    ``propagate.extract`` over the raw header list scans it once per propagated field
    (``traceparent``, ``tracestate``, ``baggage``, ...); gathering them first costs one scan,
    and a request without any (an edge request, a health probe) needs no extraction at all.
    A header sent more than once is joined with commas, which HTTP defines as the same thing:
    repeated ``baggage`` headers all count (the W3C propagator reads only one value), and a
    repeated ``traceparent`` becomes invalid, as the trace-context spec wants. A lone
    canonical ``traceparent`` under the default propagators is read directly
    (:mod:`.traceparent`)."""

    def __init__(self) -> None:
        self._textmap: object = None
        self._names: frozenset[bytes] = frozenset()
        self._w3c_default = False

    def _wanted(self) -> frozenset[bytes]:
        textmap = propagate.get_global_textmap()
        if textmap is not self._textmap:
            self._names = frozenset(header_name(field) for field in textmap.fields)
            self._w3c_default = is_w3c_default(textmap)
            self._textmap = textmap
        return self._names

    def parent(self, headers: Iterable[tuple[bytes, bytes]]) -> Context:
        """The context the request's headers continue, or :data:`EMPTY_CONTEXT`."""
        wanted = self._wanted()
        carrier: dict[str, str] = {}
        for name, value in headers:
            if name in wanted:
                key, text = name.decode("latin-1"), value.decode("latin-1")
                carrier[key] = f"{carrier[key]},{text}" if key in carrier else text
        if not carrier:
            return EMPTY_CONTEXT
        if self._w3c_default and len(carrier) == 1 and "traceparent" in carrier:
            parent = remote_parent(carrier["traceparent"], EMPTY_CONTEXT)
            if parent is not None:
                return parent
        return propagate.extract(carrier)


def request_attributes(scope: MutableMapping[str, Any]) -> dict[str, CleanValue]:
    """Stable HTTP server attributes from the ASGI scope, without parsing any URL; only
    ``str`` and ``int`` values, so they can skip the SDK's checks (:mod:`.span_attributes`)."""
    attributes: dict[str, CleanValue] = {
        "http.request.method": scope["method"],
        "url.scheme": scope.get("scheme", "http"),
        "url.path": scope.get("path", ""),
        "network.protocol.version": scope.get("http_version", "1.1"),
    }
    if scope.get("query_string"):
        attributes["url.query"] = scope["query_string"].decode("latin-1")
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
        if client[1] is not None:
            attributes["client.port"] = client[1]
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    for name, value in scope.get("headers", ()):
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
            break
    return attributes


FASTAPI_TELEMETRY_KEY = "fastapi.telemetry"
"""Where FastAPI's own telemetry keeps its per-request state in the ASGI scope."""


def traced_by_fastapi(scope: MutableMapping[str, Any]) -> bool:
    """True when FastAPI's own telemetry made this request's server span: it has claimed the
    request in the scope and the span current around the middleware stack is recording."""
    return (
        scope.get(FASTAPI_TELEMETRY_KEY) is not None and trace.get_current_span().is_recording()
    )


def route_template(scope: MutableMapping[str, Any]) -> str | None:
    """The matched route's template (``/items/{item_id}``), once the router has run."""
    route = scope.get("route")
    return getattr(route, "path_format", None) or getattr(route, "path", None)


class ServerSpanMiddleware:
    """One ``SERVER`` span per request, current while the app runs, continuing the caller's
    trace from ``traceparent``; an escaping exception is recorded on it with its stack trace
    and makes its status ``Error``, as does a 5xx answer.

    With ``trace_header`` it also answers with the trace id, as
    :class:`~instrumentation.trace_header.TraceIdHeaderMiddleware` would from inside it:
    doing it here spares a middleware layer and a context lookup per request.

    With ``metrics`` it records each request's duration (:class:`~instrumentation.metric_export.
    ServerMetrics`), sampled or not, from the two clock readings it then takes itself and
    hands to the span as its start and end times: span and measurement agree exactly.

    FastAPI (0.165 and later) makes a server span of its own when OpenTelemetry is configured
    for it (a global tracer provider, or ``FastAPI(telemetry=...)``); that span starts outside
    every middleware. A request FastAPI already traced gets no second span here, only the
    trace header, as an app instrumented by ``opentelemetry-instrument`` does; nor a
    measurement, as FastAPI records the duration too wherever a meter provider is set."""

    def __init__(
        self,
        app: ASGIApp,
        tracer: trace.Tracer,
        excluded: ExcludeList,
        trace_header: str | None = None,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer
        self.excluded = excluded
        self.header = header_name(trace_header) if trace_header else None
        self.propagation = PropagationHeaders()
        self.attributes_after_start = sampler_ignores_attributes(tracer)
        self.header_only: ASGIApp = (
            TraceIdHeaderMiddleware(app, trace_header) if trace_header else app
        )

    def _start(
        self, scope: MutableMapping[str, Any], parent: Context, start_ns: int | None
    ) -> trace.Span:
        attributes = request_attributes(scope)
        if not self.attributes_after_start:
            return self.tracer.start_span(
                scope["method"],
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
                start_time=start_ns,
            )
        span = self.tracer.start_span(
            scope["method"], context=parent, kind=SpanKind.SERVER, start_time=start_ns
        )
        if span.is_recording():
            set_clean_attributes(span, attributes)
        return span

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.excluded.url_disabled(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        if traced_by_fastapi(scope):
            await self.header_only(scope, receive, send)
            return
        parent = self.propagation.parent(scope.get("headers", ()))
        metrics = self.metrics
        start_ns = None if metrics is None else time_ns()
        span = self._start(scope, parent, start_ns)
        current = trace.set_span_in_context(span, parent)
        token = context.attach(current)
        header = self.header
        status = 0
        error_type: str | None = None

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if header is not None:
                    add_trace_id(message, header, span.get_span_context())
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        except Exception as exc:
            error_type = type(exc).__qualname__
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            context.detach(token)
            route = route_template(scope)
            if span.is_recording():
                self._describe(span, scope, route, status, error_type is not None)
            if metrics is None:
                span.end()
            else:
                assert start_ns is not None
                end_ns = time_ns()
                span.end(end_time=end_ns)
                metrics.record(start_ns, end_ns, scope, route, status, error_type, current)

    @staticmethod
    def _describe(
        span: trace.Span,
        scope: MutableMapping[str, Any],
        route: str | None,
        status: int,
        raised: bool,
    ) -> None:
        attributes: dict[str, CleanValue] = {}
        if route:
            span.update_name(f"{scope['method']} {route}")
            attributes["http.route"] = route
        if status:
            attributes["http.response.status_code"] = status
        if attributes:
            set_clean_attributes(span, attributes)
        if status >= 500 and not raised:
            span.set_status(Status(StatusCode.ERROR))


def excluded_urls(patterns: str | None) -> ExcludeList:
    """Comma-separated path regexes that get no span; None reads the standard env vars
    (``OTEL_PYTHON_FASTAPI_EXCLUDED_URLS``, then ``OTEL_PYTHON_EXCLUDED_URLS``)."""
    return get_excluded_urls("FASTAPI") if patterns is None else parse_excluded_urls(patterns)

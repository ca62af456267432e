"""The trace id in a response header, so a user or a support ticket can name the trace."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from functools import lru_cache
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import SpanContext, format_trace_id

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Receive, Send], Awaitable[None]]

DEFAULT_TRACE_HEADER = "X-Trace-Id"


@lru_cache(maxsize=256)
def header_name(header: str) -> bytes:
    """A header name as ASGI carries it: lower-case bytes (cached: propagators ask for the
    same few names on every request)."""
    return header.lower().encode("latin-1")


def add_trace_id(message: Message, header: bytes, context: SpanContext) -> None:
    """Append ``header: <trace id>`` to a response start message when ``context`` names a
    sampled trace; unsampled traces get no header: their id names nothing that was stored."""
    if context.is_valid and context.trace_flags.sampled:
        trace_id = format_trace_id(context.trace_id).encode("ascii")
        message["headers"] = [*message.get("headers", ()), (header, trace_id)]


class TraceIdHeaderMiddleware:
    """Adds the trace id of the span current when the response starts.

    It must wrap the OpenTelemetry middleware from outside: the server span is current while
    any inner layer calls ``send`` (including the error middleware answering 500 for an
    unhandled exception), so the header is on error responses too, which is where it helps
    most. The lean server span middleware adds the header itself (one layer less per
    request); this one serves the contrib engine and apps instrumented by someone else.
    """

    def __init__(self, app: ASGIApp, header: str = DEFAULT_TRACE_HEADER) -> None:
        self.app = app
        self.header = header_name(header)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_trace_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                add_trace_id(message, self.header, trace.get_current_span().get_span_context())
            await send(message)

        await self.app(scope, receive, send_with_trace_id)

"""Bearer-token auth for both OTLP transports, on only when ``OTELHOUSE_OTLP_TOKENS`` is set.

The check runs before any handler (a gRPC server interceptor, an ASGI middleware), so a
request without a valid token is refused before its body is decoded and nothing of it can
reach storage; unknown methods and routes are refused the same way, never revealed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import grpc
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from otelhouse.core.tokens import BearerTokens
from otelhouse.receiver.stats import IngestStats

REFUSAL = "missing or wrong bearer token (see OTELHOUSE_OTLP_TOKENS)"


async def _deny(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.UNAUTHENTICATED, REFUSAL)
    raise AssertionError("abort returned")  # pragma: no cover - abort always raises


_DENIED = grpc.unary_unary_rpc_method_handler(_deny)


class GrpcBearerAuth(grpc.aio.ServerInterceptor):
    """UNAUTHENTICATED for every method (known or not) called without an accepted token."""

    def __init__(self, tokens: BearerTokens, stats: IngestStats) -> None:
        self._tokens = tokens
        self._stats = stats

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        metadata = handler_call_details.invocation_metadata or ()
        header = next((value for key, value in metadata if key == "authorization"), None)
        if self._tokens.accepts(header if isinstance(header, str) else None):
            return await continuation(handler_call_details)
        self._stats.unauthenticated_requests += 1
        return _DENIED


class HttpBearerAuth:
    """ASGI middleware: every HTTP route needs an accepted token; ``deny`` words the 401."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: BearerTokens,
        stats: IngestStats,
        deny: Callable[[Headers], Response],
    ) -> None:
        self._app = app
        self._tokens = tokens
        self._stats = stats
        self._deny = deny

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if self._tokens.accepts(headers.get("authorization")):
            await self._app(scope, receive, send)
            return
        self._stats.unauthenticated_requests += 1
        await self._deny(headers)(scope, receive, send)

"""OTLP/HTTP: one ``POST`` route per signal (protobuf or JSON, gzip or not) and ``GET /metrics``.

Status codes come from ``receiver.errors`` and follow the OTLP/HTTP spec: 400 for undecodable
bodies, 413 over the size limit (checked after decompression, which is capped so a gzip bomb
never expands past it), 503 with ``Retry-After`` when the receiver cannot take the request now,
401 without an accepted token. Errors carry a ``google.rpc.Status`` in the request's own
encoding.
"""

from __future__ import annotations

import logging
import math
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message
from google.rpc import code_pb2, status_pb2
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from otelhouse.core.asgi import HostedUvicorn
from otelhouse.core.addresses import split_host_port
from otelhouse.core.tokens import BearerTokens
from otelhouse.core.tls import server_tls
from otelhouse.receiver.auth import REFUSAL, HttpBearerAuth
from otelhouse.receiver.errors import (
    IngestError,
    InvalidRequest,
    RequestTooLarge,
    RetryLater,
    UnsupportedMedia,
    error_codes,
)
from otelhouse.receiver.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from otelhouse.receiver.metrics import ReceiverMetrics
from otelhouse.receiver.pipeline import Decoder, Receiver, SignalPipeline

log = logging.getLogger(__name__)

PROTOBUF = "application/x-protobuf"
JSON = "application/json"
GZIP_WBITS = 16 + zlib.MAX_WBITS


def media_type(headers: Headers) -> str:
    return headers.get("content-type", "").partition(";")[0].strip().lower()


def encode(message: Message, media: str) -> Response:
    """``message`` as protobuf, or as JSON for JSON requests (and for unknown media types,
    where JSON is the readable choice)."""
    if media == PROTOBUF:
        return Response(message.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(message, indent=None), media_type=JSON)


def error_response(error: IngestError, media: str) -> Response:
    response = encode(error.status(), media)
    response.status_code = error_codes(error).http
    response.headers.update(retry_headers(error))
    return response


def retry_headers(error: IngestError) -> dict[str, str]:
    """``Retry-After`` (whole seconds, at least 1) when ``error`` asks the client to retry."""
    if isinstance(error, RetryLater):
        return {"Retry-After": str(max(1, math.ceil(error.retry_after_s)))}
    return {}


def unauthorized(headers: Headers) -> Response:
    response = encode(
        status_pb2.Status(code=code_pb2.UNAUTHENTICATED, message=REFUSAL), media_type(headers)
    )
    response.status_code = 401
    response.headers["WWW-Authenticate"] = "Bearer"
    return response


def gunzip(data: bytes, limit: int) -> bytes:
    """Every gzip member of ``data``, never inflating more than ``limit + 1`` bytes."""
    out = bytearray()
    rest = data
    while rest:
        inflater = zlib.decompressobj(GZIP_WBITS)
        try:
            out += inflater.decompress(rest, limit + 1 - len(out))
        except zlib.error as exc:
            raise InvalidRequest(f"body is not valid gzip: {exc}") from None
        if len(out) > limit:
            raise RequestTooLarge(f"request exceeds {limit} bytes after decompression")
        if not inflater.eof:
            raise InvalidRequest("body is not valid gzip: truncated stream")
        rest = inflater.unused_data
    return bytes(out)


def declared_length(headers: Headers) -> int:
    """``Content-Length``, or 0 for a body of unknown length (chunked): such a body counts
    against the in-flight budget chunk by chunk as it is read."""
    declared = headers.get("content-length", "")
    return int(declared) if declared.isdigit() else 0


async def read_body(
    request: Request, limit: int, on_chunk: Callable[[int], None] | None = None
) -> bytes:
    """The raw body, refused as soon as it passes ``limit`` (before it is all read);
    ``on_chunk`` is told each chunk's size as it arrives, and may refuse it by raising."""
    declared = declared_length(request.headers)
    if declared > limit:
        raise RequestTooLarge(f"request of {declared} bytes exceeds the {limit}-byte limit")
    body = bytearray()
    async for chunk in request.stream():
        if on_chunk is not None:
            on_chunk(len(chunk))
        body += chunk
        if len(body) > limit:
            raise RequestTooLarge(f"request exceeds the {limit}-byte limit")
    return bytes(body)


def payload_decoder(pipeline: SignalPipeline[Any, Any], headers: Headers, limit: int) -> Decoder:
    """Decompression (if any) then the signal's decoder for the content type."""
    media = media_type(headers)
    if media == PROTOBUF:
        decode: Decoder = pipeline.signal.decode_protobuf
    elif media == JSON:
        decode = pipeline.signal.decode_json
    else:
        raise UnsupportedMedia(f"content type must be {PROTOBUF} or {JSON}")
    inflate = decompressor(headers, limit)
    if inflate is None:
        return decode
    return lambda payload: decode(inflate(payload))


def decompressor(headers: Headers, limit: int) -> Callable[[bytes], bytes] | None:
    """What undoes the body's ``Content-Encoding`` (None for identity), capped at ``limit``
    bytes; ``UnsupportedMedia`` for an encoding other than gzip."""
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding == "identity":
        return None
    if encoding == "gzip":
        return lambda payload: gunzip(payload, limit)
    raise UnsupportedMedia(f"content encoding {encoding!r} is not supported; use gzip or none")


async def read_held_body(pipeline: SignalPipeline[Any, Any], request: Request, limit: int) -> bytes:
    """The raw body, read while its declared size (or, without one, each chunk as it
    arrives) is held in ``pipeline``'s in-flight budget; ``IngestError``, not yet counted,
    when it is over ``limit`` or does not fit the budget."""
    declared = declared_length(request.headers)
    with pipeline.hold(declared) as held:
        return await read_body(request, limit, on_chunk=None if declared else held.grow)


def create_otlp_http_app(
    receiver: Receiver,
    *,
    max_request_bytes: int,
    tokens: BearerTokens,
    metrics: ReceiverMetrics | None = None,
) -> Starlette:
    """One ``POST`` route per pipeline of ``receiver`` (at its signal's path), and
    ``GET /metrics`` when ``metrics`` is given."""
    routes = [
        Route(p.signal.http_path, export_endpoint(p, max_request_bytes), methods=["POST"])
        for p in receiver.pipelines
    ]
    if metrics is not None:
        routes.append(Route("/metrics", metrics_endpoint(metrics), methods=["GET"]))
    middleware = (
        [Middleware(HttpBearerAuth, tokens=tokens, stats=receiver.auth_stats, deny=unauthorized)]
        if tokens.required
        else []
    )
    return Starlette(routes=routes, middleware=middleware)


def export_endpoint(
    pipeline: SignalPipeline[Any, Any], max_request_bytes: int
) -> Callable[[Request], Awaitable[Response]]:
    async def take(request: Request) -> Message:
        try:
            decode = payload_decoder(pipeline, request.headers, max_request_bytes)
            payload = await read_held_body(pipeline, request, max_request_bytes)
        except IngestError as exc:
            pipeline.refuse(exc)
        return await pipeline.export(payload, decode)

    async def export(request: Request) -> Response:
        media = media_type(request.headers)
        try:
            return encode(await take(request), media)
        except IngestError as exc:
            return error_response(exc, media)

    return export


def metrics_endpoint(metrics: ReceiverMetrics) -> Callable[[Request], Awaitable[Response]]:
    async def render(request: Request) -> Response:
        return Response(metrics.render(), media_type=METRICS_CONTENT_TYPE)

    return render


class OtlpHttpReceiver:
    """uvicorn serving the OTLP/HTTP app of ``receiver`` (with its ``/metrics``) on the
    running event loop, beside the gRPC server."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.config = receiver.config
        self.app = create_otlp_http_app(
            receiver,
            max_request_bytes=self.config.max_request_bytes,
            tokens=BearerTokens(self.config.tokens),
            metrics=receiver.metrics,
        )
        self.port: int | None = None
        self._server: HostedUvicorn | None = None

    async def start(self) -> int:
        """Binds before returning: ``OSError`` when the port is taken, ``TlsConfigError``
        for unusable TLS files."""
        tls = server_tls(self.config.tls_cert_file, self.config.tls_key_file)
        self._server = HostedUvicorn(
            self.app,
            self.config.http_addr,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=10,
            **(tls.uvicorn_options() if tls else {}),
        )
        self.port = await self._server.start()
        host = split_host_port(self.config.http_addr)[0]
        scheme = "https" if tls else "http"
        urls = ", ".join(
            f"{scheme}://{host}:{self.port}{p.signal.http_path}" for p in self.receiver.pipelines
        )
        log.info("OTLP/HTTP receiver on %s", urls)
        return self.port

    async def stop(self) -> None:
        """Stop accepting; requests in flight finish (their rows are flushed by
        ``Receiver.stop``, which the caller runs alongside)."""
        if self._server is not None:
            await self._server.stop()

"""OTELHOUSE_OTLP_TOKENS: every gRPC method and every HTTP route refuses a request without an
accepted bearer token, and nothing of it is stored; an accepted token works on both."""

from __future__ import annotations

import grpc
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from google.rpc import code_pb2, status_pb2
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from starlette.routing import Route

from otelhouse.core.tokens import BearerTokens
from otelhouse.receiver.traces import TRACES
from otelhouse.demo.payloads import realistic_request
from tests.receiver.http_harness import HttpReceiver, StartHttpReceiver, stored_count

TOKENS = "alpha-7f3c9e,beta-0d41aa"
REFUSED_HEADERS = {
    "no header": None,
    "wrong token": "Bearer gamma",
    "token prefix": "Bearer alpha-7f3c",
    "token with suffix": "Bearer alpha-7f3c9e0",
    "basic scheme": "Basic alpha-7f3c9e",
    "empty bearer": "Bearer",
    "both tokens": "Bearer alpha-7f3c9e,beta-0d41aa",
}
ACCEPTED_HEADERS = ["Bearer alpha-7f3c9e", "bearer beta-0d41aa", "Bearer  beta-0d41aa"]
PAYLOAD = realistic_request(5).SerializeToString()


def payload(seed: int) -> bytes:
    """Distinct spans per request: the tables deduplicate identical insert blocks."""
    return realistic_request(5, seed=seed).SerializeToString()


@pytest.fixture
def secured(start_http_receiver: StartHttpReceiver) -> HttpReceiver:
    return start_http_receiver(otlp_tokens=TOKENS)


def grpc_call(
    receiver: HttpReceiver, method: str, authorization: str | None, body: bytes = PAYLOAD
) -> ExportTraceServiceResponse:
    channel = grpc.insecure_channel(receiver.thread.endpoint)
    call = channel.unary_unary(
        method, request_serializer=None, response_deserializer=ExportTraceServiceResponse.FromString
    )
    metadata = [("authorization", authorization)] if authorization is not None else None
    try:
        return call(body, metadata=metadata, timeout=10)
    finally:
        channel.close()


@pytest.mark.parametrize("method", [TRACES.grpc_method, "/otelhouse.Unknown/Method"])
def test_grpc_methods_refuse_missing_or_wrong_tokens(
    secured: HttpReceiver, storage: Client, method: str
) -> None:
    for label, header in REFUSED_HEADERS.items():
        with pytest.raises(grpc.RpcError) as caught:
            grpc_call(secured, method, header)
        assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED, label
        assert "OTELHOUSE_OTLP_TOKENS" in caught.value.details()
    assert secured.thread.receiver.stats.unauthenticated_requests == len(REFUSED_HEADERS)
    assert secured.thread.receiver.stats.requests == 0
    assert stored_count(storage) == 0


def test_grpc_accepts_either_token(secured: HttpReceiver, storage: Client) -> None:
    for seed, header in enumerate(ACCEPTED_HEADERS):
        grpc_call(secured, TRACES.grpc_method, header, payload(seed))
    assert stored_count(storage) == 5 * len(ACCEPTED_HEADERS)


def test_sdk_grpc_exporter_with_token_header(secured: HttpReceiver, storage: Client) -> None:
    results = []
    for headers in ({"authorization": "Bearer beta-0d41aa"}, {"authorization": "Bearer nope"}):
        exporter = OTLPSpanExporter(
            endpoint=secured.thread.endpoint, insecure=True, headers=headers, timeout=10
        )
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("auth").start_as_current_span("with token"):
            pass
        provider.shutdown()
        results.append(secured.thread.receiver.stats.stored)
    assert results == [1, 1]
    assert stored_count(storage) == 1


def http_routes(receiver: HttpReceiver) -> list[tuple[str, str]]:
    """Every route the OTLP/HTTP app serves, and one it does not."""
    routes = [
        (method, route.path)
        for route in receiver.http.app.routes
        if isinstance(route, Route)
        for method in sorted(route.methods - {"HEAD"})
    ]
    assert ("POST", "/v1/traces") in routes and ("GET", "/metrics") in routes
    return [*routes, ("POST", "/v1/unknown")]


def test_http_routes_refuse_missing_or_wrong_tokens(
    secured: HttpReceiver, http_client: httpx.Client, storage: Client
) -> None:
    refused = 0
    for method, path in http_routes(secured):
        for label, header in {**REFUSED_HEADERS, "latin-1 token": "Bearer alphä"}.items():
            headers = {"content-type": "application/x-protobuf"}
            if header is not None:
                headers["authorization"] = header.encode("latin-1")
            reply = http_client.request(
                method, f"{secured.url}{path}", content=PAYLOAD, headers=headers
            )
            refused += 1
            assert reply.status_code == 401, (method, path, label)
            assert reply.headers["www-authenticate"] == "Bearer"
            status = status_pb2.Status.FromString(reply.content)
            assert status.code == code_pb2.UNAUTHENTICATED
    assert secured.thread.receiver.stats.unauthenticated_requests == refused
    assert stored_count(storage) == 0


def test_http_accepts_either_token(
    secured: HttpReceiver, http_client: httpx.Client, storage: Client
) -> None:
    for seed, header in enumerate(ACCEPTED_HEADERS):
        reply = http_client.post(
            secured.traces_url,
            content=payload(seed),
            headers={"content-type": "application/x-protobuf", "authorization": header},
        )
        assert reply.status_code == 200
    token = {"authorization": ACCEPTED_HEADERS[0]}
    metrics = http_client.get(f"{secured.url}/metrics", headers=token)
    assert metrics.status_code == 200
    assert stored_count(storage) == 5 * len(ACCEPTED_HEADERS)


@pytest.mark.parametrize(
    ("tokens", "header", "accepted"),
    [
        ([], None, True),
        (["s3cret"], "Bearer s3cret", True),
        (["s3cret"], "Bearer S3CRET", False),
        (["s3cret"], "Bearer s3cre", False),
        (["s3cret"], "s3cret", False),
        (["s3cret"], "Bearer café", False),
        (["a", "b"], "Bearer b", True),
    ],
)
def test_bearer_token_comparison(tokens: list[str], header: str | None, accepted: bool) -> None:
    assert BearerTokens(tokens).accepts(header) is accepted

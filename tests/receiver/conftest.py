"""Receiver fixtures beyond the shared ones: an OTLP/HTTP receiver on a free loopback port,
on the same event loop as the gRPC receiver of ``start_receiver`` (as ``otelhouse serve``
runs them)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest

from receiver.batcher import Sink
from receiver.http_service import OtlpHttpReceiver
from tests.conftest import ReceiverThread
from tests.receiver.http_harness import HttpReceiver


@pytest.fixture
def start_http_receiver(
    start_receiver: Callable[..., ReceiverThread],
) -> Iterator[Callable[..., HttpReceiver]]:
    """Factory like ``start_receiver``: gRPC and HTTP receivers sharing one batcher."""
    started: list[HttpReceiver] = []

    def start(sink: Sink | None = None, **changes: object) -> HttpReceiver:
        thread = start_receiver(sink, otlp_http_addr="127.0.0.1:0", **changes)
        grpc_receiver = thread.receiver
        http = OtlpHttpReceiver(
            grpc_receiver.settings, grpc_receiver.ingest, metrics=grpc_receiver.metrics
        )
        thread.call(http.start())
        handle = HttpReceiver(thread, http, tls=grpc_receiver.settings.tls_cert_file is not None)
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.thread.call(handle.http.stop())


@pytest.fixture
def http_receiver(start_http_receiver: Callable[..., HttpReceiver]) -> HttpReceiver:
    return start_http_receiver()


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as client:
        yield client

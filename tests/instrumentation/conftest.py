"""Serve an app for real (uvicorn on a free loopback port, in a thread) and read back the
spans that reached the receiver fixture's storage."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI

SPAN_COLUMNS = (
    "TraceId, SpanId, ParentSpanId, SpanName, SpanKind, ServiceName, StatusCode, "
    "StatusMessage, SpanAttributes, ResourceAttributes, HttpMethod, HttpRoute, "
    "HttpStatusCode, ClientAddress, `Events.Name` AS EventNames, "
    "`Events.Attributes` AS EventAttributes"
)


@contextmanager
def serving(app: FastAPI, startup_timeout_s: float = 10.0) -> Iterator[str]:
    """Yield the base URL while uvicorn serves ``app``; leaving waits for a graceful stop,
    so every server span has ended by then."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def stored(storage: Client) -> Callable[..., list[dict[str, Any]]]:
    """``stored(where, **params)``: the matching span rows, oldest first. No waiting: the
    receiver acknowledges an export only once it is stored, so after a successful flush
    (``handle.shutdown()`` is True) every span is there."""

    def fetch(where: str = "1", **parameters: Any) -> list[dict[str, Any]]:
        sql = f"SELECT {SPAN_COLUMNS} FROM otel_traces WHERE {where} ORDER BY Timestamp"
        return list(storage.query(sql, parameters=parameters).named_results())

    return fetch

"""Fixtures shared by the instrumentation tests."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from tests.receiver.http_harness import HttpReceiver


class Records(logging.Handler):
    """Keeps every record it handles, for comparing with what was exported."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(params=["grpc", "http/protobuf"])
def export_to(
    request: pytest.FixtureRequest, start_http_receiver: Callable[..., HttpReceiver]
) -> dict[str, str]:
    """``instrument_app`` arguments that export to a real receiver over each OTLP protocol."""
    http = start_http_receiver()
    if request.param == "grpc":
        return {"endpoint": http.thread.endpoint}
    return {"endpoint": http.traces_url, "protocol": request.param}

"""Fixtures shared by the instrumentation tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.receiver.http_harness import HttpReceiver


@pytest.fixture(params=["grpc", "http/protobuf"])
def export_to(
    request: pytest.FixtureRequest, start_http_receiver: Callable[..., HttpReceiver]
) -> dict[str, str]:
    """``instrument_app`` arguments that export to a real receiver over each OTLP protocol."""
    http = start_http_receiver()
    if request.param == "grpc":
        return {"endpoint": http.thread.endpoint}
    return {"endpoint": http.traces_url, "protocol": request.param}

"""Storage unavailability at the API's boundary: 503 with ``Retry-After`` and a JSON body
(Jaeger's envelope under /jaeger), served for real by uvicorn; a query that is a bug still
answers 500."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError, ProgrammingError
from fastapi.testclient import TestClient

from otelhouse.core.health import ComponentHealth, HealthRegistry
from otelhouse.query.app import create_app
from otelhouse.query.config import ApiConfig
from otelhouse.query.unavailable import storage_unavailable
from otelhouse.settings import Settings
from otelhouse.storage import StorageConfig, StorageUnavailable
from tests.app_server import serving


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def down_api(tmp_path: Path) -> Iterator[str]:
    """The API on a free port whose storage is a ClickHouse server that is not there."""
    storage = StorageConfig(tmp_path, f"http://otel:s3cret@127.0.0.1:{closed_port()}/otel")
    with serving(create_app(ApiConfig(addr="127.0.0.1:0"), storage)) as url:
        yield url


def test_api_answers_503_with_retry_after_while_storage_is_down(down_api: str) -> None:
    response = httpx.get(f"{down_api}/api/v1/services", timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail.startswith("storage unavailable, retry in 5s: cannot open ClickHouse at ")
    assert "s3cret" not in detail


def test_jaeger_answers_503_in_its_envelope_while_storage_is_down(down_api: str) -> None:
    response = httpx.get(f"{down_api}/jaeger/api/services", timeout=30)
    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    body = response.json()
    assert body["data"] is None and body["total"] == 0
    (error,) = body["errors"]
    assert error["code"] == 503 and error["msg"].startswith("storage unavailable")


def test_healthz_reports_unreachable_storage(down_api: str) -> None:
    response = httpx.get(f"{down_api}/healthz", timeout=30)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded" and body["storage"].startswith("unreachable: ")


@pytest.mark.parametrize(
    ("exc", "unavailable"),
    [
        (StorageUnavailable("cannot open"), True),
        (OperationalError("Error executing HTTP request"), True),
        (DatabaseError("too many queries", code=202), True),
        (DatabaseError("unknown table", code=60), False),
        (DatabaseError("syntax error", code=62), False),
        (ProgrammingError("bad binding"), False),
        (ValueError("bug"), False),
    ],
)
def test_only_connection_and_capacity_failures_count_as_unavailable(
    exc: Exception, unavailable: bool
) -> None:
    assert storage_unavailable(exc) is unavailable


def test_a_query_that_fails_in_clickhouse_is_still_a_500(
    settings: Settings, storage: Client
) -> None:
    storage.command("DROP TABLE otel_traces SYNC")
    app = create_app(settings.api_config(), settings.storage_config())
    with TestClient(app, raise_server_exceptions=False) as api:
        for path in ("/api/v1/services", "/jaeger/api/services"):
            response = api.get(path)
            assert response.status_code == 500, (path, response.text)
            assert "retry-after" not in response.headers


def test_healthz_reports_every_registered_component(settings: Settings, storage: Client) -> None:
    health = HealthRegistry()
    health.register("receiver", lambda: ComponentHealth({"queued_spans": 3}))
    app = create_app(settings.api_config(), settings.storage_config(), health=health)
    with TestClient(app) as api:
        assert api.get("/healthz").json() == {
            "status": "ok",
            "storage": "ok",
            "receiver": {"queued_spans": 3},
        }
        health.register("wal", lambda: ComponentHealth("stalled", healthy=False))
        response = api.get("/healthz")
        assert response.status_code == 503 and response.json()["status"] == "degraded"
        assert response.json()["wal"] == "stalled"
    assert "storage" not in health.report().components

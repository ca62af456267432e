"""Bearer-token auth: every /api and /jaeger route needs a token when tokens are configured,
none when they are not; /healthz never does."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client
from fastapi import FastAPI
from fastapi.testclient import TestClient

from otelhouse.settings import Settings
from otelhouse.query.app import create_app

TOKENS = ("alpha-token", "beta-token")
REFUSED_HEADERS = (
    {},
    {"Authorization": "Bearer wrong"},
    {"Authorization": f"Bearer {TOKENS[0]}x"},
    {"Authorization": f"Basic {TOKENS[0]}"},
    {"Authorization": TOKENS[0]},
    {"Authorization": "Bearer "},
    {"Authorization": "Bearer alpha-tokén".encode("latin-1")},
)


def protected_paths(app: FastAPI) -> list[str]:
    """Every GET operation under /api or /jaeger in the OpenAPI schema, path parameters
    filled with a 32-hex id."""
    return sorted(
        re.sub(r"\{[^}]+\}", "0" * 32, path)
        for path, operations in app.openapi()["paths"].items()
        if "get" in operations and path.startswith(("/api", "/jaeger"))
    )


@pytest.fixture
def secured(settings: Settings, storage: Client) -> Iterator[TestClient]:
    tokens = f" {TOKENS[0]} ,{TOKENS[1]}"
    secured = settings.model_copy(update={"api_tokens": tokens})
    with TestClient(create_app(secured.api_config(), secured.storage_config())) as client:
        yield client


def test_every_route_needs_a_valid_token(secured: TestClient) -> None:
    paths = protected_paths(secured.app)
    assert {"/api/v1/services", "/api/v1/exceptions", "/api/v1/summary"} <= set(paths)
    for path in paths:
        for headers in REFUSED_HEADERS:
            response = secured.get(path, headers=headers)
            assert response.status_code == 401, (path, headers)
            assert response.headers["www-authenticate"] == "Bearer"
        for token in TOKENS:
            response = secured.get(path, headers={"Authorization": f"Bearer {token}"})
            assert response.status_code not in (401, 500), (path, response.text)


def test_healthz_needs_no_token(secured: TestClient) -> None:
    assert secured.get("/healthz").json() == {"status": "ok", "storage": "ok"}


def test_without_tokens_every_route_is_open(api: TestClient) -> None:
    for path in protected_paths(api.app):
        response = api.get(path)
        assert response.status_code not in (401, 500), (path, response.text)

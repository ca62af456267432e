"""Query API fixtures: the real app (its lifespan opens its own client on the test's
database in the shared data directory) driven through FastAPI's TestClient."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from otelhouse.settings import Settings
from otelhouse.query.app import create_app


@pytest.fixture
def api(settings: Settings, storage: Client) -> Iterator[TestClient]:
    with TestClient(create_app(settings.api_config(), settings.storage_config())) as client:
        yield client

"""Schemathesis over the aggregate, logs and Jaeger endpoints' OpenAPI schema: generated
query strings, valid and deliberately invalid, never produce a 5xx, every answer's status is
one the schema declares (for Jaeger: 400, never FastAPI's 422) and its body matches the
documented model; the JSON log intake (``POST /api/v1/logs``) gets generated bodies the same
way. Each operation is driven through Hypothesis here (rather than schemathesis'
pytest plugin) because the app needs this test's database, a function-scoped fixture."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import schemathesis
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from otelhouse.settings import Settings
from otelhouse.query.app import create_app
from otelhouse.storage.logs import insert_logs
from otelhouse.storage.traces import insert_spans
from tests.conftest import IngestApi
from tests.query import log_records
from tests.query.spans import Window, generate, to_columns

AGGREGATE_PATHS = (
    r"^/api/v1/(services|operations|latency|errors|exceptions|summary|endpoints/top"
    r"|requests/recent|service-map)$"
)
EXAMPLES_PER_OPERATION = 40


def fuzz(settings: Settings, storage: Client, mode: GenerationMode, paths: str) -> int:
    """Runs every operation under ``paths`` with the checks; returns how many there were."""
    window = Window.last(60)
    spans = generate(300, start_ns=window.start_ns, end_ns=window.end_ns)
    insert_spans(storage, to_columns(spans))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings.api_config(), settings.storage_config()))
    operations = [result.ok() for result in schema.include(path_regex=paths).get_all_operations()]
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=checks)

        no_server_error()
    return len(operations)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_aggregates(settings: Settings, storage: Client, mode: GenerationMode) -> None:
    assert fuzz(settings, storage, mode, AGGREGATE_PATHS) == 9


@pytest.mark.parametrize(
    ("mode", "paths", "count"),
    [
        (GenerationMode.POSITIVE, r"^/jaeger/api/", 6),
        # The other Jaeger routes take free-form strings that the router parses the way Jaeger
        # does (tests/query/test_jaeger.py): the schema leaves nothing to get wrong there.
        (GenerationMode.NEGATIVE, r"^/jaeger/api/operations$", 1),
    ],
)
def test_jaeger_api(
    settings: Settings, storage: Client, mode: GenerationMode, paths: str, count: int
) -> None:
    assert fuzz(settings, storage, mode, paths) == count


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_logs(settings: Settings, storage: Client, mode: GenerationMode) -> None:
    window = Window.last(60)
    logs = log_records.generate(random.Random(2), 300, window.start_ns, window.end_ns)
    insert_logs(storage, log_records.to_columns(logs))
    assert fuzz(settings, storage, mode, r"^/api/v1/logs") == 2


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_json_logs_ingest(
    start_ingest_api: Callable[..., IngestApi], storage: Client, mode: GenerationMode
) -> None:
    """``POST /api/v1/logs`` as ``serve`` mounts it (the receiver's router on the API app),
    served for real: the router submits to a pipeline on the server's event loop."""
    api = start_ingest_api()
    schema = schemathesis.openapi.from_url(f"{api.url}/openapi.json")
    [operation] = [
        result.ok()
        for result in schema.include(path_regex=r"^/api/v1/logs$", method="POST").get_all_operations()
    ]
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]

    @given(case=operation.as_strategy(generation_mode=mode))
    @hypothesis_settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def no_server_error(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=checks)

    no_server_error()
    if mode is GenerationMode.POSITIVE:
        assert storage.query("SELECT count() FROM otel_logs").result_rows[0][0] > 0

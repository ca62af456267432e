"""Schemathesis over the aggregate endpoints' OpenAPI schema: generated query strings, valid
and deliberately invalid, never produce a 5xx, and every 2xx body matches its documented
response model. Each operation is driven through Hypothesis here (rather than schemathesis'
pytest plugin) because the app needs this test's database, a function-scoped fixture."""

from __future__ import annotations

import pytest
import schemathesis
from clickhouse_connect.driver.client import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error, response_schema_conformance

from otelhouse.settings import Settings
from query.app import create_app
from storage.traces import insert_spans
from tests.query.spans import Window, generate, to_columns

AGGREGATE_PATHS = (
    r"^/api/v1/(services|operations|latency|errors|exceptions|summary|endpoints/top"
    r"|requests/recent)$"
)
EXAMPLES_PER_OPERATION = 40


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_server_errors(settings: Settings, storage: Client, mode: GenerationMode) -> None:
    window = Window.last(60)
    spans = generate(300, start_ns=window.start_ns, end_ns=window.end_ns)
    insert_spans(storage, to_columns(spans))
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(settings))
    aggregates = schema.include(path_regex=AGGREGATE_PATHS)
    operations = [result.ok() for result in aggregates.get_all_operations()]
    assert len(operations) == 8

    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        no_server_error()

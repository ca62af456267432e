"""The demo services propagate one trace across two services and log into it; ``otelhouse
demo`` runs until Ctrl-C and leaves every answered request stored, with its logs and its
``http.server.request.duration`` measurement, which the metrics API aggregates."""

from __future__ import annotations

import random
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from fastapi.testclient import TestClient

from otelhouse.instrumentation import Instrumentation, instrument_app
from otelhouse.instrumentation.metric_export import DURATION
from otelhouse.query.app import create_app
from otelhouse.settings import Settings
from otelhouse.demo.runner import DemoError, check_reachable
from otelhouse.demo.services import (
    INVENTORY_LOGGER,
    SHOP_LOGGER,
    Behaviour,
    create_inventory_app,
    create_shop_app,
)
from tests.app_server import serving
from otelhouse.core.addresses import free_port

Stored = Callable[..., list[dict[str, Any]]]
REPO = Path(__file__).resolve().parents[2]
MEASURED_REQUESTS = (
    "SELECT ServiceName AS service, sum(latest) AS requests FROM (SELECT ServiceName, "
    "max(Count) AS latest FROM otel_metrics_histogram WHERE MetricName = {m:String} "
    "GROUP BY ServiceName, Attributes) GROUP BY ServiceName"
)
"""Requests per service: the newest (largest) cumulative count of each series, summed."""


def call_shop(
    endpoint: str, behaviour: Behaviour, requests: Callable[[httpx.Client], list[httpx.Response]]
) -> list[httpx.Response]:
    """Serve inventory and shop, each with its own instrumentation exporting its own logger's
    records, and make the requests."""
    inventory = create_inventory_app(behaviour)
    handles: list[Instrumentation] = [
        instrument_app(inventory, "inventory", endpoint=endpoint, logger_name=INVENTORY_LOGGER)
    ]
    with serving(inventory) as inventory_url:
        shop = create_shop_app(inventory_url, behaviour)
        handles.append(instrument_app(shop, "shop", endpoint=endpoint, logger_name=SHOP_LOGGER))
        with serving(shop) as shop_url, httpx.Client(base_url=shop_url) as client:
            answers = requests(client)
    assert all(handle.shutdown() for handle in handles)
    return answers


def spans_by_role(spans: list[dict[str, Any]]) -> dict[tuple[str, str, str], dict[str, Any]]:
    roles = {(s["ServiceName"], s["SpanKind"], s["SpanName"]): s for s in spans}
    assert len(roles) == len(spans), "one span per role expected"
    return roles


def logs_of(stored_logs: Stored, trace_id: str) -> list[tuple[str, str, str, str]]:
    """(service, span id, severity, body) of the trace's log rows, oldest first."""
    rows = stored_logs("TraceId = {t:String}", t=trace_id)
    return [(r["ServiceName"], r["SpanId"], r["SeverityText"], r["Body"]) for r in rows]


def test_shop_request_is_one_trace_across_both_services(
    receiver: Any, stored: Stored, stored_logs: Stored
) -> None:
    behaviour = Behaviour(failure_rate=0.0, rng=random.Random(1))
    (answer,) = call_shop(receiver.endpoint, behaviour, lambda c: [c.get("/products/apple")])

    assert answer.status_code == 200
    roles = spans_by_role(stored("TraceId = {t:String}", t=answer.headers["x-trace-id"]))
    assert set(roles) == {
        ("shop", "Server", "GET /products/{sku}"),
        ("shop", "Client", "GET"),
        ("inventory", "Server", "GET /stock/{sku}"),
    }
    shop_server = roles["shop", "Server", "GET /products/{sku}"]
    shop_client = roles["shop", "Client", "GET"]
    inventory_server = roles["inventory", "Server", "GET /stock/{sku}"]
    assert shop_server["ParentSpanId"] == ""
    assert shop_client["ParentSpanId"] == shop_server["SpanId"]
    assert inventory_server["ParentSpanId"] == shop_client["SpanId"]
    assert inventory_server["HttpStatusCode"] == shop_server["HttpStatusCode"] == 200
    assert logs_of(stored_logs, answer.headers["x-trace-id"]) == [
        ("inventory", inventory_server["SpanId"], "INFO", "stock of apple: 120"),
        ("shop", shop_server["SpanId"], "INFO", "product apple shown"),
    ]


def test_failing_inventory_shows_as_errors_in_both_services(
    receiver: Any, stored: Stored, stored_logs: Stored
) -> None:
    behaviour = Behaviour(failure_rate=1.0, reservation_seconds=(0, 0), rng=random.Random(2))
    (answer,) = call_shop(
        receiver.endpoint, behaviour, lambda c: [c.post("/checkout", params={"sku": "kiwi"})]
    )

    assert answer.status_code == 502
    roles = spans_by_role(stored("TraceId = {t:String}", t=answer.headers["x-trace-id"]))
    shop_server = roles["shop", "Server", "POST /checkout"]
    pricing = roles["shop", "Internal", "price order"]
    shop_client = roles["shop", "Client", "POST"]
    inventory_server = roles["inventory", "Server", "POST /reservations"]
    assert pricing["ParentSpanId"] == shop_client["ParentSpanId"] == shop_server["SpanId"]
    assert inventory_server["ParentSpanId"] == shop_client["SpanId"]
    assert (inventory_server["HttpStatusCode"], shop_server["HttpStatusCode"]) == (503, 502)
    assert shop_client["StatusCode"] == "Error"
    assert logs_of(stored_logs, answer.headers["x-trace-id"]) == [
        ("inventory", inventory_server["SpanId"], "WARN", "warehouse lock timed out for kiwi"),
        ("shop", shop_server["SpanId"], "ERROR", "checkout of kiwi failed: inventory answered 503"),
    ]


def test_raising_request_logs_its_exception_in_the_error_span_trace(
    receiver: Any, stored: Stored, stored_logs: Stored
) -> None:
    behaviour = Behaviour(slow_seconds=(0.6, 0.6), rng=random.Random(4))
    slow, failed = call_shop(
        receiver.endpoint,
        behaviour,
        lambda c: [c.get("/reports/sales"), c.get("/recommendations")],
    )

    assert (failed.status_code, slow.status_code) == (500, 200)
    (span,) = stored("TraceId = {t:String}", t=failed.headers["x-trace-id"])
    assert span["StatusCode"] == "Error"
    (error,) = stored_logs("TraceId = {t:String}", t=span["TraceId"])
    assert (error["ServiceName"], error["SpanId"]) == ("shop", span["SpanId"])
    assert (error["SeverityText"], error["Body"]) == ("ERROR", "recommendations failed")
    assert error["LogAttributes"]["exception.type"] == "LookupError"
    assert error["LogAttributes"]["exception.message"] == "recommendation model not loaded"
    assert logs_of(stored_logs, slow.headers["x-trace-id"])[0][2:] == (
        "WARN",
        "sales report took 0.60 s, over 0.5 s",
    )


def test_demo_refuses_to_start_without_a_receiver() -> None:
    with pytest.raises(DemoError, match="start `otelhouse serve` first"):
        check_reachable(f"127.0.0.1:{free_port()}")


def test_demo_command_runs_until_ctrl_c_and_stores_what_it_answered(
    receiver: Any, stored: Stored, stored_logs: Stored, storage: Client, settings: Settings
) -> None:
    command = [sys.executable, "-m", "otelhouse.cli", "demo", "--otlp-endpoint", receiver.endpoint]
    command += ["--rate", "40", "--progress-interval", "0.5", "--seed", "3"]
    demo = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    watchdog = threading.Timer(60, demo.kill)
    watchdog.start()
    try:
        lines = []
        while not any(line.startswith("[") for line in lines[-1:]):
            line = demo.stdout.readline()
            assert line, "demo exited early:\n" + "".join(lines)
            lines.append(line)
        demo.send_signal(signal.SIGINT)
        rest, _ = demo.communicate(timeout=45)
    finally:
        watchdog.cancel()
    output = "".join(lines) + rest

    assert demo.returncode == 0, output
    assert "Traceback" not in output, output
    done = re.search(r"done: sent (\d+), ok (\d+), 4xx (\d+), 5xx (\d+), no answer (\d+)", output)
    assert done, output
    sent, ok, client_errors, server_errors, _ = map(int, done.groups())
    answered = ok + client_errors + server_errors
    requests = stored("ServiceName = 'shop' AND SpanKind = 'Server'")
    assert answered > 0
    assert answered <= len(requests) <= sent
    assert stored("ServiceName = 'inventory' AND SpanKind = 'Server'")
    logs = stored_logs("ServiceName = 'shop'")
    assert len(logs) >= answered
    traced = {r["TraceId"] for r in requests}
    assert {r["TraceId"] for r in logs} <= traced
    assert {r["SpanId"] for r in logs} <= {r["SpanId"] for r in requests}
    assert stored_logs("ServiceName = 'inventory'")

    assert output.rstrip().splitlines()[-1].startswith("next: `otelhouse query services")

    with TestClient(create_app(settings.api_config(), settings.storage_config())) as api:
        (shop,) = [s for s in api.get("/api/v1/services").json()["services"] if s["service"] == "shop"]
        summary = api.get("/api/v1/summary", params={"service": "shop"}).json()
    assert (shop["requests"], shop["errors"]) == (summary["requests"], summary["errors"])
    assert shop["error_rate"] == summary["error_rate"]
    assert shop["requests"] == len(requests)
    unanswered = len(requests) - answered
    assert server_errors <= shop["errors"] <= server_errors + unanswered
    if not unanswered:
        assert shop["error_rate"] == server_errors / answered

    measured = storage.query(MEASURED_REQUESTS, parameters={"m": DURATION}).named_results()
    assert {r["service"]: r["requests"] for r in measured} == {
        "shop": len(requests),
        "inventory": len(stored("ServiceName = 'inventory' AND SpanKind = 'Server'")),
    }
    with TestClient(create_app(settings.api_config(), settings.storage_config())) as api:
        answer = api.get(
            "/api/v1/metrics/query",
            params={"name": DURATION, "agg": "p95", "group_by": "http.route", "service": "shop"},
        )
    assert answer.status_code == 200, answer.text
    series = answer.json()["series"]
    routes = {s["labels"].get("http.route") for s in series}
    assert {"/products", "/checkout"} <= routes
    values = [value for s in series for _, value in s["points"] if value is not None]
    assert values and all(0 < value <= 10 for value in values)

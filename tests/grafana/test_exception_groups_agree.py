"""The query API and the Exceptions dashboard group the same stored exceptions into the same
groups with the same counts, and those are the groups the events were made from.

Messages are made from templates by filling each placeholder with a fresh value of its kind
(a quoted string, a UUID, a long hex id, a number), so the expected group of every event is
its template, known without running any masking rule. A message that is one quoted string
(Python's KeyError) keeps its text, with numbers masked. The dashboard's panel SQL is expanded
as Grafana and its ClickHouse plugin expand it (tests/grafana/expand.py).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import pytest
from clickhouse_connect.driver.client import Client
from fastapi.testclient import TestClient

from otelhouse.query.app import create_app
from otelhouse.settings import Settings
from otelhouse.storage.traces import insert_spans
from tests.grafana.dashboards import load_dashboards, panel_sql
from tests.grafana.expand import ALL, TimeRange, Variable, expand
from tests.query.spans import Event, Span, Window, random_id, to_columns

SERVICES = ("checkout", "payments")
TEMPLATES = (
    ("KeyError", "'cart_<n>'"),
    ("KeyError", "key <str> not in cache"),
    ("KeyError", "missing key <str> in cart <uuid>"),
    ("ValueError", "invalid quantity <n> for item <n>"),
    ("ValueError", "amount <n>.<n> is below the minimum of <n>"),
    ("LookupError", "order <uuid> not found"),
    ("LookupError", "can't find customer <str> for order <str>"),
    ("TimeoutError", "span <hex> of trace <hex> timed out after <n>ms"),
    ("TimeoutError", "upstream <str> timed out"),
    ("RuntimeError", "connection pool exhausted"),
)
Groups = Counter[tuple[str, str]]


def quoted(rng: random.Random) -> str:
    """A single- or double-quoted value, holding words, digits or a UUID."""
    quote = rng.choice(("'", '"'))
    inner = rng.choice(("user", "sku 7", f"order-{uuid.UUID(int=rng.getrandbits(128))}"))
    return f"{quote}{inner}_{rng.randrange(10**4)}{quote}"


def fill(template: str, rng: random.Random) -> str:
    """The template with each placeholder replaced by a fresh random value of its kind."""
    makers: dict[str, Callable[[], str]] = {
        "<str>": lambda: quoted(rng),
        "<uuid>": lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        "<hex>": lambda: random_id(rng, rng.choice((16, 32))),
        "<n>": lambda: str(rng.randrange(10**7)),
    }
    out = template
    for placeholder, make in makers.items():
        while placeholder in out:
            out = out.replace(placeholder, make(), 1)
    return out


@pytest.fixture
def stored(storage: Client) -> tuple[Window, dict[str, Groups]]:
    """Exception events of both services inside the last hour; the expected groups by service."""
    rng = random.Random(10)
    window = Window.last(60)
    latest = min(time.time_ns(), window.end_ns) - 10**9
    expected: dict[str, Groups] = {service: Counter() for service in SERVICES}
    spans = []
    for _ in range(400):
        service = rng.choice(SERVICES)
        start = rng.randrange(window.start_ns + 60 * 10**9, latest - 10**8)
        events = []
        for j in range(rng.randrange(1, 4)):
            kind, template = rng.choice(TEMPLATES)
            attributes = {"exception.type": kind, "exception.message": fill(template, rng)}
            events.append(Event(start + j, "exception", attributes))
            expected[service][kind, template] += 1
        spans.append(Span(service, "op", start, 10**8, random_id(rng, 32), random_id(rng, 16),
                          events=tuple(events)))
    insert_spans(storage, to_columns(spans))
    return window, expected


@pytest.fixture
def api(settings: Settings, storage: Client) -> Iterator[TestClient]:
    with TestClient(create_app(settings.api_config(), settings.storage_config())) as client:
        yield client


def api_groups(api: TestClient, window: Window, service: str | None) -> dict[str, Groups]:
    params = {**window.params, **({"service": service} if service else {})}
    response = api.get("/api/v1/exceptions", params=params)
    assert response.status_code == 200, response.text
    groups: dict[str, Groups] = {}
    for g in response.json()["exceptions"]:
        groups.setdefault(g["service"], Counter())[g["type"], g["message"]] = g["count"]
    return groups


def dashboard_groups(storage: Client, window: Window, service: str | None) -> tuple[Groups, dict]:
    """The Exception groups panel's rows for one service (or All): counts and services."""
    board = load_dashboards()["otelhouse-exceptions"]
    variables = {
        "service": Variable([service] if service else ALL, SERVICES),
        "group": Variable(""),
    }
    sql = expand(panel_sql(board, "Exception groups"), variables,
                 TimeRange(window.start_ms, window.end_ms, 60_000))
    result = storage.query(sql)
    rows = [dict(zip(result.column_names, row)) for row in result.result_rows]
    counts = Counter({(r["type"], r["message"]): r["occurrences"] for r in rows})
    assert len(counts) == len(rows), "a group listed twice"
    return counts, {(r["type"], r["message"]): r["services"] for r in rows}


@pytest.mark.parametrize("service", SERVICES)
def test_api_and_dashboard_make_the_groups_the_events_were_made_from(
    api: TestClient, storage: Client, stored: tuple[Window, dict[str, Groups]], service: str
) -> None:
    window, expected = stored
    assert api_groups(api, window, service) == {service: expected[service]}
    assert dashboard_groups(storage, window, service)[0] == expected[service]


def test_all_services_group_alike_on_both_sides(
    api: TestClient, storage: Client, stored: tuple[Window, dict[str, Groups]]
) -> None:
    window, expected = stored
    assert api_groups(api, window, None) == expected
    counts, services = dashboard_groups(storage, window, None)
    assert counts == sum(expected.values(), Counter())
    assert len(counts) == len(TEMPLATES)
    for key, names in services.items():
        assert names == ", ".join(s for s in SERVICES if expected[s][key])

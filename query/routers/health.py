"""``GET /healthz``: liveness plus the health registry's report (storage reachability, and
whatever else the process registered, e.g. the receiver's queue); never needs a token."""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import ClickHouseError
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from otelhouse.core.health import ComponentHealth, HealthRegistry
from otelhouse.query.deps import StorageClient
from otelhouse.storage import StorageUnavailable

router = APIRouter(tags=["health"])


def storage_health(storage: StorageClient) -> ComponentHealth:
    """``"ok"`` when ``SELECT 1`` answers; unhealthy with the reason when the store cannot be
    opened or the query fails in any ClickHouse way (down, refusing, database missing)."""
    try:
        storage.get().query("SELECT 1")
    except (StorageUnavailable, ClickHouseError) as exc:
        return ComponentHealth(f"unreachable: {exc}", healthy=False)
    return ComponentHealth("ok")


@router.get("/healthz")
def healthz(request: Request) -> JSONResponse:
    """200 with ``status: ok`` when every registered component is healthy, else 503 with
    ``status: degraded``; each component's state under its name. A full receiver queue is
    reported, not failed: the receiver is still alive and answering retry-later."""
    health: HealthRegistry = request.app.state.health
    report = health.report()
    body = {"status": "ok" if report.healthy else "degraded", **report.components}
    return JSONResponse(body, 200 if report.healthy else 503)

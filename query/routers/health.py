from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from query.deps import ClientDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(client: ClientDep) -> JSONResponse:
    """Liveness plus storage reachability; never needs a token."""
    try:
        client.query("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means storage is unreachable
        return JSONResponse({"status": "degraded", "storage": f"unreachable: {exc}"}, 503)
    return JSONResponse({"status": "ok", "storage": "ok"})

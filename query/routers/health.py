from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from otelhouse.query.deps import ClientDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz(client: ClientDep, request: Request) -> JSONResponse:
    """Liveness plus storage reachability, and the receiver's queue depth when it runs in
    this process (a full queue is reported, not failed: the receiver is still alive and
    answering retry-later); never needs a token."""
    receiver_state = getattr(request.app.state, "receiver_state", None)
    receiver = {"receiver": dict(receiver_state())} if receiver_state is not None else {}
    try:
        client.query("SELECT 1")
    except Exception as exc:  # noqa: BLE001 - any failure means storage is unreachable
        body = {"status": "degraded", "storage": f"unreachable: {exc}", **receiver}
        return JSONResponse(body, 503)
    return JSONResponse({"status": "ok", "storage": "ok", **receiver})

"""The query API application: routers per resource, storage opened in ``lifespan``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib.metadata import version

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from otelhouse.core.health import HealthRegistry
from otelhouse.core.tokens import BearerTokens
from otelhouse.query.config import ApiConfig
from otelhouse.query.deps import StorageClient, require_token
from otelhouse.query.routers import health as health_router
from otelhouse.query.unavailable import (
    CANDIDATES,
    RETRY_HEADERS,
    storage_unavailable,
    unavailable_message,
)
from otelhouse.storage import StorageConfig, StorageUnavailable

log = logging.getLogger(__name__)

STORAGE_HEALTH = "storage"
"""The name the app registers its storage reachability under (``/healthz``'s ``storage``)."""


def create_app(
    config: ApiConfig,
    storage: StorageConfig,
    *,
    health: HealthRegistry | None = None,
    ingest_routers: Sequence[APIRouter] = (),
) -> FastAPI:
    """The API over ``storage``, admitting ``config.tokens``.

    ``ingest_routers`` are write routes the composition root mounts beside the queries (the
    receiver's JSON log intake); like every route under /api they need a token when
    ``config.tokens`` is set.

    ``/healthz`` reports ``health`` (a fresh registry when None), to which the app adds its
    storage reachability as ``storage`` for as long as it runs. A store that cannot be
    reached at start does not stop the app: requests answer 503 until it can.
    """
    registry = health if health is not None else HealthRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = StorageClient(storage)
        app.state.api_tokens = BearerTokens(config.tokens)
        app.state.storage = client
        app.state.health = registry
        try:
            client.get()
        except StorageUnavailable as exc:
            log.warning("query API starts without storage; 503 until it is back: %s", exc)
        registry.register(STORAGE_HEALTH, lambda: health_router.storage_health(client))
        try:
            yield
        finally:
            registry.unregister(STORAGE_HEALTH)
            client.close()

    app = FastAPI(
        title="otelhouse query API",
        version=version("otelhouse"),
        description=(
            "Latency percentiles, error rates, exceptions and traces from otel_traces; "
            "log records from otel_logs."
        ),
        lifespan=lifespan,
        # No redirect from a trailing slash: `/traces/{id}` with an id of "/" is not a search.
        redirect_slashes=False,
    )
    for exception_type in CANDIDATES:
        app.add_exception_handler(exception_type, _unavailable)
    app.include_router(health_router.router)
    protected = [Depends(require_token)]
    for router in [*_api_routers(), *ingest_routers]:
        app.include_router(router, dependencies=protected)
    return app


async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
    """503 with ``Retry-After`` when storage is unavailable; any other storage error is
    raised on, to be answered 500 (see :mod:`otelhouse.query.unavailable`)."""
    if not storage_unavailable(exc):
        raise exc
    log.warning("%s %s: %s", request.method, request.url.path, unavailable_message(exc))
    return JSONResponse({"detail": unavailable_message(exc)}, 503, headers=RETRY_HEADERS)


def _api_routers() -> list:
    """Routers under /api and /jaeger; every one of them sits behind the token check."""
    from otelhouse.query.routers import errors, exceptions, latency, operations, requests, services
    from otelhouse.query.routers import jaeger, logs, metrics, service_map, traces

    aggregates = [services, operations, latency, errors, exceptions, requests, service_map]
    return [module.router for module in [*aggregates, traces, logs, metrics, jaeger]]

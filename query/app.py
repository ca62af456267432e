"""The query API application: routers per resource, storage opened in ``lifespan``."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from otelhouse.version import __version__
from otelhouse.settings import Settings
from otelhouse.core.tokens import BearerTokens
from otelhouse.query.deps import require_token
from otelhouse.query.routers import health
from otelhouse.storage import open_client


def create_app(
    settings: Settings, *, receiver_state: Callable[[], Mapping[str, object]] | None = None
) -> FastAPI:
    """``receiver_state``, when the receiver runs in the same process, adds its queue depth
    to ``/healthz``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.settings = settings
        app.state.api_tokens = BearerTokens(settings.api_token_set)
        app.state.receiver_state = receiver_state
        app.state.client = open_client(settings.storage_config())
        try:
            yield
        finally:
            app.state.client.close()

    app = FastAPI(
        title="otelhouse query API",
        version=__version__,
        description="Latency percentiles, error rates, exceptions and traces from otel_traces.",
        lifespan=lifespan,
    )
    app.include_router(health.router)
    protected = [Depends(require_token)]
    for router in _api_routers():
        app.include_router(router, dependencies=protected)
    return app


def _api_routers() -> list:
    """Routers under /api and /jaeger; every one of them sits behind the token check."""
    from otelhouse.query.routers import errors, exceptions, latency, operations, requests, services
    from otelhouse.query.routers import jaeger, traces

    aggregates = [services, operations, latency, errors, exceptions, requests]
    return [module.router for module in [*aggregates, traces, jaeger]]

"""FastAPI dependencies: settings, the storage client and auth, all injected with ``Depends``.

The app opens its own clickhouse-connect client in ``lifespan`` and keeps it on
``app.state``; nothing here is a module-level connection.
"""

from __future__ import annotations

from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, HTTPException, Request, status

from otelhouse.settings import Settings
from otelhouse.core.tokens import BearerTokens


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_client(request: Request) -> Client:
    return request.app.state.client


SettingsDep = Annotated[Settings, Depends(get_settings)]
ClientDep = Annotated[Client, Depends(get_client)]


def require_token(request: Request) -> None:
    """Bearer auth, on only when ``OTELHOUSE_API_TOKENS`` is set (tokens parsed once, in
    ``lifespan``)."""
    tokens: BearerTokens = request.app.state.api_tokens
    if not tokens.accepts(request.headers.get("authorization")):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong bearer token (see OTELHOUSE_API_TOKENS)",
            headers={"WWW-Authenticate": "Bearer"},
        )

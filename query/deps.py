"""FastAPI dependencies: the storage client and auth, injected with ``Depends``.

The app opens its own clickhouse-connect client through a :class:`StorageClient` kept on
``app.state``; nothing here is a module-level connection.
"""

from __future__ import annotations

import threading
from typing import Annotated

from clickhouse_connect.driver.client import Client
from fastapi import Depends, HTTPException, Request, status

from otelhouse.core.tokens import BearerTokens
from otelhouse.storage import StorageConfig, open_client


class StorageClient:
    """The API's one client on the store, shared by every request thread.

    It is opened on first use and, while opening fails, again at each later use, so an API
    started while storage is down starts serving once storage is back. ``get`` raises
    :class:`otelhouse.storage.StorageUnavailable` until then.
    """

    def __init__(self, config: StorageConfig) -> None:
        self._config = config
        self._lock = threading.Lock()
        self._client: Client | None = None

    def get(self) -> Client:
        with self._lock:
            if self._client is None:
                self._client = open_client(self._config)
            return self._client

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


def get_client(request: Request) -> Client:
    storage: StorageClient = request.app.state.storage
    return storage.get()


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

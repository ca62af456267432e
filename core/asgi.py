"""ASGI apps served by uvicorn on the event loop ``otelhouse serve`` already runs.

The query API and the OTLP/HTTP receiver share the process with the gRPC receiver (chdb lets
one process own the data directory), so uvicorn must neither install signal handlers (serve
owns SIGINT/SIGTERM and drains in order) nor exit the process when its port is taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from otelhouse.core.addresses import split_host_port


class _HostedServer(uvicorn.Server):
    def capture_signals(self) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()


class HostedUvicorn:
    """``start`` binds before it returns (``OSError`` when the address is taken), ``stop``
    lets requests in flight finish."""

    def __init__(self, app: ASGIApp, addr: str, **config: Any) -> None:
        self._app = app
        self._addr = addr
        self._config = {"log_config": None, **config}
        self._server: _HostedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    async def start(self) -> int:
        host, port = split_host_port(self._addr)
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family)
        self._server = _HostedServer(uvicorn.Config(self._app, **self._config))
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started and not self._task.done():
            await asyncio.sleep(0.01)
        if self._task.done():
            sock.close()
            raise OSError(f"server on {self._addr} did not start")
        self.port = sock.getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        await asyncio.gather(self._task, return_exceptions=True)

"""Run the demo: both services and the load generator in one event loop, until the duration
ends or Ctrl-C, then stop the servers and flush every span, log record and metric before
returning. Both services export the HTTP server metrics, so the metrics API and dashboard have
data."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastapi import FastAPI

from otelhouse.demo.load import Tally, generate_load, report_progress
from otelhouse.demo.services import (
    INVENTORY_LOGGER,
    SHOP_LOGGER,
    Behaviour,
    create_inventory_app,
    create_shop_app,
)
from otelhouse.instrumentation.instrument import Instrumentation, instrument_app
from otelhouse.version import __version__

STARTUP_TIMEOUT_S = 15.0


class DemoError(Exception):
    """The demo cannot run; the message says what to do."""


@dataclass(frozen=True)
class DemoOptions:
    otlp_endpoint: str = "127.0.0.1:4317"
    rate: float = 20.0
    duration_s: float | None = None
    host: str = "127.0.0.1"
    shop_port: int = 0
    inventory_port: int = 0
    progress_interval_s: float = 5.0
    seed: int | None = None


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals alone: two share one loop here, and Ctrl-C is
    ``asyncio.run``'s to turn into a cancellation that stops everything in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def check_reachable(endpoint: str, timeout_s: float = 2.0) -> None:
    """Fail early and clearly when nothing listens where the spans would go."""
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    if not parts.hostname or not parts.port:
        raise DemoError(f"--otlp-endpoint {endpoint!r}: expected host:port, e.g. 127.0.0.1:4317")
    try:
        socket.create_connection((parts.hostname, parts.port), timeout=timeout_s).close()
    except OSError as exc:
        raise DemoError(
            f"nothing accepts connections at {endpoint} ({exc.strerror or exc}): start "
            "`otelhouse serve` first, or point --otlp-endpoint at a running receiver"
        ) from None


def listening_socket(host: str, port: int) -> socket.socket:
    """Bound before the apps exist, so shop learns inventory's real port even when it is 0."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise DemoError(
            f"cannot listen on {host}:{port} ({exc.strerror}): choose another port"
        ) from None
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://{host}:{port}"


async def start_servers(
    apps: dict[FastAPI, socket.socket],
) -> list[tuple[EmbeddedServer, asyncio.Task[None]]]:
    running = []
    for app, sock in apps.items():
        server = EmbeddedServer(uvicorn.Config(app, log_level="critical", access_log=False))
        running.append((server, asyncio.create_task(server.serve(sockets=[sock]))))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_S
    while not all(server.started for server, _ in running):
        if any(task.done() for _, task in running) or loop.time() > deadline:
            await stop_servers(running)
            raise DemoError("a demo service did not start; run with -v to see why")
        await asyncio.sleep(0.05)
    return running


async def stop_servers(running: list[tuple[EmbeddedServer, asyncio.Task[None]]]) -> None:
    for server, _ in running:
        server.should_exit = True
    await asyncio.gather(*(task for _, task in running), return_exceptions=True)


async def run_demo(options: DemoOptions, tally: Tally) -> None:
    """Serve, load and report until done; the tally is the caller's so it survives Ctrl-C."""
    check_reachable(options.otlp_endpoint)
    rng = random.Random(options.seed)
    behaviour = Behaviour(rng=rng)
    inventory_socket = listening_socket(options.host, options.inventory_port)
    shop_socket = listening_socket(options.host, options.shop_port)
    inventory = create_inventory_app(behaviour)
    shop = create_shop_app(url_of(inventory_socket), behaviour)
    handles: list[Instrumentation] = [
        instrument_app(
            app,
            name,
            service_version=__version__,
            environment="demo",
            endpoint=options.otlp_endpoint,
            logger_name=logger,
            export_metrics=True,
        )
        for name, app, logger in (
            ("inventory", inventory, INVENTORY_LOGGER),
            ("shop", shop, SHOP_LOGGER),
        )
    ]
    running = []
    try:
        running = await start_servers({inventory: inventory_socket, shop: shop_socket})
        until = f"for {options.duration_s:g} s" if options.duration_s else "until Ctrl-C"
        print(
            f"shop at {url_of(shop_socket)} calls inventory at {url_of(inventory_socket)}; "
            f"spans, logs and metrics go to {options.otlp_endpoint}\n"
            f"sending {options.rate:g} requests/s {until}",
            flush=True,
        )
        loop = asyncio.get_running_loop()
        progress = asyncio.create_task(
            report_progress(tally, options.progress_interval_s, loop.time())
        )
        try:
            async with httpx.AsyncClient(
                base_url=url_of(shop_socket),
                timeout=10.0,
                headers={"user-agent": f"otelhouse-demo-load/{__version__}"},
            ) as client:
                await generate_load(client, options.rate, options.duration_s, tally, rng)
        finally:
            progress.cancel()
    finally:
        print("stopping services and flushing spans, logs and metrics ...", flush=True)
        await stop_servers(running)
        for sock in (inventory_socket, shop_socket):
            sock.close()
        await asyncio.gather(*(asyncio.to_thread(handle.shutdown) for handle in handles))

"""``otelhouse serve``: receiver (and query API) in one process around one data directory.

chdb lets a single process own a data directory, so in embedded mode everything that touches
the store lives here; other tools talk HTTP to this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from otelhouse.settings import Settings, split_host_port
from receiver.server import GrpcReceiver
from receiver.stats import report_periodically
from storage import migrate, open_client
from storage.traces import insert_spans

log = logging.getLogger("otelhouse")


def describe_store(settings: Settings) -> str:
    if settings.embedded:
        return f"embedded ClickHouse (chdb) in {settings.data_dir.resolve()}"
    return f"ClickHouse server at {settings.clickhouse_url}"


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then drain and close."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    admin = open_client(settings, database="")
    applied = migrate(admin, settings)
    log.info(
        "storage: %s, database %s%s",
        describe_store(settings),
        settings.effective_database,
        f" (applied schema migrations {applied})" if applied else "",
    )
    writer = open_client(settings)

    receiver = GrpcReceiver(settings, lambda spans: insert_spans(writer, spans))
    await receiver.start()
    tasks = [asyncio.create_task(report_periodically(receiver.stats, settings.stats_interval_s))]
    api = _api_server(settings)
    if api is not None:
        tasks.append(asyncio.create_task(api.serve()))
    try:
        await stop.wait()
        log.info("shutting down: refusing new requests, flushing accepted spans")
    finally:
        if api is not None:
            api.should_exit = True
        await receiver.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        writer.close()
        admin.close()


def _api_server(settings: Settings):
    """The query API as a uvicorn server on the same event loop, when the API is installed."""
    try:
        from query.app import create_app
    except ImportError:
        return None
    import uvicorn

    host, port = split_host_port(settings.api_addr)
    config = uvicorn.Config(create_app(settings), host=host, port=port, log_config=None)
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    log.info("query API on http://%s:%d (docs at /docs)", host, port)
    return server

"""``otelhouse serve``: receiver (and query API) in one process around one data directory.

chdb lets a single process own a data directory, so in embedded mode everything that touches
the store lives here; other tools talk HTTP to this process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter

from otelhouse.alerts.service import AlertRulesError, AlertService
from otelhouse.core.addresses import split_host_port
from otelhouse.core.asgi import HostedUvicorn
from otelhouse.core.health import ComponentHealth, HealthRegistry
from otelhouse.core.tls import TlsConfigError
from otelhouse.query.app import create_app
from otelhouse.query.config import ApiConfig
from otelhouse.receiver.http_service import OtlpHttpReceiver
from otelhouse.receiver.json_logs import json_logs_router
from otelhouse.receiver.logs import LOGS
from otelhouse.receiver.metric_points import METRICS
from otelhouse.receiver.metrics import wal_samples
from otelhouse.receiver.pipeline import Receiver
from otelhouse.receiver.server import GrpcReceiver
from otelhouse.receiver.signal import Signal
from otelhouse.receiver.stats import report_periodically
from otelhouse.receiver.traces import TRACES
from otelhouse.receiver.wal import WalError, WalService
from otelhouse.settings import Settings
from otelhouse.storage import (
    StorageConfig,
    StorageUnavailable,
    data_dir_in_use,
    migrate,
    open_client,
)

log = logging.getLogger("otelhouse")

RECEIVER_HEALTH = "receiver"
"""The receiver's queue and in-flight numbers in ``/healthz``."""
ALERTS_HEALTH = "alerts"
"""The alert evaluator's rules, firing alerts and notification counts in ``/healthz``."""
WAL_HEALTH = "wal"
"""The write-ahead log's backlog and its drainer's state in ``/healthz``."""


SIGNALS: tuple[Signal[Any, Any], ...] = (TRACES, LOGS, METRICS)
"""The OTLP signals ``serve`` receives and stores."""


class StartupError(RuntimeError):
    """A reason ``serve`` cannot start, worded as what the user should do."""


async def serve(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until SIGINT/SIGTERM (or ``stop`` is set), then drain and close."""
    stop = stop or asyncio.Event()
    _tune_gc()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    storage = settings.storage_config()
    _quiet_uvicorn()
    in_use = StartupError(
        f"another otelhouse process is already using the data directory {settings.data_dir}: "
        "stop it first, or give this one its own --data-dir."
    )
    if data_dir_in_use(storage):
        raise in_use
    try:
        admin = open_client(storage, database="")
    except StorageUnavailable as exc:
        if storage.embedded and data_dir_in_use(storage):
            raise in_use from exc
        raise StartupError(
            f"{exc}\n  is the server up and the URL right? check --clickhouse-url"
            if not storage.embedded
            else str(exc)
        ) from exc
    applied = migrate(admin, storage)
    log.info(
        "storage: %s, database %s%s",
        storage.describe(),
        storage.database,
        f" (applied schema migrations {applied})" if applied else "",
    )
    writer = open_client(storage)

    try:
        wal = _open_wal(settings, writer)
    except StartupError:
        writer.close()
        admin.close()
        raise
    receiver = Receiver(
        settings.receiver_config(),
        {signal: wal.sink(signal) if wal else _direct_sink(writer, signal) for signal in SIGNALS},
    )
    if wal is not None:
        receiver.metrics.add_provider(lambda: wal_samples(wal.stats()))
    otlp_grpc = GrpcReceiver(receiver)
    otlp_http = OtlpHttpReceiver(receiver)
    try:
        await _start_receivers(receiver, otlp_grpc, otlp_http, settings)
    except StartupError:
        if wal is not None:
            wal.close(drain_timeout_s=0)
        writer.close()
        admin.close()
        raise
    reporter = asyncio.create_task(
        report_periodically(
            receiver.pipeline(TRACES.name).stats,
            settings.stats_interval_s,
            (lambda: wal.stats().log.drained_rows) if wal is not None else None,
        )
    )
    api: HostedUvicorn | None = None
    alerts: AlertService | None = None
    try:
        health = HealthRegistry()
        health.register(RECEIVER_HEALTH, lambda: ComponentHealth(receiver.health()))
        if wal is not None:
            health.register(WAL_HEALTH, wal.health)
        routers = [
            json_logs_router(
                receiver.pipeline(LOGS.name), max_request_bytes=settings.max_request_bytes
            )
        ]
        alerts = _start_alerts(settings, storage)
        if alerts is not None:
            health.register(ALERTS_HEALTH, alerts.health)
            routers.append(alerts.router())
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signal.SIGHUP, alerts.reload)
        api = await start_api(settings.api_config(), storage, health, ingest_routers=routers)
        await stop.wait()
        log.info("shutting down: refusing new requests, flushing accepted spans")
    finally:
        await asyncio.gather(otlp_grpc.stop(), otlp_http.stop(), receiver.stop())
        if wal is not None:
            await _close_wal(wal, settings.wal_drain_timeout_s)
        if api is not None:
            await api.stop()
        if alerts is not None:
            await alerts.stop()
        reporter.cancel()
        await asyncio.gather(reporter, return_exceptions=True)
        writer.close()
        admin.close()
        log.info("%s", stopped_line(receiver))


def _start_alerts(settings: Settings, storage: StorageConfig) -> AlertService | None:
    """The alert evaluator, started, when a rules file is set; a file with mistakes stops
    ``serve`` with every mistake listed."""
    config = settings.alerts_config()
    if config is None:
        return None
    try:
        alerts = AlertService(config, storage)
    except AlertRulesError as exc:
        raise StartupError(f"{exc}\n  fix the rules file or unset --alert-rules") from exc
    alerts.start()
    return alerts


async def _start_receivers(
    receiver: Receiver, otlp_grpc: GrpcReceiver, otlp_http: OtlpHttpReceiver, settings: Settings
) -> None:
    """The pipelines and both OTLP servers, or none; a failure says what to change."""
    receiver.start()
    try:
        await otlp_grpc.start()
    except TlsConfigError as exc:
        await receiver.stop()
        raise StartupError(str(exc)) from exc
    except (OSError, RuntimeError) as exc:
        await receiver.stop()
        raise StartupError(
            f"cannot listen for OTLP/gRPC on {settings.otlp_grpc_addr} ({exc}); is another "
            "process using the port? Set --otlp-grpc-addr"
        ) from exc
    try:
        await otlp_http.start()
    except (OSError, TlsConfigError) as exc:
        await asyncio.gather(otlp_grpc.stop(), receiver.stop())
        raise StartupError(
            f"cannot listen for OTLP/HTTP on {settings.otlp_http_addr} ({exc}); is another "
            "process using the port? Set --otlp-http-addr"
        ) from exc


def _open_wal(settings: Settings, writer: Client) -> WalService | None:
    """The write-ahead log in front of storage (None when disabled); its drainer stores with
    a deduplication token per log range, so replays and retries store once."""
    if not settings.wal_enabled:
        return None
    try:
        return WalService.open(
            settings.wal_config(), {signal: _token_insert(writer, signal) for signal in SIGNALS}
        )
    except WalError as exc:
        raise StartupError(str(exc)) from exc
    except OSError as exc:
        raise StartupError(
            f"cannot open the write-ahead log in {settings.effective_wal_dir} ({exc}); check "
            "that the directory is writable or set --wal-dir"
        ) from exc


def _direct_sink(writer: Client, signal: Signal[Any, Any]) -> Callable[[Any], None]:
    """Without the log: store each batch before acknowledging it."""
    return lambda columns: signal.insert(writer, columns)


def _token_insert(writer: Client, signal: Signal[Any, Any]) -> Callable[[Any, str], None]:
    """The drainer's insert for ``signal``: once per deduplication token."""
    return lambda columns, token: signal.insert(
        writer, columns, settings={"insert_deduplication_token": token}
    )


async def _close_wal(wal: WalService, drain_timeout_s: float) -> None:
    log.info("storing what the write-ahead log holds (up to %.0fs)", drain_timeout_s)
    if not await asyncio.to_thread(wal.close, drain_timeout_s):
        log.warning(
            "%d acknowledged spans are still in the write-ahead log; they are stored at the "
            "next start",
            wal.stats().log.pending_rows,
        )


def stopped_line(receiver: Receiver) -> str:
    """The one line ``serve`` ends with: what this run received and stored (with the
    write-ahead log: made durable there; what it still held is logged before)."""
    spans = receiver.pipeline(TRACES.name).stats.stored
    records = receiver.pipeline(LOGS.name).stats.stored
    return f"stopped: {spans} spans and {records} log records stored"


UVICORN_LOGGER = "uvicorn.error"


def _quiet_uvicorn() -> None:
    """uvicorn logs its start and stop lines once per hosted server (the OTLP/HTTP receiver
    and the query API), which repeats "Started server process" in one process; ``serve``
    logs its own listening and stopping lines, so keep only uvicorn's warnings and errors
    unless debugging."""
    logger = logging.getLogger(UVICORN_LOGGER)
    if not logger.isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)


def _tune_gc() -> None:
    """Span rows are millions of small acyclic dicts and lists: with the default thresholds
    the cyclic collector ran every ~700 allocations and took ~28% of the receiver's CPU
    (py-spy, bench/ingest.py). Collect rarely, and never rescan start-up objects."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(200_000, 50, 50)


async def start_api(
    config: ApiConfig,
    storage: StorageConfig,
    health: HealthRegistry,
    *,
    ingest_routers: Sequence[APIRouter] = (),
) -> HostedUvicorn:
    """The query API on the same event loop, over ``storage``, with ``ingest_routers``
    mounted (they must submit to pipelines running on this loop); its ``/healthz`` reports
    ``health``. It uses the receivers' certificate, so one ``--tls-cert-file`` leaves no
    listener in plaintext."""
    try:
        tls = config.tls()
    except TlsConfigError as exc:
        raise StartupError(str(exc)) from exc
    api = HostedUvicorn(
        create_app(config, storage, health=health, ingest_routers=ingest_routers),
        config.addr,
        **(tls.uvicorn_options() if tls else {}),
    )
    try:
        port = await api.start()
    except OSError as exc:
        raise StartupError(
            f"cannot serve the query API on {config.addr} ({exc}); is another "
            "process using the port? Set --api-addr"
        ) from exc
    host = split_host_port(config.addr)[0]
    log.info("query API on %s://%s:%d (docs at /docs)", "https" if tls else "http", host, port)
    return api

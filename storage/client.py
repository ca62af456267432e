"""Client construction, the only place where the embedded and the server mode differ.

Every other module receives a ``clickhouse_connect`` client and runs the same SQL on it.
Callers own their clients (no module-level connection): chdb lets several clients share one
data directory inside a process, and they run concurrently, so the writer and the query API
each open their own.
"""

from __future__ import annotations

import fcntl
import os
from urllib.parse import unquote, urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from otelhouse.storage.config import StorageConfig


class StorageUnavailable(RuntimeError):
    """ClickHouse could not be reached or refused the operation; the caller may retry."""


EMBEDDED_LOCK_FILE = "status"
"""The file the embedded engine holds an exclusive ``flock`` on while a process owns the
data directory (ClickHouse's status file)."""


def data_dir_in_use(config: StorageConfig) -> bool:
    """Whether another process owns the embedded store's data directory now. Asked before
    opening it, so the answer can be said plainly instead of the engine's own message
    (which it also prints to stderr). Always False in server mode."""
    if not config.embedded:
        return False
    try:
        fd = os.open(config.data_dir / EMBEDDED_LOCK_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def open_client(config: StorageConfig, *, database: str | None = None) -> Client:
    """Open a client on the configured store, on ``config.database`` unless ``database`` is
    given; raises :class:`StorageUnavailable` when the store cannot be opened or reached.

    ``database=""`` opens it without selecting a database, which migrations need before the
    database exists.
    """
    db = config.database if database is None else database
    try:
        if config.embedded:
            config.data_dir.mkdir(parents=True, exist_ok=True)
            return clickhouse_connect.get_client(
                interface="chdb",
                path=str(config.data_dir.resolve()),
                database=db or None,
                chdb_options=config.engine_options(),
            )
        url = urlsplit(config.clickhouse_url or "")
        return clickhouse_connect.get_client(
            interface=url.scheme,
            host=url.hostname,
            port=url.port or (8443 if url.scheme == "https" else 8123),
            username=unquote(url.username or "default"),
            password=unquote(url.password or ""),
            database=db or "__default__",
            connect_timeout=5,
            send_receive_timeout=60,
            # The query API shares one client across worker threads; ClickHouse locks a
            # session to one query at a time, and otelhouse keeps no session state.
            autogenerate_session_id=False,
        )
    except Exception as exc:  # noqa: BLE001 - the driver raises many kinds; all mean "not now"
        raise StorageUnavailable(
            f"cannot open ClickHouse at {config.location}: {exc}"
        ) from exc

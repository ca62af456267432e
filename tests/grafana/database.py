"""A migrated database of its own on the session's embedded engine, for a test module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from clickhouse_connect.driver.client import Client

from otelhouse.storage import StorageConfig, migrate, open_client


@contextmanager
def migrated_database(data_dir: Path) -> Iterator[Client]:
    """A client on a new database with every migration applied; dropped on exit."""
    config = StorageConfig(data_dir=data_dir, database=f"test_{uuid.uuid4().hex[:12]}")
    admin = open_client(config, database="")
    migrate(admin, config)
    client = open_client(config)
    try:
        yield client
    finally:
        client.close()
        admin.command(f"DROP DATABASE IF EXISTS {config.database} SYNC")
        admin.close()

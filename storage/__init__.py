"""ClickHouse storage: one clickhouse-connect client for the embedded and the server mode."""

from storage.client import StorageUnavailable, open_client
from storage.migrations import migrate

__all__ = ["StorageUnavailable", "migrate", "open_client"]

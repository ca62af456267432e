"""ClickHouse storage: one clickhouse-connect client for the embedded and the server mode."""

from otelhouse.storage.client import StorageUnavailable, data_dir_in_use, open_client
from otelhouse.storage.config import StorageConfig
from otelhouse.storage.migrations import migrate

__all__ = ["StorageConfig", "StorageUnavailable", "data_dir_in_use", "migrate", "open_client"]

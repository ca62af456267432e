"""``StorageConfig``: the effective database, its validation, and a location without secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.settings import Settings
from otelhouse.storage import StorageConfig


def test_the_url_path_wins_over_the_configured_database() -> None:
    config = StorageConfig.resolve(Path("d"), "http://u:p@ch:8123/traces", "otel", 7)
    assert config.database == "traces" and not config.embedded and config.retention_days == 7
    assert StorageConfig.resolve(Path("d"), "http://ch:8123", "otel", 7).database == "otel"
    assert StorageConfig.resolve(Path("d"), None, "mine", 7).database == "mine"


def test_settings_convert_to_the_storage_config(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, clickhouse_url="https://ch:8443/obs", database="x", retention_days=3
    )
    assert settings.storage_config() == StorageConfig(tmp_path, "https://ch:8443/obs", "obs", 3)
    assert settings.effective_database == "obs"
    embedded = Settings(data_dir=tmp_path).storage_config()
    assert embedded.embedded and embedded.location == str(tmp_path.resolve())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"database": "otel; DROP"}, "database must be letters, digits and underscores"),
        ({"clickhouse_url": "ftp://ch/otel"}, "clickhouse_url must look like"),
        ({"clickhouse_url": "http://ch/a-b", "database": "a-b"}, "database must be letters"),
        ({"clickhouse_url": "http://ch/a-b"}, "'a-b' in clickhouse_url is not an identifier"),
        ({"clickhouse_url": "http://ch/one"}, "names database 'one' but database is 'otel'"),
        ({"retention_days": -1}, "retention_days"),
        ({"engine_memory_bytes": 32 * 1024**2}, "engine_memory_bytes must be at least 64 MiB"),
    ],
)
def test_invalid_configs_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        StorageConfig(**{"data_dir": Path("d"), **changes})


def test_location_hides_the_password() -> None:
    config = StorageConfig(Path("d"), "http://otel:s3cret@ch:8123/otel")
    assert config.location == "http://otel:***@ch:8123/otel"
    assert config.describe() == "ClickHouse server at http://otel:***@ch:8123/otel"


def test_the_embedded_engine_is_sized_within_its_memory_limit(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, engine_memory_bytes=256 * 1024**2)
    options = settings.storage_config().engine_options()
    assert options["max_server_memory_usage"] == 256 * 1024**2
    caches = sum(value for name, value in options.items() if name.endswith("cache_size"))
    assert caches <= 256 * 1024**2 // 3


def test_the_engine_runs_with_those_options(settings: Settings, storage: Client) -> None:
    options = settings.storage_config().engine_options()
    names = ", ".join(f"'{name}'" for name in options)
    rows = storage.query(
        f"SELECT name, value FROM system.server_settings WHERE name IN ({names})"
    ).result_rows
    assert {name: int(value) for name, value in rows} == options

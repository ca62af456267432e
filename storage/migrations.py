"""Schema migrations: numbered ``.sql`` files in ``storage/schema`` applied in order, once.

Applied versions are recorded in ``otelhouse_schema_version`` so a later release adds a file
instead of editing one, and an existing data directory moves forward rather than breaking.
Each statement is itself idempotent (``IF NOT EXISTS``), so a start interrupted half-way
through a file simply runs it again.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from string import Template

from clickhouse_connect.driver.client import Client

from otelhouse.storage.config import StorageConfig
from otelhouse.storage.tables import VERSION_TABLE

log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


TEXT_INDEX_SINCE = (26, 2)
"""First ClickHouse release whose ``text`` (full-text) skip index is generally available."""

TEXT_INDEXES = {
    "index_id": "text(tokenizer = 'array')",
    "index_values": "text(tokenizer = 'array')",
    "index_body": "text(tokenizer = 'splitByNonAlpha')",
}
BLOOM_INDEXES = {
    "index_id": "bloom_filter(0.001)",
    "index_values": "bloom_filter(0.01)",
    "index_body": "tokenbf_v1(32768, 3, 0)",
}
"""The skip index types of the logs table: full-text indexes where the engine has them, the
Collector exporter's bloom-filter indexes on older servers."""


def _ttl(column: str, days: int) -> str:
    return f"TTL toDateTime({column}) + toIntervalDay({days})" if days > 0 else ""


def has_text_index(server_version: str) -> bool:
    """Whether a server of this ``version()`` string builds ``text`` skip indexes."""
    major_minor = tuple(int(part) for part in server_version.split(".")[:2] if part.isdigit())
    return major_minor >= TEXT_INDEX_SINCE


def load_migrations(config: StorageConfig, *, text_index: bool = True) -> list[Migration]:
    """Read and render every migration file; identifiers come from the validated config only.
    ``text_index`` picks the logs table's index types (see :func:`has_text_index`)."""
    days = config.retention_days
    values = {
        "database": config.database,
        "ttl_traces": _ttl("Timestamp", days),
        "ttl_trace_id_ts": _ttl("Start", days),
        "ttl_logs": _ttl("Timestamp", days),
        "ttl_metrics": _ttl("TimeUnix", days),
        "ttl_alerts": _ttl("Time", days),
        **(TEXT_INDEXES if text_index else BLOOM_INDEXES),
    }
    migrations = []
    for entry in sorted(resources.files("otelhouse.storage").joinpath("schema").iterdir(), key=str):
        match = _FILE_NAME.match(entry.name)
        if not match:
            continue
        text = Template(entry.read_text(encoding="utf-8")).substitute(values)
        statements = tuple(s.strip() for s in _split_statements(text) if s.strip())
        migrations.append(Migration(int(match[1]), match[2], statements))
    return migrations


def _split_statements(sql: str) -> list[str]:
    without_comments = "\n".join(
        line for line in sql.splitlines() if not line.lstrip().startswith("--")
    )
    return without_comments.split(";")


def applied_versions(client: Client, database: str) -> set[int]:
    rows = client.query(f"SELECT version FROM {database}.{VERSION_TABLE}").result_rows
    return {row[0] for row in rows}


def migrate(client: Client, config: StorageConfig) -> list[int]:
    """Create ``config.database`` and bring its schema up to date; return the versions
    applied now."""
    database = config.database
    client.command(f"CREATE DATABASE IF NOT EXISTS {database}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {database}.{VERSION_TABLE} "
        "(version UInt32, name String, applied_at DateTime DEFAULT now()) "
        "ENGINE = MergeTree ORDER BY version"
    )
    done = applied_versions(client, database)
    newly_applied = []
    for migration in load_migrations(config, text_index=has_text_index(client.server_version)):
        if migration.version in done:
            continue
        log.info("applying schema migration %04d_%s", migration.version, migration.name)
        for statement in migration.statements:
            client.command(statement)
        client.insert(
            VERSION_TABLE,
            [[migration.version, migration.name]],
            column_names=["version", "name"],
            database=database,
        )
        newly_applied.append(migration.version)
    return newly_applied

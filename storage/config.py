"""What storage needs to know: where the data lives, which database, how long rows live.

The composition root (``otelhouse.settings``) builds a :class:`StorageConfig` from the user's
settings; storage code never sees the rest of them. The validators here are the single
source of the rules (and messages) for the database name and the server URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def check_database(name: str) -> str:
    """``name`` when it is a plain identifier (it is interpolated into DDL); else ValueError."""
    if not _IDENTIFIER.match(name):
        raise ValueError("database must be letters, digits and underscores")
    return name


def check_clickhouse_url(url: str) -> str:
    """``url`` when it is an http(s) URL with a host; else ValueError."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("clickhouse_url must look like http://user:pass@host:8123/database")
    return url


def url_database(url: str | None) -> str | None:
    """The database named by the server URL's path, or None when the path is empty; raises
    ValueError when the path is not an identifier."""
    if not url:
        return None
    path = unquote(urlsplit(url).path.strip("/"))
    if not path:
        return None
    if not _IDENTIFIER.match(path):
        raise ValueError(f"database {path!r} in clickhouse_url is not an identifier")
    return path


DEFAULT_ENGINE_MEMORY_BYTES = 512 * 1024**2


@dataclass(frozen=True, slots=True)
class StorageConfig:
    """The store to open: embedded chdb in ``data_dir`` when ``clickhouse_url`` is None, else
    that ClickHouse server.

    ``database`` is the effective database (use :meth:`resolve` to let a URL path win over a
    configured name); construction validates it, the URL and ``retention_days``.
    ``engine_memory_bytes`` bounds the embedded engine's memory (its caches included); a
    server manages its own.
    """

    data_dir: Path
    clickhouse_url: str | None = None
    database: str = "otel"
    retention_days: int = 30
    engine_memory_bytes: int = DEFAULT_ENGINE_MEMORY_BYTES

    def __post_init__(self) -> None:
        check_database(self.database)
        if self.clickhouse_url is not None:
            check_clickhouse_url(self.clickhouse_url)
            named = url_database(self.clickhouse_url)
            if named is not None and named != self.database:
                raise ValueError(
                    f"clickhouse_url names database {named!r} but database is {self.database!r}"
                )
        if self.retention_days < 0:
            raise ValueError("retention_days must be 0 (keep forever) or more")
        if self.engine_memory_bytes < 64 * 1024**2:
            raise ValueError("engine_memory_bytes must be at least 64 MiB")

    @classmethod
    def resolve(
        cls,
        data_dir: Path,
        clickhouse_url: str | None,
        database: str,
        retention_days: int,
        engine_memory_bytes: int = DEFAULT_ENGINE_MEMORY_BYTES,
    ) -> StorageConfig:
        """The config with the effective database: the server URL's path when it has one,
        else ``database``."""
        return cls(
            data_dir=data_dir,
            clickhouse_url=clickhouse_url,
            database=url_database(clickhouse_url) or database,
            retention_days=retention_days,
            engine_memory_bytes=engine_memory_bytes,
        )

    def engine_options(self) -> dict[str, int]:
        """Server settings of the embedded engine: ``engine_memory_bytes`` as its memory
        limit (a query or merge past it fails and is retried, the process stays up), and its
        caches sized within it rather than at ClickHouse's server defaults (5 GiB mark and
        index caches, sized for a dedicated host). Every client of one data directory in a
        process must pass the same options."""
        limit = self.engine_memory_bytes
        return {
            "max_server_memory_usage": limit,
            "mark_cache_size": limit // 8,
            "index_mark_cache_size": limit // 16,
            "primary_index_cache_size": limit // 16,
            "uncompressed_cache_size": 0,
            "index_uncompressed_cache_size": 0,
            "query_condition_cache_size": limit // 32,
        }

    @property
    def embedded(self) -> bool:
        return self.clickhouse_url is None

    @property
    def location(self) -> str:
        """Where the data lives, fit for logs and error messages (no password)."""
        if self.clickhouse_url is None:
            return str(self.data_dir.resolve())
        parts = urlsplit(self.clickhouse_url)
        if parts.password is None:
            return self.clickhouse_url
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return parts._replace(netloc=netloc).geturl()

    def describe(self) -> str:
        """The kind of store and its location, for start-up logs."""
        kind = "embedded ClickHouse (chdb) in" if self.embedded else "ClickHouse server at"
        return f"{kind} {self.location}"

"""Every otelhouse setting, in one typed object, and the composition root's conversions.

Values come from ``OTELHOUSE_*`` environment variables; the CLI passes its flags as
keyword arguments, which pydantic-settings ranks above the environment, so a flag always
wins over an env var. Components never see ``Settings``: methods here turn it into each
one's narrow config (``storage_config()``, ``api_config()``).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from otelhouse.alerts.config import AlertsConfig
from otelhouse.core.addresses import split_host_port
from otelhouse.core.tokens import split_tokens
from otelhouse.query.config import ApiConfig
from otelhouse.receiver.config import DEFAULT_MAX_INFLIGHT_BYTES, ReceiverConfig
from otelhouse.receiver.limits import ConvertLimits
from otelhouse.receiver.wal.service import WalConfig
from otelhouse.storage.config import (
    DEFAULT_ENGINE_MEMORY_BYTES,
    StorageConfig,
    check_clickhouse_url,
    check_database,
)


ENV_PREFIX = "OTELHOUSE_"
OTHER_ENV_VARS = frozenset(
    {
        "OTELHOUSE_API_TOKEN",
        "OTELHOUSE_JAEGER_URL",
        "OTELHOUSE_TEST_CLICKHOUSE_URL",
    }
)
"""``OTELHOUSE_*`` variables that are not settings: ``otelhouse query``'s token, the
address Grafana's provisioning gives the Jaeger datasource, the test suite's server URL."""


def env_var(name: str) -> str:
    """The environment variable of setting ``name``."""
    return f"{ENV_PREFIX}{name.upper()}"


def flag(name: str) -> str:
    """The ``serve`` flag of setting ``name``."""
    return f"--{name.replace('_', '-')}"


def unknown_env_vars(environ: Mapping[str, str]) -> list[str]:
    """One warning per ``OTELHOUSE_*`` variable in ``environ`` that no part of otelhouse
    reads (a misspelt setting is otherwise silently ignored), naming the closest known one."""
    known = {env_var(name) for name in Settings.model_fields} | OTHER_ENV_VARS
    warnings = []
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in known:
            continue
        close = difflib.get_close_matches(variable, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        warnings.append(f"{variable} is not an otelhouse setting and is ignored{hint}")
    return warnings


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    data_dir: Path = Field(
        Path("./otelhouse-data"),
        description="Directory of the embedded ClickHouse store (ignored in server mode).",
    )
    clickhouse_url: str | None = Field(
        None,
        description="Server mode when set: http(s)://user:pass@host:8123/database.",
    )
    database: str = Field("otel", description="Database for the tables (server URL path wins).")
    otlp_grpc_addr: str = Field("127.0.0.1:4317", description="OTLP/gRPC listen address.")
    otlp_http_addr: str = Field(
        "127.0.0.1:4318", description="OTLP/HTTP listen address (/v1/traces, /v1/logs, /metrics)."
    )
    otlp_tokens: str = Field(
        "",
        description="Comma-separated bearer tokens; when set, every OTLP gRPC call and HTTP "
        "request (/metrics too) needs one.",
    )
    tls_cert_file: Path | None = Field(
        None,
        description="PEM certificate (chain): serve OTLP gRPC, OTLP HTTP and the query API "
        "over TLS.",
    )
    tls_key_file: Path | None = Field(None, description="PEM private key of --tls-cert-file.")
    api_addr: str = Field("127.0.0.1:8080", description="Query API listen address.")
    retention_days: int = Field(
        30, ge=0, description="Rows older than this are dropped by TTL; 0 keeps them forever."
    )
    engine_memory_bytes: int = Field(
        DEFAULT_ENGINE_MEMORY_BYTES,
        ge=64 * 1024**2,
        description="Memory limit of the embedded ClickHouse (its caches sized within it); an "
        "insert or merge past it fails and is retried (ignored in server mode).",
    )
    max_request_bytes: int = Field(
        64 * 1024 * 1024, gt=0, description="Largest OTLP request accepted, after decompression."
    )
    max_attributes: int = Field(
        128,
        ge=0,
        description="Attributes kept per resource, scope, span, event, link or log record; more "
        "dropped.",
    )
    max_attribute_value_bytes: int = Field(
        64 * 1024, ge=32, description="Attribute values longer than this (UTF-8) are truncated."
    )
    max_events_per_span: int = Field(128, ge=0, description="Span events kept; more dropped.")
    max_links_per_span: int = Field(128, ge=0, description="Span links kept; more dropped.")
    batch_max_rows: int = Field(50_000, gt=0, description="Rows per storage insert, at most.")
    batch_max_delay_ms: int = Field(
        200, ge=0, description="Longest a span or log record waits for its batch to fill before insert."
    )
    queue_max_rows: int = Field(
        100_000,
        gt=0,
        description="Spans (and, apart, log records) accepted but not yet stored before new "
        "requests get UNAVAILABLE (converted rows take ~2.3 KB each in memory).",
    )
    max_inflight_bytes: int = Field(
        DEFAULT_MAX_INFLIGHT_BYTES,
        gt=0,
        description="Request bodies (as received) held at once by OTLP requests not yet "
        "answered; past it new requests get UNAVAILABLE / 503 with a retry delay.",
    )
    stats_interval_s: float = Field(10.0, gt=0, description="Seconds between ingest log lines.")
    wal_enabled: bool = Field(
        True,
        description="Acknowledge spans and log records once fsynced to a local write-ahead log that a drainer "
        "empties into storage (off: once inserted, lost if storage is down longer than the "
        "client retries).",
    )
    wal_dir: Path | None = Field(
        None, description="Write-ahead log directory; default <data_dir>/wal (in server mode too)."
    )
    wal_max_bytes: int = Field(
        1024**3,
        gt=0,
        description="Disk budget of the write-ahead log; when full, clients get UNAVAILABLE "
        "until storage catches up.",
    )
    wal_segment_bytes: int = Field(
        64 * 1024**2,
        gt=0,
        description="Size of a log segment file (at most a quarter of wal_max_bytes); drained "
        "segments are deleted.",
    )
    insert_max_delay_ms: int = Field(
        1000,
        ge=0,
        description="Longest a logged span or log record waits for its storage insert to fill "
        "(up to batch_max_rows); larger, fewer inserts cost ClickHouse less. Clients are "
        "answered at the log's fsync, so this delays only when rows become queryable.",
    )
    wal_drain_timeout_s: float = Field(
        10.0,
        ge=0,
        description="On shutdown, seconds spent storing what the log holds; the rest is "
        "replayed at the next start.",
    )
    api_tokens: str = Field(
        "",
        description="Comma-separated bearer tokens; when set, /api and /jaeger routes need one.",
    )

    alert_rules: Path | None = Field(
        None,
        description="YAML alert rules file; when set, serve evaluates the rules and notifies "
        "their receivers (reloaded on change and on SIGHUP).",
    )
    alert_eval_interval_s: float = Field(
        30.0, ge=1, description="Seconds between evaluations of the alert rules."
    )

    @property
    def api_token_set(self) -> frozenset[str]:
        return split_tokens(self.api_tokens)

    @property
    def otlp_token_set(self) -> frozenset[str]:
        return split_tokens(self.otlp_tokens)

    @field_validator("database")
    @classmethod
    def _database_is_identifier(cls, value: str) -> str:
        return check_database(value)

    @field_validator("otlp_grpc_addr", "otlp_http_addr", "api_addr")
    @classmethod
    def _addr_has_port(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _url_is_http(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        return check_clickhouse_url(value)

    @property
    def embedded(self) -> bool:
        return self.clickhouse_url is None

    @property
    def effective_wal_dir(self) -> Path:
        return self.wal_dir if self.wal_dir is not None else self.data_dir / "wal"

    @property
    def effective_database(self) -> str:
        """The database the tables live in: the server URL's path wins over ``database``."""
        return self.storage_config().database

    def api_config(self) -> ApiConfig:
        """What the query API needs: its address, accepted tokens and the (shared) TLS files."""
        return ApiConfig(self.api_addr, self.api_token_set, self.tls_cert_file, self.tls_key_file)

    def alerts_config(self) -> AlertsConfig | None:
        """The alert evaluator's part of the settings; None when no rules file is set.
        Notifications link to the query API at ``api_addr``."""
        if self.alert_rules is None:
            return None
        host, port = split_host_port(self.api_addr)
        scheme = "https" if self.tls_cert_file else "http"
        host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host
        host = f"[{host}]" if ":" in host else host
        return AlertsConfig(self.alert_rules, self.alert_eval_interval_s, f"{scheme}://{host}:{port}")

    def storage_config(self) -> StorageConfig:
        """What storage needs; raises ValueError when the URL's path is not an identifier."""
        return StorageConfig.resolve(
            self.data_dir,
            self.clickhouse_url,
            self.database,
            self.retention_days,
            self.engine_memory_bytes,
        )

    def receiver_config(self) -> ReceiverConfig:
        """The OTLP receiver's part of the settings."""
        return ReceiverConfig(
            grpc_addr=self.otlp_grpc_addr,
            http_addr=self.otlp_http_addr,
            max_request_bytes=self.max_request_bytes,
            batch_max_rows=self.batch_max_rows,
            batch_max_delay_s=self.batch_max_delay_ms / 1000,
            queue_max_rows=self.queue_max_rows,
            max_inflight_bytes=self.max_inflight_bytes,
            tokens=self.otlp_token_set,
            tls_cert_file=self.tls_cert_file,
            tls_key_file=self.tls_key_file,
            limits=ConvertLimits(
                max_attributes=self.max_attributes,
                max_value_bytes=self.max_attribute_value_bytes,
                max_events=self.max_events_per_span,
                max_links=self.max_links_per_span,
            ),
        )

    def wal_config(self) -> WalConfig:
        """The write-ahead log's part of the settings."""
        return WalConfig(
            directory=self.effective_wal_dir,
            max_bytes=self.wal_max_bytes,
            segment_bytes=self.wal_segment_bytes,
            cache_rows=self.batch_max_rows,
            insert_max_delay_s=self.insert_max_delay_ms / 1000,
        )

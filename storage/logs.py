"""Log record rows in column form, and their insert into ``otel_logs``.

As with spans, insert cost is per call, so writers append many requests' columns into one
batch before inserting. The table's MATERIALIZED columns are computed by ClickHouse and never
written.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from clickhouse_connect.driver.client import Client

from otelhouse.storage.tables import LOGS_TABLE



@dataclass(slots=True)
class LogColumns:
    """One list per written ``otel_logs`` column; field names are the column names, in table
    order. ``Timestamp`` holds nanoseconds since the epoch; ids are lower-case hex or ""."""

    Timestamp: list[int] = field(default_factory=list)
    TraceId: list[str] = field(default_factory=list)
    SpanId: list[str] = field(default_factory=list)
    TraceFlags: list[int] = field(default_factory=list)
    SeverityText: list[str] = field(default_factory=list)
    SeverityNumber: list[int] = field(default_factory=list)
    ServiceName: list[str] = field(default_factory=list)
    Body: list[str] = field(default_factory=list)
    ResourceSchemaUrl: list[str] = field(default_factory=list)
    ResourceAttributes: list[dict[str, str]] = field(default_factory=list)
    ScopeSchemaUrl: list[str] = field(default_factory=list)
    ScopeName: list[str] = field(default_factory=list)
    ScopeVersion: list[str] = field(default_factory=list)
    ScopeAttributes: list[dict[str, str]] = field(default_factory=list)
    LogAttributes: list[dict[str, str]] = field(default_factory=list)
    EventName: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.Timestamp)

    def extend(self, other: LogColumns) -> None:
        """Append ``other``'s rows after this batch's."""
        for name in LOG_COLUMN_NAMES:
            getattr(self, name).extend(getattr(other, name))

    def columns(self) -> list[list]:
        """The column lists in ``LOG_COLUMN_NAMES`` order, as ``insert_logs`` sends them."""
        return [getattr(self, name) for name in LOG_COLUMN_NAMES]

    def rows(self) -> list[dict[str, object]]:
        """Row view keyed by column name, for tests and small tools."""
        columns = self.columns()
        return [
            {name: column[r] for name, column in zip(LOG_COLUMN_NAMES, columns)}
            for r in range(len(self))
        ]


LOG_COLUMN_NAMES: tuple[str, ...] = tuple(f.name for f in fields(LogColumns))


def insert_logs(client: Client, logs: LogColumns, *, settings: dict | None = None) -> None:
    """Insert one batch in a single call; raises on failure so nothing is acknowledged.
    ``settings`` go with the insert (``insert_deduplication_token`` makes a replay a no-op)."""
    if not len(logs):
        return
    client.insert(
        LOGS_TABLE,
        logs.columns(),
        column_names=list(LOG_COLUMN_NAMES),
        column_oriented=True,
        settings=settings,
    )

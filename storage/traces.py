"""Span rows in column form, and their insert into ``otel_traces``.

Insert cost is per call, not per row (facts.md: 512-row inserts cap at 10-20k rows/s, 50k-row
inserts reach ~100k rows/s), so writers hand over large column batches built by appending
many requests' columns together.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from clickhouse_connect.driver.client import Client

from otelhouse.storage.tables import TRACES_TABLE


@dataclass(slots=True)
class SpanColumns:
    """One list per ``otel_traces`` column; field names are the column names, in order."""

    Timestamp: list[int] = field(default_factory=list)
    TraceId: list[str] = field(default_factory=list)
    SpanId: list[str] = field(default_factory=list)
    ParentSpanId: list[str] = field(default_factory=list)
    TraceState: list[str] = field(default_factory=list)
    SpanName: list[str] = field(default_factory=list)
    SpanKind: list[str] = field(default_factory=list)
    ServiceName: list[str] = field(default_factory=list)
    ResourceAttributes: list[dict[str, str]] = field(default_factory=list)
    ScopeName: list[str] = field(default_factory=list)
    ScopeVersion: list[str] = field(default_factory=list)
    SpanAttributes: list[dict[str, str]] = field(default_factory=list)
    Duration: list[int] = field(default_factory=list)
    StatusCode: list[str] = field(default_factory=list)
    StatusMessage: list[str] = field(default_factory=list)
    Events_Timestamp: list[list[int]] = field(default_factory=list)
    Events_Name: list[list[str]] = field(default_factory=list)
    Events_Attributes: list[list[dict[str, str]]] = field(default_factory=list)
    Links_TraceId: list[list[str]] = field(default_factory=list)
    Links_SpanId: list[list[str]] = field(default_factory=list)
    Links_TraceState: list[list[str]] = field(default_factory=list)
    Links_Attributes: list[list[dict[str, str]]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.SpanId)

    def extend(self, other: SpanColumns) -> None:
        for name in COLUMN_FIELDS:
            getattr(self, name).extend(getattr(other, name))

    def columns(self) -> list[list]:
        return [getattr(self, name) for name in COLUMN_FIELDS]

    def rows(self) -> list[dict[str, object]]:
        """Row view keyed by column name, for tests and small tools."""
        return [
            {COLUMN_NAMES[i]: col[r] for i, col in enumerate(self.columns())}
            for r in range(len(self))
        ]


COLUMN_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(SpanColumns))
COLUMN_NAMES: tuple[str, ...] = tuple(name.replace("_", ".", 1) for name in COLUMN_FIELDS)


def insert_spans(client: Client, spans: SpanColumns, *, settings: dict | None = None) -> None:
    """Insert one batch in a single call; raises on failure so nothing is acknowledged."""
    if not len(spans):
        return
    client.insert(
        TRACES_TABLE,
        spans.columns(),
        column_names=list(COLUMN_NAMES),
        column_oriented=True,
        settings=settings,
    )

"""Log search over ``otel_logs``: filters → SQL with bound values, keyset pages, severities.

``otel_logs`` names its time and service columns as ``otel_traces`` does, so the range and
service conditions are :func:`otelhouse.query.filters.span_filter`'s.

**Severity.** ``severity=WARN`` means WARN and above: OTel's six levels are SeverityNumber
ranges of four (TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24), and a
level matches numbers from its range's start to 24. Records whose number is 0 (unspecified) or
outside 1..24 have no level: no ``severity`` filter matches them and the stats count them as
``UNSPECIFIED``. The stored SeverityText is shown, never filtered on.

**Text search** (``q``) is a case-insensitive *substring* match on the Body, ASCII letters
folded (``positionCaseInsensitive``): ``q=refus`` finds "Connection REFUSED". So that the
``lower(Body)`` index (text or token bloom filter) can skip granules, each token of ``q``
that has a separator on both sides within ``q`` — and so must be a whole token of a matching
body — is also required with ``hasToken(lower(Body), …)``; that condition is implied by the
substring match, so it never changes the result.

**Pages** are newest first, ordered by (Timestamp, :data:`ROW_KEY`) descending. A cursor is
the position after a page's last record plus the range start of the first page (a ``since``
range moves with the clock): the next page holds the records strictly below that position
in the same range, so records inserted meanwhile with later timestamps never shift the pages
and none is repeated or skipped. Records stored later *with older timestamps* than the
position may still appear on later pages. Two records equal in every hashed column share a
position and may be split by a page boundary, in which case the second one is not listed.
"""

from __future__ import annotations

import base64
import binascii
import re
import struct
from dataclasses import dataclass
from datetime import datetime, timedelta

from clickhouse_connect.driver.client import Client

from otelhouse.query.filters import Where, map_entry, span_filter
from otelhouse.query.params import MAX_RANGE, TimeRange, epoch_ns
from otelhouse.query.units import datetime_from_ns
from otelhouse.storage.logs import LOGS_TABLE
from otelhouse.storage.semantics import LEVELS, MAX_SEVERITY_NUMBER, severity_floor

MAX_LIMIT = 1000
MAX_TRACE_LOGS = 10_000
TRACE_MARGIN = timedelta(minutes=1)
"""How far before its first span's start and after its last span's end a trace's logs are
looked for (log and span clocks disagree, logs are written around span ends)."""

UNSPECIFIED = "UNSPECIFIED"
LEVEL_NAMES: tuple[str, ...] = (UNSPECIFIED, *LEVELS)
"""Level names by the index :data:`LEVEL_SQL` computes."""
LEVEL_SQL = "multiIf(SeverityNumber BETWEEN 1 AND 24, intDiv(SeverityNumber + 3, 4), 0)"
"""A record's level as an index into :data:`LEVEL_NAMES` (0 for no level)."""

ROW_KEY = (
    "cityHash64(ServiceName, TraceId, SpanId, SeverityNumber, SeverityText, Body, "
    "ScopeName, LogAttributes, ResourceAttributes)"
)
"""The tiebreaker of records with the same Timestamp, stable across reads."""

LOG_COLUMNS = (
    f"toUnixTimestamp64Nano(Timestamp) AS ts_ns, {ROW_KEY} AS row_key, SeverityText, "
    "SeverityNumber, Body, ServiceName, TraceId, SpanId, LogAttributes, ResourceAttributes, "
    "ScopeName"
)

MAX_QUERY_TOKENS = 8
"""At most this many (the longest) of ``q``'s whole tokens go to the index condition."""
_SEPARATOR = re.compile(rb"[^0-9A-Za-z\x80-\xff]+")


def level_name(severity_number: int) -> str:
    """The level of a SeverityNumber, as :data:`LEVEL_SQL` computes it."""
    if 1 <= severity_number <= MAX_SEVERITY_NUMBER:
        return LEVELS[(severity_number - 1) // 4]
    return UNSPECIFIED


def whole_tokens(q: str) -> list[str]:
    """The tokens of ``q`` with a separator on both sides within ``q``, ASCII-lowered as
    ``lower(Body)`` is, longest first, at most :data:`MAX_QUERY_TOKENS`.

    Tokens and separators are ClickHouse's (``hasToken``, the ``splitByNonAlpha`` tokenizer):
    a token is a run of ASCII letters, digits and non-ASCII bytes, so it is cut only at ASCII
    bytes and stays valid UTF-8."""
    data = q.encode().lower()
    separators = list(_SEPARATOR.finditer(data))
    inner = [
        data[before.end() : after.start()]
        for before, after in zip(separators, separators[1:], strict=False)
    ]
    unique = sorted(set(inner), key=lambda t: (-len(t), t))[:MAX_QUERY_TOKENS]
    return [token.decode() for token in unique]


def text_condition(where: Where, q: str) -> Where:
    """``where`` and the Body containing ``q`` (see the module docstring)."""
    tokens = {f"qt{i}": token for i, token in enumerate(whole_tokens(q))}
    for name, token in tokens.items():
        where = where.and_(f"hasToken(lower(Body), {{{name}:String}})", **{name: token})
    return where.and_("positionCaseInsensitive(Body, {q:String}) > 0", q=q)


@dataclass(frozen=True, slots=True)
class Cursor:
    """The position after a page's last record, and the range start of its first page."""

    timestamp_ns: int
    row_key: int
    range_start_ns: int

    _FORMAT = struct.Struct(">BqQq")
    _VERSION = 1

    def encode(self) -> str:
        packed = self._FORMAT.pack(
            self._VERSION, self.timestamp_ns, self.row_key, self.range_start_ns
        )
        return base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor | None:
        """The cursor ``encode`` wrote; None for anything else."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            version, timestamp_ns, row_key, start_ns = cls._FORMAT.unpack(raw)
        except (binascii.Error, struct.error, ValueError):
            return None
        if version != cls._VERSION or cls(timestamp_ns, row_key, start_ns).encode() != text:
            return None
        return cls(timestamp_ns, row_key, start_ns)


@dataclass(frozen=True, slots=True)
class LogSearch:
    """A log search; ``None`` and empty mean "any". ``min_severity`` is a SeverityNumber."""

    time: TimeRange
    service: str | None = None
    min_severity: int | None = None
    q: str | None = None
    trace_id: str | None = None
    attributes: tuple[tuple[str, str], ...] = ()

    def where(self) -> Where:
        where = span_filter(self.time, service=self.service)
        if self.min_severity is not None:
            where = where.and_(
                f"SeverityNumber BETWEEN {{min_severity:UInt8}} AND {MAX_SEVERITY_NUMBER}",
                min_severity=self.min_severity,
            )
        if self.trace_id is not None:
            where = where.and_("TraceId = {trace_id:String}", trace_id=self.trace_id)
        for i, (key, value) in enumerate(self.attributes):
            condition, values = map_entry("LogAttributes", i, key, value)
            where = where.and_(condition, **values)
        if self.q is not None:
            where = text_condition(where, self.q)
        return where


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One ``otel_logs`` row as the API shows it; ``timestamp_ns`` exact."""

    timestamp_ns: int
    row_key: int
    severity_text: str
    severity_number: int
    body: str
    service: str
    trace_id: str
    span_id: str
    attributes: dict[str, str]
    resource_attributes: dict[str, str]
    scope_name: str


def _records(client: Client, sql: str, parameters: dict[str, object]) -> list[LogRecord]:
    return [
        LogRecord(
            timestamp_ns=int(row[0]),
            row_key=int(row[1]),
            severity_text=row[2],
            severity_number=int(row[3]),
            body=row[4],
            service=row[5],
            trace_id=row[6],
            span_id=row[7],
            attributes=dict(row[8]),
            resource_attributes=dict(row[9]),
            scope_name=row[10],
        )
        for row in client.query(sql, parameters=parameters).result_rows
    ]


def page_query(search: LogSearch, limit: int, after: Cursor | None) -> tuple[str, dict]:
    """The page's records newest first, plus one more to tell whether another page follows."""
    where = search.where()
    if after is not None:
        where = where.and_(
            "Timestamp <= fromUnixTimestamp64Nano({after_ns:Int64}) AND "
            f"(Timestamp, {ROW_KEY}) < (fromUnixTimestamp64Nano({{after_ns:Int64}}), "
            "{after_key:UInt64})",
            after_ns=after.timestamp_ns,
            after_key=after.row_key,
        )
    sql = (
        f"SELECT {LOG_COLUMNS} FROM {LOGS_TABLE} WHERE {where.sql}"
        " ORDER BY Timestamp DESC, row_key DESC LIMIT {limit:UInt32}"
    )
    return sql, where.bind(limit=limit + 1)


def resumed_range(cursor: Cursor, end: datetime) -> TimeRange | None:
    """The range a page after ``cursor`` covers: from the first page's start to ``end``;
    None when that is empty or longer than :data:`otelhouse.query.params.MAX_RANGE`."""
    start = datetime_from_ns(cursor.range_start_ns) if cursor.range_start_ns >= 0 else None
    if start is None or epoch_ns(start) != cursor.range_start_ns:
        return None
    if not start < end or end - start > MAX_RANGE:
        return None
    return TimeRange(start, end)


@dataclass(frozen=True, slots=True)
class LogPage:
    records: list[LogRecord]
    next_cursor: Cursor | None


def search_logs(
    client: Client, search: LogSearch, limit: int, after: Cursor | None = None
) -> LogPage:
    """One page of ``search`` newest first, after ``after`` when given (then ``search.time``
    must be its :func:`resumed_range`); ``next_cursor`` is None on the last page."""
    records = _records(client, *page_query(search, limit, after))
    if len(records) <= limit:
        return LogPage(records, None)
    last = records[limit - 1]
    return LogPage(records[:limit], Cursor(last.timestamp_ns, last.row_key, search.time.start_ns))


def trace_logs(client: Client, trace_id: str, first_ns: int, last_ns: int) -> list[LogRecord]:
    """The records of ``trace_id`` (normalised) stamped from ``first_ns`` to ``last_ns``
    widened by :data:`TRACE_MARGIN`, oldest first, at most :data:`MAX_TRACE_LOGS`."""
    margin_ns = int(TRACE_MARGIN.total_seconds()) * 1_000_000_000
    sql = (
        f"SELECT {LOG_COLUMNS} FROM {LOGS_TABLE} WHERE TraceId = {{trace_id:String}} AND "
        "Timestamp BETWEEN fromUnixTimestamp64Nano({lo_ns:Int64}) "
        "AND fromUnixTimestamp64Nano({hi_ns:Int64})"
        " ORDER BY Timestamp, row_key LIMIT {limit:UInt32}"
    )
    parameters = {
        "trace_id": trace_id,
        "lo_ns": first_ns - margin_ns,
        "hi_ns": last_ns + margin_ns,
        "limit": MAX_TRACE_LOGS,
    }
    return _records(client, sql, parameters)

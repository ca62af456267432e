"""On-disk format of the write-ahead log: segment files of length-prefixed, checksummed records.

A segment starts with ``MAGIC`` and the ``marshal`` format version its payloads were written
with. A record is ``length | crc32 | rows | appended_ns`` (little-endian u32, u32, u32, u64)
followed by ``length`` payload bytes; the CRC covers ``rows``, ``appended_ns`` and the payload,
so a record torn by a crash mid-write fails the check instead of being half-read.

The payload is ``marshal.dumps`` of ``{column name: column list}``. Measured on 50k realistic
spans: marshal writes 0.9 µs/span (411 B/span), pickle 5.7 µs (1.4 µs with its memo off, at
628 B/span), JSON 4.5 µs; reading back costs 8.5-9.5 µs/span whatever the format, which is why
the log hands the drainer its in-memory columns and only reads payloads back after a restart
or a backlog. Payloads hold nothing but lists, dicts, str and int, whose marshal encoding has
not changed since Python 3.4; ``marshal`` reads every older version, and a segment stamped
with a newer version than the running Python's is refused rather than misread.
"""

from __future__ import annotations

import marshal
import os
import struct
import zlib
from dataclasses import dataclass

from otelhouse.storage.traces import COLUMN_FIELDS, SpanColumns

MAGIC = b"OHWALSEG"
SEGMENT_HEADER = struct.Struct("<8sI")
RECORD_HEADER = struct.Struct("<IIIQ")
_CHECKED_FIELDS = struct.Struct("<IQ")


class WalError(Exception):
    """The write-ahead log cannot do what was asked; the message says why and what to do."""


class CorruptRecord(WalError):
    """Bytes where a record should be do not form a whole record with a matching checksum."""


@dataclass(frozen=True, slots=True)
class Record:
    """Where one record lies in its segment, and what its header says."""

    offset: int
    end: int
    rows: int
    appended_ns: int


def segment_header() -> bytes:
    return SEGMENT_HEADER.pack(MAGIC, marshal.version)


def check_segment_header(fd: int) -> None:
    """Raise ``CorruptRecord`` unless the file starts with a segment header this Python reads."""
    head = os.pread(fd, SEGMENT_HEADER.size, 0)
    if len(head) < SEGMENT_HEADER.size or head[: len(MAGIC)] != MAGIC:
        raise CorruptRecord("no segment header")
    _, version = SEGMENT_HEADER.unpack(head)
    if version > marshal.version:
        raise WalError(
            f"segment written with marshal format {version}, this Python reads up to "
            f"{marshal.version}: drain the log with the Python version that wrote it"
        )


def encode_record(spans: SpanColumns, appended_ns: int) -> list[bytes]:
    """Header and payload as separate buffers for ``os.writev`` (no 20 MB concatenation)."""
    payload = marshal.dumps({name: getattr(spans, name) for name in COLUMN_FIELDS})
    rows = len(spans)
    crc = zlib.crc32(payload, zlib.crc32(_CHECKED_FIELDS.pack(rows, appended_ns)))
    return [RECORD_HEADER.pack(len(payload), crc, rows, appended_ns), payload]


def read_header(fd: int, offset: int, limit: int) -> tuple[Record, int]:
    """The record starting at ``offset`` and its CRC, without reading the payload."""
    head = os.pread(fd, RECORD_HEADER.size, offset)
    if len(head) < RECORD_HEADER.size:
        raise CorruptRecord(f"record header at offset {offset} is cut short")
    length, crc, rows, appended_ns = RECORD_HEADER.unpack(head)
    end = offset + RECORD_HEADER.size + length
    if end > limit:
        raise CorruptRecord(f"record at offset {offset} runs past the end of the segment")
    return Record(offset, end, rows, appended_ns), crc


def read_record(fd: int, offset: int, limit: int) -> tuple[Record, bytes]:
    """The whole record at ``offset``, checksum verified."""
    record, crc = read_header(fd, offset, limit)
    payload = os.pread(fd, record.end - offset - RECORD_HEADER.size, offset + RECORD_HEADER.size)
    checked = zlib.crc32(payload, zlib.crc32(_CHECKED_FIELDS.pack(record.rows, record.appended_ns)))
    if len(payload) != record.end - offset - RECORD_HEADER.size or checked != crc:
        raise CorruptRecord(f"record at offset {offset} fails its checksum")
    return record, payload


def scan(fd: int, start: int, limit: int) -> tuple[list[Record], int]:
    """Every whole, valid record from ``start``; the second value is where valid data ends
    (before a torn or corrupt record, or at ``limit``)."""
    records: list[Record] = []
    offset = start
    while offset < limit:
        try:
            record, _ = read_record(fd, offset, limit)
        except CorruptRecord:
            break
        records.append(record)
        offset = record.end
    return records, offset


def decode_payload(payload: bytes, rows: int) -> SpanColumns:
    columns = marshal.loads(payload)
    if not isinstance(columns, dict) or set(columns) != set(COLUMN_FIELDS):
        raise WalError(
            "record columns do not match this otelhouse version's otel_traces columns: "
            "drain the log with the version that wrote it"
        )
    spans = SpanColumns(**columns)
    if any(len(column) != rows for column in spans.columns()):
        raise CorruptRecord(f"record columns do not all hold {rows} rows")
    return spans

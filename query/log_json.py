"""The logs API's JSON: fetched records → response models (pure).

Times are given as the trace JSON gives them (:mod:`otelhouse.query.trace_json`): an RFC 3339
datetime for people (microseconds) and an exact integer of nanoseconds for programs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Self

from pydantic import BaseModel, Field

from otelhouse.query.filters import RangeResponse
from otelhouse.query.logs import LogRecord
from otelhouse.query.units import datetime_from_ns


class LogOut(BaseModel):
    timestamp: datetime
    timestamp_unix_nano: int
    severity_text: str = Field(description="As the producer wrote it; may be empty.")
    severity_number: int = Field(description="OTel SeverityNumber: 1-24, 0 unspecified.")
    body: str
    service: str
    trace_id: str = Field(description="32 hex digits, or empty outside a trace.")
    span_id: str = Field(description="16 hex digits, or empty.")
    attributes: dict[str, str]
    resource_attributes: dict[str, str]
    scope_name: str

    @classmethod
    def from_record(cls, record: LogRecord) -> Self:
        return cls(
            timestamp=datetime_from_ns(record.timestamp_ns),
            timestamp_unix_nano=record.timestamp_ns,
            severity_text=record.severity_text,
            severity_number=record.severity_number,
            body=record.body,
            service=record.service,
            trace_id=record.trace_id,
            span_id=record.span_id,
            attributes=record.attributes,
            resource_attributes=record.resource_attributes,
            scope_name=record.scope_name,
        )


class LogPageOut(RangeResponse):
    logs: list[LogOut] = Field(description="Matching records, newest first.")
    next_cursor: str | None = Field(
        description="Pass as `cursor` (with the same filters) for the next page; null at the end."
    )
    limit: int


class ServiceCount(BaseModel):
    service: str
    count: int


class LogStatsBucket(BaseModel):
    start: datetime = Field(description="Bucket start, UTC; the bucket is [start, start + step).")
    count: int
    by_severity: dict[str, int] = Field(description="Records per level, every level listed.")


class LogStatsOut(RangeResponse):
    step_s: int = Field(description="Bucket width in seconds.")
    count: int = Field(description="Records in the range.")
    by_severity: dict[str, int] = Field(
        description="Records per level (TRACE..FATAL by SeverityNumber range, UNSPECIFIED for "
        "0 or out of range), every level listed."
    )
    by_service: list[ServiceCount] = Field(description="Records per service, most first.")
    buckets: list[LogStatsBucket]

"""JSON log lines for apps without an OpenTelemetry SDK: ``POST /api/v1/logs``, another input
format of the logs signal.

The records become an OTLP ``ExportLogsServiceRequest`` (one resource per record) and go
through the ``LOGS`` pipeline like any OTLP export: the same in-flight budget, queue bound,
conversion (attribute rendering and limits) and sink (the write-ahead log acknowledges them).
The query API mounts :func:`json_logs_router` (``otelhouse.serve`` does the composing), so its
bearer tokens apply.

A record is an object with these fields, all optional but ``message``; any other field makes
the record invalid:

- ``timestamp``: an RFC 3339 string with a time zone (``2026-01-02T03:04:05.123456789Z``,
  up to nanoseconds), or a number of milliseconds since the epoch when below 10^15 (which is
  the year 33658 in milliseconds), else of nanoseconds (10^15 ns is 1970-01-12). Default: the
  time the request is read.
- ``level`` or ``severity`` (not both): ``trace``, ``debug``, ``info``, ``warn``/``warning``,
  ``error``, ``fatal``/``critical`` in any case; SeverityText keeps it as sent, SeverityNumber
  is 1, 5, 9, 13, 17 or 21.
- ``message``: the Body; a string, or any other JSON value (rendered as OTLP bodies are).
- ``service``: ServiceName and the resource's ``service.name``.
- ``trace_id`` (32 hex digits) and ``span_id`` (16), either case; stored lower-case.
- ``attributes`` or ``metadata`` (not both): an object whose values become LogAttributes,
  stringified as OTLP attribute values are (numbers in decimal, booleans ``true``/``false``,
  arrays and objects as JSON, null as "").
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs
from pydantic import BaseModel, Field

from otelhouse.receiver.convert import MAX_TIME_NS
from otelhouse.receiver.errors import IngestError, InvalidRequest, UnsupportedMedia, error_codes
from otelhouse.receiver.http_service import (
    JSON,
    decompressor,
    media_type,
    read_held_body,
    retry_headers,
)
from otelhouse.receiver.pipeline import SignalPipeline

NDJSON = "application/x-ndjson"
PATH = "/api/v1/logs"

MILLISECONDS_BELOW = 10**15
"""A numeric ``timestamp`` below this counts milliseconds since the epoch, from it on
nanoseconds."""

SEVERITY_NUMBERS: dict[str, int] = {
    "trace": 1,
    "debug": 5,
    "info": 9,
    "warn": 13,
    "warning": 13,
    "error": 17,
    "fatal": 21,
    "critical": 21,
}
FIELDS = (
    "timestamp",
    "level",
    "severity",
    "message",
    "service",
    "trace_id",
    "span_id",
    "attributes",
    "metadata",
)
MAX_NESTING = 64
"""Deeper levels of a message or attribute value are replaced by an empty array, which the
conversion's depth limit (at most this) then renders as its "nested deeper" marker."""

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})",
    re.ASCII,
)
_HEX = re.compile(r"[0-9a-fA-F]*", re.ASCII)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class RecordError(ValueError):
    """One record is invalid because of ``field`` ("" for the record as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record not stored: its 0-based position, the field at fault and why."""

    index: int
    field: str
    error: str


class InvalidRecords(InvalidRequest):
    """Nothing in the body can be stored: it is empty, not JSON, or every record is invalid
    (``rejected`` says why, record by record)."""

    def __init__(self, message: str, rejected: tuple[Rejected, ...] = ()) -> None:
        super().__init__(message)
        self.rejected = rejected


@dataclass(frozen=True, slots=True)
class ParsedLogs:
    """The valid records as an OTLP request, and the invalid ones."""

    request: ExportLogsServiceRequest
    rejected: tuple[Rejected, ...]


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _loads(text: bytes | str) -> object:
    """``text`` as JSON, refusing NaN and Infinity; ``ValueError`` or ``RecursionError``."""
    return json.loads(text, parse_constant=_no_constant)


def split_records(payload: bytes, media: str) -> list[object | RecordError]:
    """The records of a body: a JSON object or array (``application/json``) or one JSON
    value per non-blank line (``application/x-ndjson``), where a line that is not JSON is a
    ``RecordError`` in its place. ``InvalidRecords`` when the body has no record at all or is
    not JSON; ``UnsupportedMedia`` for another content type."""
    if media == JSON:
        try:
            document = _loads(payload)
        except (ValueError, RecursionError) as exc:
            raise InvalidRecords(f"body is not JSON: {exc}") from None
        records = document if isinstance(document, list) else [document]
    elif media == NDJSON:
        records = [_line(line) for line in payload.splitlines() if line.strip()]
    else:
        raise UnsupportedMedia(f"content type must be {JSON} or {NDJSON}")
    if not records:
        raise InvalidRecords("no log record in the body")
    return records


def _line(line: bytes) -> object | RecordError:
    try:
        return _loads(line)
    except (ValueError, RecursionError) as exc:
        return RecordError("", f"line is not JSON: {exc}")


def parse_json_logs(payload: bytes, media: str, now_ns: int | None = None) -> ParsedLogs:
    """The body's valid records as one OTLP request and the invalid ones, each with its
    position (in the array, or among the non-blank NDJSON lines); ``now_ns`` is the
    timestamp of records without one (default: now). Raises ``InvalidRecords`` when no record
    is valid."""
    now = time.time_ns() if now_ns is None else now_ns
    request = ExportLogsServiceRequest()
    rejected: list[Rejected] = []
    records = split_records(payload, media)
    for index, raw in enumerate(records):
        try:
            if isinstance(raw, RecordError):
                raise raw
            request.resource_logs.append(record_to_otlp(raw, now))
        except RecordError as exc:
            rejected.append(Rejected(index, exc.field, str(exc)))
    if len(rejected) == len(records):
        first = rejected[0]
        where = f" ({first.field})" if first.field else ""
        raise InvalidRecords(
            f"no valid log record: record {first.index}{where}: {first.error}", tuple(rejected)
        )
    return ParsedLogs(request, tuple(rejected))


def record_to_otlp(raw: object, now_ns: int) -> ResourceLogs:
    """One JSON log record as an OTLP resource holding its one log record; ``RecordError``
    naming the field at fault."""
    if not isinstance(raw, dict):
        raise RecordError("", f"a log record must be a JSON object, not {_json_type(raw)}")
    unknown = sorted(key for key in raw if key not in FIELDS)
    if unknown:
        raise RecordError(unknown[0], f"unknown field; the fields are {', '.join(FIELDS)}")
    resource_logs = ResourceLogs()
    record = resource_logs.scope_logs.add().log_records.add()
    service = _one_of(raw, "service")
    if service is not None:
        _set_attribute(resource_logs.resource.attributes, "service.name", service, "service")
    record.time_unix_nano = _timestamp(raw.get("timestamp"), now_ns)
    severity = _one_of(raw, "level", "severity")
    if severity is not None:
        field = "level" if "level" in raw else "severity"
        record.severity_text, record.severity_number = severity_of(severity, field)
    if raw.get("message") is None:
        raise RecordError("message", "required: the log line (a string or any JSON value)")
    _fill(record.body, raw["message"], "message", MAX_NESTING)
    record.trace_id = _hex_id(raw, "trace_id", 16)
    record.span_id = _hex_id(raw, "span_id", 8)
    attributes = _one_of(raw, "attributes", "metadata", string=False)
    if attributes is not None:
        _attributes(record, attributes, "attributes" if "attributes" in raw else "metadata")
    return resource_logs


def _one_of(raw: dict[str, Any], *names: str, string: bool = True) -> Any:
    """The value of the one field of ``names`` present (None if none is); a string when
    ``string``."""
    present = [name for name in names if name in raw]
    if len(present) > 1:
        raise RecordError(present[1], f"give {' or '.join(names)}, not both")
    if not present:
        return None
    value = raw[present[0]]
    if string and not isinstance(value, str):
        raise RecordError(present[0], f"must be a string, not {_json_type(value)}")
    return value


def severity_of(text: str, field: str = "level") -> tuple[str, int]:
    """SeverityText (``text`` as sent) and SeverityNumber of a level name, any case;
    ``RecordError`` naming ``field`` for another name."""
    number = SEVERITY_NUMBERS.get(text.strip().lower())
    if number is None:
        raise RecordError(field, f"unknown level; use one of {', '.join(SEVERITY_NUMBERS)}")
    return text, number


def _timestamp(value: object, now_ns: int) -> int:
    if value is None:
        return now_ns
    if isinstance(value, str):
        nanos = rfc3339_ns(value)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        nanos = epoch_ns(value)
    else:
        raise RecordError("timestamp", "must be an RFC 3339 string or a number")
    if not 0 < nanos <= MAX_TIME_NS:
        raise RecordError("timestamp", "must be after 1970-01-01 and before the year 2262")
    return nanos


def epoch_ns(value: int | float) -> int:
    """Nanoseconds of a numeric timestamp: milliseconds below ``MILLISECONDS_BELOW`` (a
    fraction counts to the nanosecond, as its shortest decimal reads), nanoseconds from it
    on."""
    if not math.isfinite(value):
        raise RecordError("timestamp", "must be a finite number")
    if abs(value) < MILLISECONDS_BELOW:
        exact = Decimal(repr(value)) if isinstance(value, float) else value
        return int(round(exact * 1_000_000))
    return int(value)


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 date-time with a time zone offset (``Z``
    or ``+hh:mm``); fraction digits past nanoseconds are dropped."""
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise RecordError(
            "timestamp", "not RFC 3339: expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm)"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    try:
        zone = timezone.utc
        if offset not in ("Z", "z"):
            sign = -1 if offset[0] == "-" else 1
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        moment = datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), tzinfo=zone
        )
    except ValueError as exc:
        raise RecordError("timestamp", f"not a valid date-time: {exc}") from None
    elapsed = moment - _EPOCH
    seconds = elapsed.days * 86_400 + elapsed.seconds
    return seconds * 1_000_000_000 + int((fraction or "")[:9].ljust(9, "0"))


def _hex_id(raw: dict[str, Any], field: str, size: int) -> bytes:
    value = raw.get(field)
    if value is None:
        return b""
    if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
        raise RecordError(field, f"must be {2 * size} hex digits")
    return bytes.fromhex(value)


def _attributes(record: LogRecord, value: object, field: str) -> None:
    if not isinstance(value, dict):
        raise RecordError(field, f"must be an object, not {_json_type(value)}")
    for key, item in value.items():
        _set_attribute(record.attributes, key, item, field)


def _set_attribute(attributes: Any, key: str, value: object, field: str) -> None:
    """Append ``key``: ``value`` to a protobuf ``KeyValue`` list."""
    entry = KeyValue()
    _set_text(entry, "key", key, field)
    _fill(entry.value, value, field, MAX_NESTING)
    attributes.append(entry)


def _set_text(message: Any, name: str, text: str, field: str) -> None:
    """Protobuf strings must be UTF-8: a JSON string with a lone surrogate escape is not."""
    try:
        setattr(message, name, text)
    except UnicodeEncodeError:
        raise RecordError(field, "holds a lone UTF-16 surrogate (not valid UTF-8)") from None


def _fill(target: AnyValue, value: object, field: str, depth: int) -> None:
    """Set ``target`` to a JSON value: strings, booleans, integers (int64, larger ones as
    their decimal digits), doubles, arrays and objects; null leaves it empty."""
    if isinstance(value, str):
        _set_text(target, "string_value", value, field)
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        if -(2**63) <= value < 2**63:
            target.int_value = value
        else:
            target.string_value = str(value)
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, list):
        target.array_value.SetInParent()
        if depth:
            for item in value:
                _fill(target.array_value.values.add(), item, field, depth - 1)
    elif isinstance(value, dict):
        if not depth:
            target.array_value.SetInParent()
            return
        target.kvlist_value.SetInParent()
        for key, item in value.items():
            entry = target.kvlist_value.values.add()
            _set_text(entry, "key", key, field)
            _fill(entry.value, item, field, depth - 1)


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


class RecordProblem(BaseModel):
    index: int = Field(description="0-based position of the record (array element or non-blank line).")
    field: str = Field(description="The field at fault; empty when it is the record as a whole.")
    error: str


class IngestResult(BaseModel):
    accepted: int = Field(description="Records taken (durably, once the answer is sent).")
    rejected: int = Field(description="Invalid records, not stored.")
    errors: list[RecordProblem] = Field(description="Why each rejected record was refused.")
    warning: str = Field(
        "", description="Limits applied to accepted records (attributes cut), or empty."
    )


class IngestRefused(BaseModel):
    detail: str
    accepted: int = 0
    rejected: int = 0
    errors: list[RecordProblem] = Field(default_factory=list)


class ErrorDetail(BaseModel):
    detail: str


RECORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["message"],
    "properties": {
        "timestamp": {
            "oneOf": [{"type": "string", "format": "date-time"}, {"type": "number"}],
            "description": "RFC 3339 with a time zone, or epoch milliseconds (a number below "
            "10^15) or nanoseconds (from 10^15 on); default now.",
        },
        "level": {
            "type": "string",
            "description": "trace, debug, info, warn/warning, error, fatal/critical (any case).",
        },
        "severity": {"type": "string", "description": "Same as level; give one of them."},
        "message": {"description": "The log line (Body): a string or any JSON value."},
        "service": {"type": "string", "description": "ServiceName (resource service.name)."},
        "trace_id": {"type": "string", "pattern": "^[0-9a-fA-F]{32}$"},
        "span_id": {"type": "string", "pattern": "^[0-9a-fA-F]{16}$"},
        "attributes": {"type": "object", "description": "LogAttributes; values stringified."},
        "metadata": {"type": "object", "description": "Same as attributes; give one of them."},
    },
}
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "oneOf": [RECORD_SCHEMA, {"type": "array", "items": RECORD_SCHEMA, "minItems": 1}]
            }
        },
        NDJSON: {
            "schema": {"type": "string", "description": "One record (JSON object) per line."}
        },
    },
}


def json_logs_router(pipeline: SignalPipeline[Any, Any], *, max_request_bytes: int) -> APIRouter:
    """``POST /api/v1/logs`` submitting to ``pipeline`` (the logs signal's), with bodies
    capped at ``max_request_bytes`` after decompression."""
    router = APIRouter(prefix=PATH, tags=["logs"])

    @router.post(
        "",
        summary="Send log records as JSON",
        description=(
            "One record (an object) or an array of them as `application/json`, or one record "
            "per line as `application/x-ndjson`; gzip bodies with `Content-Encoding: gzip`. "
            "Fields: " + ", ".join(f"`{name}`" for name in FIELDS) + " (only `message` is "
            "required; unknown fields make a record invalid). A numeric `timestamp` below "
            "10^15 counts milliseconds since the epoch, from 10^15 on nanoseconds. Valid "
            "records are stored and invalid ones reported by index: 202 when at least one "
            "record was accepted (acknowledged once durable), 422 when none was."
        ),
        status_code=202,
        response_model=IngestResult,
        responses={
            413: {"model": ErrorDetail, "description": "Body over the size limit."},
            415: {"model": ErrorDetail, "description": "Unsupported content type or encoding."},
            422: {"model": IngestRefused, "description": "No valid record in the body."},
            503: {"model": ErrorDetail, "description": "Busy or storage down: retry later."},
        },
        openapi_extra={"requestBody": REQUEST_BODY},
    )
    async def ingest(request: Request) -> JSONResponse:
        media = media_type(request.headers)
        try:
            inflate = decompressor(request.headers, max_request_bytes)
            if media not in (JSON, NDJSON):
                raise UnsupportedMedia(f"content type must be {JSON} or {NDJSON}")
            payload = await read_held_body(pipeline, request, max_request_bytes)
        except IngestError as exc:
            pipeline.count_refusal(exc)
            return refusal(exc)
        return await submit(pipeline, payload, _decoder(media, inflate))

    return router


def _decoder(
    media: str, inflate: Callable[[bytes], bytes] | None
) -> Callable[[bytes], ParsedLogs]:
    def decode(payload: bytes) -> ParsedLogs:
        return parse_json_logs(inflate(payload) if inflate else payload, media)

    return decode


async def submit(
    pipeline: SignalPipeline[Any, Any], payload: bytes, decode: Callable[[bytes], ParsedLogs]
) -> JSONResponse:
    """Send the body's valid records through ``pipeline``; the answer once they are durable,
    or the refusal."""
    parsed: list[ParsedLogs] = []

    def request_of(body: bytes) -> ExportLogsServiceRequest:
        try:
            parsed.append(decode(body))
        except InvalidRecords as exc:
            pipeline.count_rejected(len(exc.rejected))
            raise
        pipeline.count_rejected(len(parsed[0].rejected))
        return parsed[0].request

    try:
        response = await pipeline.export(payload, request_of)
    except IngestError as exc:
        return refusal(exc)
    rejected = parsed[0].rejected
    partial = response.partial_success
    result = IngestResult(
        accepted=len(parsed[0].request.resource_logs) - partial.rejected_log_records,
        rejected=len(rejected) + partial.rejected_log_records,
        errors=[RecordProblem(index=r.index, field=r.field, error=r.error) for r in rejected],
        warning=partial.error_message,
    )
    return JSONResponse(result.model_dump(), status_code=202)


def refusal(error: IngestError) -> JSONResponse:
    """The JSON answer to a refused request: 422 listing invalid records, else the status
    of ``receiver.errors``' table (with ``Retry-After`` when the client should retry)."""
    if isinstance(error, InvalidRecords):
        body = IngestRefused(
            detail=str(error),
            rejected=len(error.rejected),
            errors=[
                RecordProblem(index=r.index, field=r.field, error=r.error) for r in error.rejected
            ],
        )
        return JSONResponse(body.model_dump(), status_code=422)
    return JSONResponse(
        {"detail": str(error)}, status_code=error_codes(error).http, headers=retry_headers(error)
    )

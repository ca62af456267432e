"""OTLP/JSON → ``ExportTraceServiceRequest``.

OTLP/JSON is the protobuf JSON mapping with one exception: trace and span ids are hex strings
(either case), not base64 (OTLP specification, "JSON Protobuf Encoding"). The ids are turned
into base64 in the parsed document, then protobuf's own parser does the rest: enums as
integers, int64 as strings or numbers, lowerCamelCase or original field names, unknown fields
ignored. ``AnyValue.bytesValue`` stays base64, as the mapping says.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from otelhouse.receiver.ingest import InvalidRequest

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")
_SPAN_IDS = ("traceId", "trace_id", "spanId", "span_id", "parentSpanId", "parent_span_id")
_LINK_IDS = ("traceId", "trace_id", "spanId", "span_id")


def decode_json(payload: bytes) -> ExportTraceServiceRequest:
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"request body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest("an OTLP/JSON trace export must be a JSON object")
    spans = _objects(
        document, ("resourceSpans", "resource_spans"), ("scopeSpans", "scope_spans"), ("spans",)
    )
    for span in spans:
        _hex_ids_to_base64(span, _SPAN_IDS)
        for link in _objects(span, ("links",)):
            _hex_ids_to_base64(link, _LINK_IDS)
    try:
        request = ExportTraceServiceRequest()
        return json_format.ParseDict(document, request, ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidRequest(f"request is not a valid OTLP/JSON trace export: {exc}") from None


def _objects(parent: dict, *path: tuple[str, ...]) -> Iterator[dict]:
    """Objects found by following ``path`` (each step: a list under any of the key
    spellings); anything of the wrong shape is skipped here and reported by the parser."""
    if not path:
        yield parent
        return
    names, rest = path[0], path[1:]
    for name in names:
        children = parent.get(name)
        if isinstance(children, list):
            for child in children:
                if isinstance(child, dict):
                    yield from _objects(child, *rest)


def _hex_ids_to_base64(message: dict, keys: tuple[str, ...]) -> None:
    for key in keys:
        value = message.get(key)
        if not isinstance(value, str):
            continue
        if not _HEX.fullmatch(value):
            raise InvalidRequest(
                f"{key} {value[:64]!r} is not hex: OTLP/JSON ids are hex strings, not base64"
            )
        message[key] = base64.b64encode(bytes.fromhex(value)).decode("ascii")

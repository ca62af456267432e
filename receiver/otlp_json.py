"""OTLP/JSON → an OTLP export request of any signal.

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
from collections.abc import Iterator, Sequence
from typing import TypeVar

from google.protobuf import json_format
from google.protobuf.message import Message

from otelhouse.receiver.errors import InvalidRequest

Request = TypeVar("Request", bound=Message)
Path = tuple[tuple[str, ...], ...]
"""Steps from the document root to a list of objects; each step lists a key's spellings and
leads to a list of objects or to one object."""

_HEX = re.compile(r"(?:[0-9a-fA-F]{2})*")


def decode_json(
    payload: bytes, request_type: type[Request], hex_ids: Sequence[tuple[Path, tuple[str, ...]]]
) -> Request:
    """Parse ``payload`` as OTLP/JSON of ``request_type``; ``hex_ids`` pairs a path to the
    objects holding ids with the id keys found there, turned from hex to base64 before
    protobuf parses the document. Raises ``InvalidRequest``."""
    kind = request_type.DESCRIPTOR.name
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise InvalidRequest(f"request body is not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest(f"an OTLP/JSON {kind} must be a JSON object")
    for path, keys in hex_ids:
        for message in _objects(document, *path):
            _hex_ids_to_base64(message, keys)
    try:
        return json_format.ParseDict(document, request_type(), ignore_unknown_fields=True)
    except (json_format.ParseError, ValueError, TypeError, RecursionError) as exc:
        raise InvalidRequest(f"request is not a valid OTLP/JSON {kind}: {exc}") from None


def _objects(parent: dict, *path: tuple[str, ...]) -> Iterator[dict]:
    """Objects found by following ``path`` (each step: a list or one object under any of the
    key spellings); anything of the wrong shape is skipped here and reported by the parser."""
    if not path:
        yield parent
        return
    names, rest = path[0], path[1:]
    for name in names:
        children = parent.get(name)
        if isinstance(children, dict):
            children = [children]
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

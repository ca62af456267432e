"""What differs between OTLP signals (traces, logs, metrics), in one value per signal.

The pipeline, the write-ahead log and both transports are written against ``Signal`` only;
adding a signal means one module building a ``Signal`` (decode, convert, columns, insert) plus
its table's schema, and registering it with the ``Receiver`` and the log's drainer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, Self, TypeVar

from clickhouse_connect.driver.client import Client
from google.protobuf.message import DecodeError, Message

from otelhouse.receiver.errors import InvalidRequest
from otelhouse.receiver.limits import ConvertLimits

NAME_BYTES = 8
"""Longest signal name, in ASCII bytes (its field in write-ahead log records)."""


class Columns(Protocol):
    """Rows of one table in column form: ``len`` counts rows, ``extend`` appends another
    batch's rows. Its class, called without arguments, makes an empty batch; called with one
    list per field of ``Signal.column_fields`` (as keywords), it makes a batch of those rows."""

    def __len__(self) -> int: ...

    def extend(self, other: Self, /) -> None: ...


Request = TypeVar("Request", bound=Message)
C = TypeVar("C", bound=Columns)


@dataclass(frozen=True, slots=True)
class Conversion(Generic[C]):
    """A converted request: its rows, how many items were rejected as malformed, and the
    message for ``partial_success`` (empty when nothing was rejected or cut)."""

    columns: C
    rejected: int
    error_message: str


class StoreColumns(Protocol):
    """Insert a batch of a signal's columns in one call, raising on failure; ``settings``
    are ClickHouse query settings (such as ``insert_deduplication_token``)."""

    def __call__(
        self, client: Client, columns: Any, *, settings: dict[str, Any] | None = None
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Signal(Generic[Request, C]):
    """One OTLP signal.

    ``name`` (such as ``"traces"``) names the signal in write-ahead log records (at most
    ``NAME_BYTES`` ASCII bytes) and in logs; ``item`` is the plural noun of what a request
    carries (``"spans"``), used in metric names, health keys and messages. ``grpc_service``
    is the full name of the collector service whose ``Export`` method takes the requests;
    ``http_path`` is the OTLP/HTTP route. ``count`` says how many items a decoded request
    holds without converting it. ``decode_json`` raises ``InvalidRequest`` for anything
    that is not OTLP/JSON of this signal. ``convert`` never raises for malformed items:
    it rejects them in its ``Conversion``. ``rejected_field`` is the field of the response's
    ``partial_success`` that counts rejected items. ``new_columns`` is the columns class,
    ``column_fields`` its fields in table order, and ``insert`` writes a batch to storage.
    """

    name: str
    item: str
    grpc_service: str
    http_path: str
    request_type: type[Request]
    response_type: type[Message]
    rejected_field: str
    count: Callable[[Request], int]
    decode_json: Callable[[bytes], Request]
    convert: Callable[[Request, ConvertLimits], Conversion[C]]
    new_columns: Callable[..., C]
    column_fields: tuple[str, ...]
    insert: StoreColumns

    def __post_init__(self) -> None:
        if not self.name.isascii() or not 0 < len(self.name) <= NAME_BYTES:
            raise ValueError(f"signal name {self.name!r} must be 1-{NAME_BYTES} ASCII characters")

    @property
    def item_key(self) -> str:
        """``item`` as it appears in metric names and health keys (``log_records``)."""
        return self.item.replace(" ", "_")

    @property
    def grpc_method(self) -> str:
        """The full path of the signal's gRPC ``Export`` method."""
        return f"/{self.grpc_service}/Export"

    def decode_protobuf(self, payload: bytes) -> Request:
        """The request in ``payload``, or ``InvalidRequest``."""
        try:
            return self.request_type.FromString(payload)
        except DecodeError as exc:
            raise InvalidRequest(
                f"request is not a valid OTLP {self.name} export: {exc}"
            ) from None

    def response(self, conversion: Conversion[C]) -> Message:
        """The answer to an accepted request; ``partial_success`` is set only when the
        conversion rejected or cut something."""
        response = self.response_type()
        if conversion.error_message:
            partial = response.partial_success
            setattr(partial, self.rejected_field, conversion.rejected)
            partial.error_message = conversion.error_message
        return response


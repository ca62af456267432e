"""Span filters shared by every endpoint: time range, service, operation, limit.

A filter is a SQL condition on ``otel_traces`` plus the values it binds (``{name:Type}``):
user input only ever travels as a bound parameter, never inside the SQL text. Endpoints
start from :func:`span_filter` and add their own conditions with :meth:`Where.and_`, so
every endpoint filters time, service and operation the same way — and the conditions use
the primary key (``ServiceName, SpanName, toDateTime(Timestamp)``) and the daily partitions.

The FastAPI parameter declarations (:data:`ServiceParam`, :data:`OperationParam`,
:func:`limit_param`), the 422 for cross-parameter checks (:func:`invalid`) and the response
base echoing the range (:class:`RangeResponse`) live here too, so names, descriptions, caps
and error shapes are the same wherever they appear.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Annotated, Any, Self

from clickhouse_connect.driver.client import Client
from fastapi import Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from otelhouse.query.params import TimeRange

TIME_RANGE = (
    "Timestamp >= fromUnixTimestamp64Nano({start_ns:Int64}) "
    "AND Timestamp < fromUnixTimestamp64Nano({end_ns:Int64})"
)
SERVICE = "ServiceName = {service:String}"
OPERATION = "SpanName = {operation:String}"


@dataclass(frozen=True, slots=True)
class Where:
    """A conjunction of SQL conditions and the values they bind; immutable, so a base
    filter can be extended differently by each query without surprises."""

    conditions: tuple[str, ...] = ()
    parameters: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def and_(self, condition: str, **parameters: Any) -> Where:
        """This filter with one more condition; a parameter name may be bound only once."""
        clash = self.parameters.keys() & parameters.keys()
        if clash:
            raise ValueError(f"parameters bound twice: {sorted(clash)}")
        return Where(
            (*self.conditions, condition), MappingProxyType({**self.parameters, **parameters})
        )

    @property
    def sql(self) -> str:
        return " AND ".join(f"({c})" for c in self.conditions) or "1"

    def bind(self, **extra: Any) -> dict[str, Any]:
        """The bound values, plus query-specific ones (limits, steps) that are not conditions."""
        clash = self.parameters.keys() & extra.keys()
        if clash:
            raise ValueError(f"parameters bound twice: {sorted(clash)}")
        return {**self.parameters, **extra}


def span_filter(
    time_range: TimeRange, *, service: str | None = None, operation: str | None = None
) -> Where:
    """Spans starting inside ``time_range``, of ``service`` and named ``operation`` when given.

    ``None`` means "any"; an empty string is matched literally (spans without a name)."""
    where = Where().and_(TIME_RANGE, **time_range.bind())
    if service is not None:
        where = where.and_(SERVICE, service=service)
    if operation is not None:
        where = where.and_(OPERATION, operation=operation)
    return where


BoundQuery = tuple[str, Mapping[str, Any]]
"""A query as the builders return it: SQL text and the values it binds."""


def named_rows(client: Client, query: BoundQuery) -> Iterator[dict[str, Any]]:
    """Run a ``(sql, parameters)`` pair and yield each row as a dict keyed by column alias."""
    sql, parameters = query
    return client.query(sql, parameters=dict(parameters)).named_results()


ServiceParam = Annotated[
    str | None, Query(description="Only spans of this service (`service.name`, exact match).")
]
OperationParam = Annotated[
    str | None, Query(description="Only spans with this name (operation, exact match).")
]


MAX_ATTRIBUTES = 20


def attr_param(what: str, together: str) -> Any:
    """The repeatable ``attr=key:value`` query parameter: ``what`` attribute it matches,
    ``together`` how repeated pairs combine (see :func:`parse_attributes`)."""
    return Annotated[
        list[str],
        Query(
            description=(
                f"key:value {what}, split at the first colon; repeatable, and {together}. "
                f"At most {MAX_ATTRIBUTES}."
            )
        ),
    ]


def parse_attributes(pairs: list[str], parameter: str = "attr") -> tuple[tuple[str, str], ...]:
    """``key:value`` pairs (split at the first colon; the value may be empty); 422 naming
    ``parameter`` when malformed or more than :data:`MAX_ATTRIBUTES`."""
    if len(pairs) > MAX_ATTRIBUTES:
        raise invalid(parameter, f"at most {MAX_ATTRIBUTES} {parameter} filters")
    parsed = []
    for pair in pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise invalid(
                parameter, f"expected key:value, e.g. {parameter}=http.route:/users/{{id}}"
            )
        parsed.append((key, value))
    return tuple(parsed)


def map_entry(column: str, i: int, key: str, value: str) -> tuple[str, dict[str, str]]:
    """SQL for ``column[key] = value`` with the key present (an empty value does not match a
    missing key), binding ``k{i}`` and ``v{i}``. ``column`` is a code constant."""
    k, v = f"{{k{i}:String}}", f"{{v{i}:String}}"
    return f"mapContains({column}, {k}) AND {column}[{k}] = {v}", {f"k{i}": key, f"v{i}": value}


def limit_param(maximum: int, what: str) -> Any:
    """A ``limit`` query parameter: 1..``maximum``; larger or malformed values are a 422
    naming ``limit`` rather than a silent truncation."""
    return Annotated[
        int,
        Query(ge=1, le=maximum, description=f"At most this many {what} (1-{maximum})."),
    ]


def invalid(parameter: str, message: str) -> RequestValidationError:
    """A 422 in FastAPI's own shape, naming the query parameter at fault; for checks that
    need more than one parameter (a step against the range) and so cannot live in ``Query``."""
    return RequestValidationError(
        [{"loc": ("query", parameter), "msg": message, "type": "value_error"}]
    )


class RangeResponse(BaseModel):
    """Every aggregate response echoes the time range it covers, since the default range is
    relative to the moment of the request."""

    start: datetime = Field(description="Range start (inclusive), UTC.")
    end: datetime = Field(description="Range end (exclusive), UTC.")

    @classmethod
    def covering(cls, time_range: TimeRange, **fields: Any) -> Self:
        return cls(start=time_range.start, end=time_range.end, **fields)

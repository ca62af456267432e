"""Jaeger query-service parameters → otelhouse's search, validated (pure functions).

Jaeger clients send times as epoch microseconds (``start``, ``end``) or a ``lookback``
(``1h``, ``2d``), durations in Go syntax (``100ms``, ``1.5s``, ``1m30s``), and tags as a JSON
object (``tags={"http.status_code":"500"}``) or repeated ``tag=key:value``. Each malformed
value raises ``BadParameter`` naming it; the router answers 400 in Jaeger's error envelope,
as Jaeger does.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

from fastapi import HTTPException

from otelhouse.query.jaeger_model import OTEL_KINDS
from otelhouse.query.params import DEFAULT_SINCE, MAX_RANGE, TimeRange, parse_since
from otelhouse.query.filters import MAX_ATTRIBUTES
from otelhouse.query.trace_search import SpanMatch

DEFAULT_LIMIT = 20
MAX_LIMIT = 1500
"""Jaeger UI offers up to 1500 traces per search; larger limits are lowered to it."""

_GO_DURATION = re.compile(r"(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|µs|μs|ms|s|m|h))+")
_GO_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_NS_PER_UNIT = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_MAX_NS = 2**63 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class BadParameter(ValueError):
    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(f"{parameter}: {message}")
        self.parameter = parameter


def parse_duration(value: str, parameter: str) -> int:
    """Go ``time.ParseDuration`` syntax (non-negative) → nanoseconds."""
    text = value.strip()
    if text == "0":
        return 0
    if len(text) > 64 or not _GO_DURATION.fullmatch(text):
        raise BadParameter(parameter, "expected a duration such as 100ms, 1.5s or 1m30s")
    total = sum(
        round(float(number) * _NS_PER_UNIT[unit]) for number, unit in _GO_PART.findall(text)
    )
    if total > _MAX_NS:
        raise BadParameter(parameter, "duration too large")
    return total


def _parse_micros(value: str, parameter: str) -> datetime:
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,17}", text):
        raise BadParameter(parameter, "expected epoch microseconds")
    try:
        return _EPOCH + timedelta(microseconds=int(text))
    except OverflowError:
        raise BadParameter(parameter, "epoch microseconds out of range") from None


def parse_time_range(start: str | None, end: str | None, lookback: str | None) -> TimeRange:
    """``start``/``end`` in µs win; otherwise ``lookback`` back from ``end`` (or now).
    Jaeger UI sends ``lookback=custom`` with explicit times; that value is ignored."""
    end_at = _parse_micros(end, "end") if end else datetime.now(UTC)
    if start:
        start_at = _parse_micros(start, "start")
    else:
        window = lookback if lookback and lookback != "custom" else DEFAULT_SINCE
        try:
            start_at = end_at - parse_since(window)
        except HTTPException:
            raise BadParameter("lookback", "expected e.g. 15m, 1h, 2d") from None
    if start_at >= end_at:
        raise BadParameter("start", "start must be before end")
    if end_at - start_at > MAX_RANGE:
        raise BadParameter("start", f"time range is capped at {MAX_RANGE.days} days")
    return TimeRange(start_at, end_at)


DEFAULT_DEPENDENCIES_LOOKBACK = timedelta(hours=24)
"""Jaeger's own default for ``/api/dependencies`` without ``lookback``."""


def _parse_millis(value: str, parameter: str) -> int:
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,15}", text):
        raise BadParameter(parameter, "expected milliseconds (a non-negative integer)")
    return int(text)


def parse_dependencies_range(end_ts: str | None, lookback: str | None) -> TimeRange:
    """Jaeger's ``/api/dependencies`` range: ``endTs`` epoch ms (default now) and
    ``lookback`` ms before it (default 24 h), capped like every other range."""
    end_at = datetime.now(UTC)
    if end_ts:
        try:
            end_at = _EPOCH + timedelta(milliseconds=_parse_millis(end_ts, "endTs"))
        except OverflowError:
            raise BadParameter("endTs", "epoch milliseconds out of range") from None
    window = (
        timedelta(milliseconds=_parse_millis(lookback, "lookback"))
        if lookback
        else DEFAULT_DEPENDENCIES_LOOKBACK
    )
    if window <= timedelta(0):
        raise BadParameter("lookback", "must be more than 0 ms")
    if window > MAX_RANGE:
        raise BadParameter("lookback", f"time range is capped at {MAX_RANGE.days} days")
    try:
        return TimeRange(end_at - window, end_at)
    except OverflowError:
        raise BadParameter("endTs", "epoch milliseconds out of range") from None


def parse_limit(value: str | None) -> int:
    """Absent or 0 → ``DEFAULT_LIMIT``; above ``MAX_LIMIT`` → ``MAX_LIMIT``."""
    if value is None or value.strip() in ("", "0"):
        return DEFAULT_LIMIT
    text = value.strip()
    if not re.fullmatch(r"[0-9]{1,9}", text):
        raise BadParameter("limit", "expected a positive integer")
    return min(int(text), MAX_LIMIT)


def parse_tags(tags_json: str | None, tag_pairs: list[str]) -> dict[str, str]:
    """``tags`` (a JSON object of scalars) merged with ``tag=key:value`` pairs."""
    result: dict[str, str] = {}
    if tags_json:
        try:
            decoded = json.loads(tags_json)
        except ValueError:
            example = '{"http.method":"GET"}'
            raise BadParameter("tags", f"expected a JSON object, e.g. {example}") from None
        if not isinstance(decoded, dict):
            raise BadParameter("tags", "expected a JSON object of key: value")
        for key, value in decoded.items():
            if isinstance(value, (dict, list)) or value is None:
                raise BadParameter("tags", f"value of {key!r} must be a string, number or bool")
            result[key] = json.dumps(value) if isinstance(value, bool) else str(value)
    for pair in tag_pairs:
        key, sep, value = pair.partition(":")
        if not sep or not key:
            raise BadParameter("tag", "expected key:value")
        result[key] = value
    if len(result) > MAX_ATTRIBUTES:
        raise BadParameter("tags", f"at most {MAX_ATTRIBUTES} tags")
    return result


def span_match(
    service: str | None,
    operation: str | None,
    tags: dict[str, str],
    min_duration: str | None,
    max_duration: str | None,
) -> SpanMatch:
    """The span a Jaeger search asks for. The tags Jaeger derives rather than stores match
    what ``jaeger_model`` renders: ``error`` → the error rule, ``span.kind`` → the kind."""
    remaining = dict(tags)
    error = remaining.pop("error", None)
    if error is not None and error not in ("true", "false"):
        raise BadParameter("tags", "error must be true or false")
    kind = remaining.pop("span.kind", None)
    if kind is not None and kind not in OTEL_KINDS:
        raise BadParameter("tags", f"span.kind must be one of {', '.join(OTEL_KINDS)}")
    shortest = parse_duration(min_duration, "minDuration") if min_duration else None
    longest = parse_duration(max_duration, "maxDuration") if max_duration else None
    if shortest and longest and longest < shortest:
        raise BadParameter("maxDuration", "must not be shorter than minDuration")
    return SpanMatch(
        service=service or None,
        operation=operation or None,
        kind=OTEL_KINDS[kind] if kind else None,
        error=None if error is None else error == "true",
        attributes=tuple(remaining.items()),
        resource_attributes=True,
        min_duration_ns=shortest,
        max_duration_ns=longest,
    )

"""Common query parameters, validated once: the time range.

A range is ``start``/``end`` (RFC 3339 or epoch milliseconds) or ``since`` (``15m``, ``1h``,
``24h``, ``7d``; default 1h). Ranges longer than ``MAX_RANGE`` are refused with 422 so one
request cannot scan the whole retention.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import Depends, HTTPException, Query, status

MAX_RANGE = timedelta(days=31)
DEFAULT_SINCE = "1h"
_SINCE = re.compile(r"^(\d{1,6})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def start_ns(self) -> int:
        return epoch_ns(self.start)

    @property
    def end_ns(self) -> int:
        return epoch_ns(self.end)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def bind(self) -> dict[str, int]:
        """Bound values for ``Timestamp BETWEEN fromUnixTimestamp64Nano({start_ns:Int64})``..."""
        return {"start_ns": self.start_ns, "end_ns": self.end_ns}


def epoch_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (no float on the way)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _unprocessable(parameter: str, message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"loc": ["query", parameter], "msg": message, "type": "value_error"}],
    )


def parse_instant(value: str, parameter: str) -> datetime:
    """RFC 3339 (``2026-11-24T10:00:00Z``) or integer epoch milliseconds, as UTC."""
    text = value.strip()
    if re.fullmatch(r"-?\d{1,15}", text):
        try:
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise _unprocessable(parameter, "epoch milliseconds out of range") from None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise _unprocessable(parameter, "expected RFC 3339 time or epoch milliseconds") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def parse_since(value: str) -> timedelta:
    match = _SINCE.match(value.strip())
    if not match:
        raise _unprocessable("since", "expected a number and a unit s|m|h|d, e.g. 15m, 1h, 7d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def time_range(
    start: Annotated[
        str | None, Query(description="Range start: RFC 3339 or epoch milliseconds.")
    ] = None,
    end: Annotated[
        str | None, Query(description="Range end: RFC 3339 or epoch milliseconds; default now.")
    ] = None,
    since: Annotated[
        str | None,
        Query(description="Range ending at `end` (or now): 15m, 1h, 24h, 7d. Default 1h."),
    ] = None,
) -> TimeRange:
    end_at = parse_instant(end, "end") if end else datetime.now(UTC)
    if start:
        if since:
            raise _unprocessable("since", "give either start or since, not both")
        start_at = parse_instant(start, "start")
    else:
        window = parse_since(since or DEFAULT_SINCE)
        if window > MAX_RANGE:
            raise _unprocessable("since", f"at most {MAX_RANGE.days}d")
        start_at = end_at - window
    if start_at >= end_at:
        raise _unprocessable("start", "start must be before end")
    if end_at - start_at > MAX_RANGE:
        raise _unprocessable("start", f"time range is capped at {MAX_RANGE.days} days")
    return TimeRange(start_at, end_at)


TimeRangeDep = Annotated[TimeRange, Depends(time_range)]

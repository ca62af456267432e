"""Conversions from stored units to the API's: nanoseconds to milliseconds and to datetimes.

ClickHouse returns ``nan`` for aggregates over no rows (``avg``, quantiles); JSON has no NaN,
so such values become ``None`` (``null``) here rather than at every call site.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

NS_PER_MS = 1_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_from_ns(ns: float) -> float:
    return ns / NS_PER_MS


def finite_or_none(value: float | None) -> float | None:
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return float(value)


def datetime_from_ns(ns: int) -> datetime:
    """UTC datetime from epoch nanoseconds (microsecond precision, as Python allows)."""
    return _EPOCH + timedelta(microseconds=ns // 1000)


def datetime_from_s(seconds: int) -> datetime:
    return _EPOCH + timedelta(seconds=seconds)

"""Time series steps: the ``step`` parameter, and the buckets it divides a range into.

Buckets are aligned to multiples of ``step`` since the Unix epoch (integer arithmetic on the
timestamp, so no time zone can shift them) and every bucket touching the range is returned,
empty ones too, so a chart can plot the series as is.
Without ``step``, the smallest of :data:`STEPS` giving at most :data:`TARGET_BUCKETS`
buckets is used; an explicit step may give at most :data:`MAX_BUCKETS` buckets.
"""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import Depends, Query

from otelhouse.query.filters import invalid
from otelhouse.query.params import TimeRange, TimeRangeDep

STEPS: tuple[int, ...] = (
    1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 10800, 21600, 43200, 86400
)
TARGET_BUCKETS = 60
MAX_BUCKETS = 1500
_STEP = re.compile(r"^(\d{1,7})([smhd]?)$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NS_PER_S = 1_000_000_000

BUCKET_SQL = "intDiv(toUnixTimestamp(Timestamp), {step_s:UInt32}) * {step_s:UInt32}"
"""A row's bucket: the epoch second its step-aligned bucket starts at; binds ``step_s``."""


def bucket_starts(time_range: TimeRange, step_s: int) -> range:
    """Epoch seconds of every step-aligned bucket that overlaps ``[start, end)``."""
    first = time_range.start_ns // _NS_PER_S // step_s * step_s
    last = (time_range.end_ns - 1) // _NS_PER_S // step_s * step_s
    return range(first, last + 1, step_s)


def resolve_step(
    time_range: TimeRangeDep,
    step: Annotated[
        str | None,
        Query(
            description=(
                f"Bucket width: seconds, or a number with unit s|m|h|d (`30s`, `5m`). Default: "
                f"at most {TARGET_BUCKETS} buckets over the range; at most {MAX_BUCKETS} allowed."
            )
        ),
    ] = None,
) -> int:
    """The step in seconds, checked against the range (422 naming ``step``)."""
    if step is None:
        return next(
            (s for s in STEPS if len(bucket_starts(time_range, s)) <= TARGET_BUCKETS), STEPS[-1]
        )
    match = _STEP.match(step.strip())
    if not match:
        raise invalid("step", "expected seconds or a number with unit s|m|h|d, e.g. 30s, 5m")
    step_s = int(match[1]) * _UNIT_SECONDS[match[2]]
    if step_s < 1:
        raise invalid("step", "step must be at least 1 second")
    if len(bucket_starts(time_range, step_s)) > MAX_BUCKETS:
        raise invalid("step", f"step too small for the range: at most {MAX_BUCKETS} buckets")
    return step_s


StepDep = Annotated[int, Depends(resolve_step)]

"""The periodic ingest log line says what reached storage, with the write-ahead log or not."""

from __future__ import annotations

import pytest

from otelhouse.receiver.stats import IngestStats, describe_interval

BEFORE = IngestStats(requests=10, received=1000, stored=900, rejected=2, refused=50, failed=0)
AFTER = IngestStats(requests=14, received=1400, stored=1250, rejected=3, refused=80, failed=20)


@pytest.mark.parametrize(
    ("drained", "expected"),
    [
        (
            None,
            "spans received=400 stored=350 rejected=1, requests=4 refused=30 failed=20 "
            "in the last 10s",
        ),
        (
            120,
            "spans received=400 logged=350 stored=120 rejected=1, requests=4 refused=30 "
            "failed=20 in the last 10s",
        ),
    ],
    ids=["without-log", "with-log"],
)
def test_interval_line(drained: int | None, expected: str) -> None:
    assert describe_interval(BEFORE, AFTER, 10.0, drained) == expected

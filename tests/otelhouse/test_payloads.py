"""``realistic_logs_request``: the benchmark's log traffic is reproducible by seed, stores
without rejects, and has the shape it promises (severity mix, body lengths, ids, attributes)."""

from __future__ import annotations

from collections import Counter

from otelhouse.demo.payloads import BODY_LENGTH, SEVERITIES, realistic_logs_request
from otelhouse.receiver.logs import convert_logs_request, log_record_count

NOW_NS = 1_796_300_000_000_000_000
RECORDS = 2000


def test_same_seed_same_request_other_seed_other_request() -> None:
    first = realistic_logs_request(200, seed=7, service="svc-1", now_ns=NOW_NS)
    again = realistic_logs_request(200, seed=7, service="svc-1", now_ns=NOW_NS)
    other = realistic_logs_request(200, seed=8, service="svc-1", now_ns=NOW_NS)
    assert first.SerializeToString() == again.SerializeToString()
    assert first.SerializeToString() != other.SerializeToString()


def test_converts_without_rejects_or_cuts_with_the_intended_mix() -> None:
    request = realistic_logs_request(RECORDS, seed=3, service="svc-3", now_ns=NOW_NS)
    assert log_record_count(request) == RECORDS
    converted = convert_logs_request(request)
    assert (converted.rejected, converted.error_message) == (0, "")
    logs = converted.logs
    assert len(logs) == RECORDS
    assert set(logs.ServiceName) == {"svc-3"}

    levels = Counter(zip(logs.SeverityNumber, logs.SeverityText))
    for number, text, share in SEVERITIES:
        assert abs(levels[(number, text)] / RECORDS - share) < 0.03, (text, levels)
    assert sum(levels.values()) == RECORDS

    assert all(BODY_LENGTH[0] <= len(body) <= BODY_LENGTH[1] for body in logs.Body)
    assert all(any(c.isdigit() for c in body) for body in logs.Body)
    with_ids = sum(1 for tid, sid in zip(logs.TraceId, logs.SpanId) if tid and sid)
    assert 0.4 < with_ids / RECORDS < 0.6
    assert all(NOW_NS - 60 * 10**9 <= t < NOW_NS for t in logs.Timestamp)

    attributes = logs.LogAttributes
    assert all({"code.filepath", "code.lineno"} <= a.keys() for a in attributes)
    assert 0.4 < sum("http.route" in a for a in attributes) / RECORDS < 0.6
    errors = [a for a, text in zip(attributes, logs.SeverityText) if text == "ERROR"]
    traces = [a["exception.stacktrace"] for a in attributes if "exception.stacktrace" in a]
    assert 0 < len(traces) < len(errors)
    assert len(traces) == sum("exception.stacktrace" in a for a in errors)
    assert all(trace.startswith("Traceback") for trace in traces)

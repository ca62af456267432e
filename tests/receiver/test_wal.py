"""The write-ahead log on its own, on temporary directories: what is appended comes back once,
in order, after restarts, torn writes, segment turnover and a crash mid-insert."""

from __future__ import annotations

import marshal
import os
import struct
import threading
import time
import dataclasses
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from otelhouse.receiver.convert import convert_request
from otelhouse.receiver.wal import (
    DrainBatch,
    Drainer,
    WalConfig,
    WalError,
    WalFull,
    WalLocked,
    WalService,
    WriteAheadLog,
)
from otelhouse.receiver.signal import Signal
from otelhouse.receiver.traces import TRACES
from otelhouse.receiver.wal.records import MAGIC, MAGIC_V1, SEGMENT_HEADER, encode_record
from otelhouse.storage.traces import SpanColumns
from otelhouse.demo.payloads import realistic_request

SEGMENT_BYTES = 256 * 1024


def spans_of(count: int, seed: int) -> SpanColumns:
    return convert_request(realistic_request(count, seed=seed, service=f"svc-{seed}")).spans


def open_log(
    directory: Path, signals: Iterable[Signal[Any, Any]] = (TRACES,), **changes: int
) -> WriteAheadLog:
    options = {"max_bytes": 64 * 1024**2, "segment_bytes": SEGMENT_BYTES, "cache_rows": 10_000}
    return WriteAheadLog(directory, signals=signals, **{**options, **changes})


def drain(wal: WriteAheadLog, max_rows: int = 10_000) -> list[DrainBatch]:
    """Take, 'store' and commit batches until the log is empty, as the drainer does."""
    batches = []
    while (batch := wal.next_batch(max_rows, timeout_s=0)) is not None:
        wal.begin(batch)
        batches.append(batch)
        wal.commit(batch)
    return batches


def span_ids(batches: list[DrainBatch]) -> list[str]:
    return [span_id for batch in batches for span_id in batch.columns.SpanId]


def segment_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.wal"))


def test_appended_spans_come_back_in_order_with_every_column(tmp_path: Path) -> None:
    sent = [spans_of(50, seed) for seed in range(5)]
    with open_log(tmp_path) as wal:
        for spans in sent:
            wal.append(TRACES, spans)
        batches = drain(wal, max_rows=120)
    expected = [row for spans in sent for row in spans.rows()]
    assert [row for batch in batches for row in batch.columns.rows()] == expected
    assert [batch.rows for batch in batches] == [100, 100, 50]
    assert len({batch.token for batch in batches}) == len(batches)


@pytest.mark.parametrize("cache_rows", [0, 10_000], ids=["from-disk", "from-memory"])
def test_restart_replays_everything_past_the_checkpoint(tmp_path: Path, cache_rows: int) -> None:
    sent = [spans_of(40, seed) for seed in range(6)]
    with open_log(tmp_path, cache_rows=cache_rows) as wal:
        for spans in sent[:3]:
            wal.append(TRACES, spans)
        stored = drain(wal)
        for spans in sent[3:]:
            wal.append(TRACES, spans)
    with open_log(tmp_path) as wal:
        assert wal.stats().replayed_rows == 120
        replayed = drain(wal)
        assert wal.stats().pending_rows == 0
    assert span_ids(stored) == [i for spans in sent[:3] for i in spans.SpanId]
    assert [row for b in replayed for row in b.columns.rows()] == [
        row for spans in sent[3:] for row in spans.rows()
    ]


def _cut_half_header(data: bytes, record_start: int) -> bytes:
    return data[: record_start + 7]


def _cut_payload(data: bytes, record_start: int) -> bytes:
    return data[:-100]


def _flip_payload_byte(data: bytes, record_start: int) -> bytes:
    position = len(data) - 10
    return data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]


def _zero_tail(data: bytes, record_start: int) -> bytes:
    """A file system that extended the file but never wrote the data leaves zeros."""
    return data[:record_start] + bytes(len(data) - record_start)


@pytest.mark.parametrize(
    "tear",
    [_cut_half_header, _cut_payload, _flip_payload_byte, _zero_tail],
    ids=lambda f: f.__name__.strip("_"),
)
def test_torn_last_record_is_truncated_and_the_rest_replayed(
    tmp_path: Path, tear: Callable[[bytes, int], bytes]
) -> None:
    sent = [spans_of(30, seed) for seed in range(3)]
    with open_log(tmp_path) as wal:
        for spans in sent:
            wal.append(TRACES, spans)
    (segment,) = segment_files(tmp_path)
    intact = segment.read_bytes()
    last_record = sum(map(len, encode_record(TRACES, sent[2], 0)))
    record_start = len(intact) - last_record
    segment.write_bytes(tear(intact, record_start))

    with open_log(tmp_path) as wal:
        assert segment.stat().st_size == record_start
        assert wal.stats().pending_rows == 60
        wal.append(TRACES, sent[2])
        assert span_ids(drain(wal)) == [i for spans in sent for i in spans.SpanId]


def test_a_segment_whose_header_was_never_written_is_removed(tmp_path: Path) -> None:
    with open_log(tmp_path) as wal:
        wal.append(TRACES, spans_of(10, 1))
    (tmp_path / f"{99:016d}.wal").write_bytes(MAGIC[:3])
    with open_log(tmp_path) as wal:
        assert len(span_ids(drain(wal))) == 10
    assert not (tmp_path / f"{99:016d}.wal").exists()


def test_segments_rotate_at_their_size_and_are_deleted_once_drained(tmp_path: Path) -> None:
    sent = [spans_of(100, seed) for seed in range(12)]
    segment_bytes = SEGMENT_HEADER.size + sum(map(len, encode_record(TRACES, sent[0], 0))) * 5 // 2
    with open_log(tmp_path, segment_bytes=segment_bytes) as wal:
        for spans in sent:
            wal.append(TRACES, spans)
        files = segment_files(tmp_path)
        assert len(files) == 6
        assert all(path.stat().st_size <= segment_bytes for path in files)
        before = wal.stats()
        batches = drain(wal, max_rows=1_000_000)
        after = wal.stats()
        assert {batch.segment for batch in batches} == {int(path.stem) for path in files}
    assert segment_files(tmp_path) == files[-1:]
    assert after.log_bytes == files[-1].stat().st_size < before.log_bytes
    assert after.segments == 1 and after.pending_bytes == 0
    assert span_ids(batches) == [i for spans in sent for i in spans.SpanId]


def test_full_budget_refuses_appends_until_drained(tmp_path: Path) -> None:
    spans = spans_of(100, 7)
    record = sum(map(len, encode_record(TRACES, spans, 0)))
    budget = SEGMENT_HEADER.size + 3 * record + record // 2
    with open_log(tmp_path, max_bytes=budget, segment_bytes=budget) as wal:
        for _ in range(3):
            wal.append(TRACES, spans)
        with pytest.raises(WalFull, match="retry once storage catches up"):
            wal.append(TRACES, spans)
        stats = wal.stats()
        assert (stats.refused_appends, stats.pending_rows) == (1, 300)
        assert stats.log_bytes <= budget
        drain(wal)
    with open_log(tmp_path, max_bytes=budget, segment_bytes=budget) as wal:
        wal.append(TRACES, spans)
        assert len(span_ids(drain(wal))) == 100


def test_crash_between_insert_and_checkpoint_replays_the_same_range(tmp_path: Path) -> None:
    """The first batch after the crash must carry the in-flight batch's token even though
    more records arrived since, or a token-deduplicating store would keep both copies."""
    store: dict[str, list[str]] = {}
    with open_log(tmp_path) as wal:
        wal.append(TRACES, spans_of(20, 1))
        wal.append(TRACES, spans_of(20, 2))
        batch = wal.next_batch(10_000, timeout_s=0)
        assert batch is not None
        wal.begin(batch)
        store.setdefault(batch.token, list(batch.columns.SpanId))
        wal.append(TRACES, spans_of(20, 3))
    with open_log(tmp_path) as wal:
        replayed = drain(wal)
    assert (replayed[0].token, replayed[0].rows) == (batch.token, 40)
    for replay in replayed:
        store.setdefault(replay.token, list(replay.columns.SpanId))
    stored = [span_id for ids in store.values() for span_id in ids]
    expected = [i for seed in (1, 2, 3) for i in spans_of(20, seed).SpanId]
    assert stored == expected


def test_tokens_differ_between_logs(tmp_path: Path) -> None:
    tokens = []
    for name in ("a", "b"):
        with open_log(tmp_path / name) as wal:
            wal.append(TRACES, spans_of(5, 1))
            tokens.append(drain(wal)[0].token)
    assert tokens[0] != tokens[1]


def test_segment_numbers_are_never_reused(tmp_path: Path) -> None:
    seen: set[int] = set()
    for seed in range(4):
        with open_log(tmp_path) as wal:
            wal.append(TRACES, spans_of(5, seed))
            batches = drain(wal)
        segments = {batch.segment for batch in batches}
        assert not segments & seen
        seen |= segments


def test_a_second_process_cannot_open_the_same_log(tmp_path: Path) -> None:
    with open_log(tmp_path):
        with pytest.raises(WalLocked, match="another otelhouse process"):
            open_log(tmp_path)
    open_log(tmp_path).close()


def test_segment_from_a_newer_marshal_format_is_refused(tmp_path: Path) -> None:
    with open_log(tmp_path) as wal:
        wal.append(TRACES, spans_of(5, 1))
    (segment,) = segment_files(tmp_path)
    data = segment.read_bytes()
    newer = SEGMENT_HEADER.pack(MAGIC, marshal.version + 1)
    segment.write_bytes(newer + data[SEGMENT_HEADER.size :])
    with pytest.raises(WalError, match="drain the log with the Python version that wrote it"):
        open_log(tmp_path)


def test_stats_report_pending_rows_bytes_and_lag(tmp_path: Path) -> None:
    with open_log(tmp_path) as wal:
        wal.append(TRACES, spans_of(25, 1))
        time.sleep(0.05)
        stats = wal.stats()
        assert (stats.pending_rows, stats.appended_rows) == (25, 25)
        assert stats.pending_bytes == stats.log_bytes - SEGMENT_HEADER.size > 0
        assert stats.drain_lag_s >= 0.05
        drain(wal)
        stats = wal.stats()
        assert (stats.pending_rows, stats.pending_bytes, stats.drain_lag_s) == (0, 0, 0.0)
        assert stats.drained_rows == 25


def test_drainer_retries_the_same_batch_until_storage_accepts_it(tmp_path: Path) -> None:
    calls: list[str] = []
    stored: dict[str, int] = {}
    lock = threading.Lock()

    def flaky_insert(spans: SpanColumns, token: str) -> None:
        with lock:
            calls.append(token)
            if len(calls) <= 3:
                raise ConnectionError("storage down")
            stored[token] = stored.get(token, 0) + len(spans)

    with open_log(tmp_path) as wal:
        drainer = Drainer(wal, {TRACES: flaky_insert}, max_rows=10_000, min_backoff_s=0.01)
        drainer.start()
        wal.append(TRACES, spans_of(30, 1))
        assert drainer.stop(timeout_s=10)
        stats = drainer.stats()
    assert calls[:4] == [calls[0]] * 4
    assert sum(stored.values()) == 30
    assert (stats.insert_failures, stats.inserts) == (3, len(stored))


def test_health_says_whether_the_drainer_is_storing_the_backlog(tmp_path: Path) -> None:
    storage_up = threading.Event()

    def insert(spans: SpanColumns, token: str) -> None:
        if not storage_up.is_set():
            raise ConnectionError("storage down")

    config = WalConfig(tmp_path, max_bytes=1 << 24, segment_bytes=1 << 22, cache_rows=1000)
    service = WalService.open(config, {TRACES: insert}, max_backoff_s=0.05)
    try:
        service.append(TRACES, spans_of(12, 1))
        deadline = time.monotonic() + 10
        while service.health().healthy and time.monotonic() < deadline:
            time.sleep(0.01)
        down = service.health()
        assert not down.healthy
        assert down.state["drainer"] == "retrying: storage down"
        assert down.state["pending_records"] == 12
        storage_up.set()
        while service.wal.stats().pending_rows and time.monotonic() < deadline:
            time.sleep(0.01)
        up = service.health()
        assert up.healthy
        assert (up.state["drainer"], up.state["pending_records"]) == ("storing", 0)
    finally:
        service.close(drain_timeout_s=1)


def test_stop_against_failing_storage_gives_up_at_the_deadline(tmp_path: Path) -> None:
    attempts: list[float] = []

    def failing_insert(spans: SpanColumns, token: str) -> None:
        attempts.append(time.monotonic())
        raise ConnectionError("storage down")

    with open_log(tmp_path) as wal:
        drainer = Drainer(wal, {TRACES: failing_insert}, max_rows=10_000, min_backoff_s=0.1)
        drainer.start()
        wal.append(TRACES, spans_of(10, 1))
        wait_for_attempt = time.monotonic() + 5
        while not attempts and time.monotonic() < wait_for_attempt:
            time.sleep(0.01)
        started = time.monotonic()
        assert not drainer.stop(timeout_s=1.0)
        elapsed = time.monotonic() - started
        assert wal.stats().pending_rows == 10
    assert 1.0 <= elapsed < 2.5
    assert 3 <= len(attempts) <= 8, "retries must keep backing off during shutdown"


def test_record_layout_is_length_crc_rows_time_signal_payload(tmp_path: Path) -> None:
    spans = spans_of(3, 1)
    header, payload = encode_record(TRACES, spans, 123)
    length, _, rows, appended_ns, signal = struct.unpack("<IIIQ8s", header)
    assert (length, rows, appended_ns, signal) == (len(payload), 3, 123, b"traces\0\0")
    assert marshal.loads(payload)["SpanId"] == spans.SpanId
    with open_log(tmp_path) as wal:
        wal.append(TRACES, spans)
    (segment,) = segment_files(tmp_path)
    assert os.path.getsize(segment) == SEGMENT_HEADER.size + len(header) + len(payload)


def v1_segment(sent: list[SpanColumns]) -> bytes:
    """A segment as the log wrote it before records named their signal (format 1)."""
    data = SEGMENT_HEADER.pack(MAGIC_V1, marshal.version)
    for appended_ns, spans in enumerate(sent, start=1):
        payload = marshal.dumps({name: getattr(spans, name) for name in TRACES.column_fields})
        crc = zlib.crc32(payload, zlib.crc32(struct.pack("<IQ", len(spans), appended_ns)))
        data += struct.pack("<IIIQ", len(payload), crc, len(spans), appended_ns) + payload
    return data


def test_segments_of_the_previous_format_are_replayed_as_traces(tmp_path: Path) -> None:
    old = [spans_of(20, seed) for seed in range(3)]
    (tmp_path / f"{1:016d}.wal").write_bytes(v1_segment(old))
    new = spans_of(10, 9)
    with open_log(tmp_path) as wal:
        assert wal.stats().replayed_rows == 60
        wal.append(TRACES, new)
        batches = drain(wal)
    assert {batch.signal for batch in batches} == {"traces"}
    assert [row for b in batches for row in b.columns.rows()] == [
        row for spans in (*old, new) for row in spans.rows()
    ]
    (header,) = [path.read_bytes()[: len(MAGIC)] for path in segment_files(tmp_path)]
    assert header == MAGIC


OTHER = dataclasses.replace(TRACES, name="other", item="others", http_path="/v1/other")
"""A second signal for the log: trace columns under another name."""


def two_signals_sent() -> list[tuple[Signal[Any, Any], SpanColumns]]:
    return [
        (TRACES, spans_of(10, 1)),
        (OTHER, spans_of(10, 2)),
        (OTHER, spans_of(10, 3)),
        (TRACES, spans_of(10, 4)),
    ]


@pytest.mark.parametrize("reopen", [False, True], ids=["from-cache", "from-disk"])
def test_batches_hold_consecutive_records_of_one_signal(tmp_path: Path, reopen: bool) -> None:
    with open_log(tmp_path, signals=(TRACES, OTHER)) as wal:
        for signal, spans in two_signals_sent():
            wal.append(signal, spans)
        if not reopen:
            batches = drain(wal)
    if reopen:
        with open_log(tmp_path, signals=(TRACES, OTHER)) as wal:
            batches = drain(wal)
    assert [(b.signal, b.rows) for b in batches] == [("traces", 10), ("other", 20), ("traces", 10)]


def test_the_drainer_stores_each_record_through_its_signals_insert(tmp_path: Path) -> None:
    sent = two_signals_sent()
    stored: dict[str, list[str]] = {"traces": [], "other": []}

    def insert_as(name: str) -> Callable[[SpanColumns, str], None]:
        return lambda spans, token: stored[name].extend(spans.SpanId)

    with open_log(tmp_path, signals=(TRACES, OTHER)) as wal:
        inserts = {TRACES: insert_as("traces"), OTHER: insert_as("other")}
        drainer = Drainer(wal, inserts, max_rows=10_000)
        drainer.start()
        for signal, spans in sent:
            wal.append(signal, spans)
        assert drainer.stop(timeout_s=10)
    assert stored == {
        name: [span_id for signal, spans in sent if signal.name == name for span_id in spans.SpanId]
        for name in stored
    }


def test_a_log_holding_a_signal_this_version_does_not_take_is_refused(tmp_path: Path) -> None:
    with open_log(tmp_path, signals=(TRACES, OTHER)) as wal:
        wal.append(OTHER, spans_of(5, 1))
    with pytest.raises(WalError, match="other records"):
        open_log(tmp_path)
    with open_log(tmp_path, signals=(TRACES, OTHER)) as wal:
        assert wal.stats().replayed_rows == 5


def test_the_drainer_waits_for_a_full_insert_or_its_delay(tmp_path: Path) -> None:
    inserted: list[tuple[int, float]] = []

    def insert(spans: SpanColumns, token: str) -> None:
        inserted.append((len(spans), time.monotonic()))

    with open_log(tmp_path, cache_rows=100) as wal:
        drainer = Drainer(wal, {TRACES: insert}, max_rows=100, max_delay_s=0.6)
        drainer.start()
        appended = time.monotonic()
        wal.append(TRACES, spans_of(30, 1))
        wal.append(TRACES, spans_of(30, 2))
        time.sleep(0.3)
        assert inserted == []
        deadline = time.monotonic() + 10
        while not inserted and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [rows for rows, _ in inserted] == [60]
        assert inserted[0][1] - appended >= 0.55

        full = time.monotonic()
        wal.append(TRACES, spans_of(100, 3))
        while len(inserted) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert inserted[1][0] == 100
        assert inserted[1][1] - full < 0.5

        wal.append(TRACES, spans_of(10, 4))
        stopping = time.monotonic()
        assert drainer.stop(timeout_s=10)
        assert [rows for rows, _ in inserted] == [60, 100, 10]
        assert inserted[2][1] - stopping < 0.5

"""Appends against a healthy but busy drainer wait for room in the log's memory cache instead
of overflowing it (which would make the drainer read everything back from disk), while a
failing store, a backlog from disk, or a wait past its limit never hold an append back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from otelhouse.receiver.traces import TRACES
from otelhouse.receiver.wal import WalService
from otelhouse.storage.traces import SpanColumns
from tests.receiver.test_wal import open_log, spans_of

CACHE_ROWS = 100
SETTLE_S = 0.3


class Storage:
    """An insert that can be held (slow storage) or made to fail (storage down)."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.failing = False
        self.entered = threading.Event()
        self.stored: list[str] = []

    def insert(self, spans: SpanColumns, token: str) -> None:
        self.entered.set()
        self.open.wait(30)
        if self.failing:
            raise ConnectionError("storage down")
        self.stored.extend(spans.SpanId)


@contextmanager
def service(
    directory: Path, storage: Storage, max_wait_s: float = 30.0
) -> Iterator[WalService]:
    wal = open_log(directory, cache_rows=CACHE_ROWS)
    wal_service = WalService(
        wal, {TRACES: storage.insert}, max_rows=CACHE_ROWS, max_backoff_s=0.05, max_wait_s=max_wait_s
    )
    try:
        yield wal_service
    finally:
        storage.failing = False
        storage.open.set()
        wal_service.close(drain_timeout_s=10)


def block_an_append(wal: WalService, storage: Storage, pool: ThreadPoolExecutor) -> Future[None]:
    """Fill the cache behind a held insert: the third append has to wait for room."""
    wal.append(TRACES, spans_of(60, 1))
    assert storage.entered.wait(5)
    wal.append(TRACES, spans_of(60, 2))
    blocked = pool.submit(wal.append, TRACES, spans_of(60, 3))
    time.sleep(SETTLE_S)
    assert not blocked.done(), "an append that overflows the cache must wait"
    return blocked


def test_an_append_past_the_cache_waits_for_a_healthy_drainer_then_nothing_is_read_back(
    tmp_path: Path,
) -> None:
    storage = Storage()
    with service(tmp_path, storage) as wal, ThreadPoolExecutor(1) as pool:
        blocked = block_an_append(wal, storage, pool)
        storage.open.set()
        blocked.result(timeout=10)
        assert wal.drainer.stop(timeout_s=10)
        stats = wal.wal.stats()
    assert len(storage.stored) == 180
    assert stats.reread_rows == 0


def test_appends_never_wait_while_storage_fails(tmp_path: Path) -> None:
    storage = Storage()
    storage.failing = True
    storage.open.set()
    with service(tmp_path, storage) as wal:
        wal.append(TRACES, spans_of(60, 1))
        assert storage.entered.wait(5)
        time.sleep(SETTLE_S)
        started = time.monotonic()
        for seed in range(2, 6):
            wal.append(TRACES, spans_of(60, seed))
        assert time.monotonic() - started < 2
        assert wal.wal.pending_rows == 300
        storage.failing = False
    assert sorted(storage.stored) == sorted(
        span for seed in range(1, 6) for span in spans_of(60, seed).SpanId
    )


def test_a_wait_ends_at_its_limit_and_the_record_is_logged_anyway(tmp_path: Path) -> None:
    storage = Storage()
    with service(tmp_path, storage, max_wait_s=0.5) as wal:
        wal.append(TRACES, spans_of(60, 1))
        assert storage.entered.wait(5)
        wal.append(TRACES, spans_of(60, 2))
        started = time.monotonic()
        wal.append(TRACES, spans_of(60, 3))
        waited = time.monotonic() - started
        assert wal.wal.pending_rows == 180
    assert 0.5 <= waited < 2
    assert len(storage.stored) == 180


def test_no_wait_while_a_backlog_from_before_a_restart_drains(tmp_path: Path) -> None:
    with open_log(tmp_path, cache_rows=CACHE_ROWS) as wal:
        for seed in range(1, 4):
            wal.append(TRACES, spans_of(60, seed))
    storage = Storage()
    with service(tmp_path, storage) as wal:
        assert wal.wal.stats().replayed_rows == 180
        assert storage.entered.wait(5)
        started = time.monotonic()
        for seed in range(4, 7):
            wal.append(TRACES, spans_of(60, seed))
        assert time.monotonic() - started < 2
    assert len(storage.stored) == 360


def test_a_waiting_append_goes_through_once_storage_starts_failing(tmp_path: Path) -> None:
    storage = Storage()
    with service(tmp_path, storage) as wal, ThreadPoolExecutor(1) as pool:
        blocked = block_an_append(wal, storage, pool)
        storage.failing = True
        storage.open.set()
        blocked.result(timeout=2)
        assert not wal.drainer.healthy
        storage.failing = False
    assert len(storage.stored) == 180

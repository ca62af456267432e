"""The write-ahead log: accepted rows are appended and fsynced before the receiver answers OK;
a drainer later moves them into storage and advances a checkpoint.

Layout of the directory: numbered segment files (``0000000000000001.wal`` ...), each bounded
in size, a ``checkpoint.json`` saying how far storage has the data, and a ``LOCK`` held with
``flock`` so two processes never append to one log. Segment numbers never repeat within a log
(nor does the log's random id across logs), because they name the deduplication tokens.

Records carry their signal's name (see ``records``); the drainer's batches hold consecutive
records of one signal. Appends come from the batchers' sinks, the drainer reads from another
thread. Records the
drainer has not read yet are also kept in memory, up to ``cache_rows`` rows, because decoding a
payload costs as much CPU as the OTLP conversion did; the drainer reads from disk only what
overflowed that cache (a backlog during a storage outage) or was logged before a restart.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from otelhouse.receiver.wal.checkpoint import Checkpoint, fsync_directory, load_checkpoint, save_checkpoint
from otelhouse.receiver.signal import Columns, Signal
from otelhouse.receiver.wal.records import (
    FORMAT,
    SEGMENT_HEADER,
    CorruptRecord,
    Record,
    RecordFormat,
    WalError,
    check_segment_header,
    decode_payload,
    encode_record,
    read_header,
    read_record,
    scan,
    segment_header,
)

log = logging.getLogger(__name__)

_SEGMENT_NAME = re.compile(r"^(\d{16})\.wal$")
_FIRST_OFFSET = SEGMENT_HEADER.size
_HEALTH_POLL_S = 0.1
"""How often a waiting append rechecks whether storage is still healthy."""


class WalFull(WalError):
    """The log holds its byte budget of rows not yet in storage; retry once it drains."""


class WalLocked(WalError):
    """Another process has this log open."""


@dataclass(frozen=True, slots=True)
class DrainBatch:
    """Consecutive records of one segment and one signal, merged into one insert. ``token``
    names exactly this byte range, so inserting it twice stores it once."""

    token: str
    segment: int
    start: int
    end: int
    rows: int
    signal: str
    columns: Columns


@dataclass(frozen=True, slots=True)
class LogStats:
    log_bytes: int
    max_bytes: int
    segments: int
    pending_rows: int
    pending_bytes: int
    drain_lag_s: float
    appended_rows: int
    replayed_rows: int
    drained_rows: int
    refused_appends: int
    reread_rows: int
    """Rows the drainer had to read back from disk and unmarshal (not from the cache)."""


class WriteAheadLog:
    """Open (and recover) the log in ``directory`` for records of ``signals``; ``close``
    releases it. A log holding records of any other signal is refused with ``WalError``.

    Segments are capped at a quarter of ``max_bytes``: the active segment keeps its drained
    records until it rotates, so a segment as large as the budget could fill it for good.
    """

    def __init__(
        self,
        directory: Path,
        *,
        signals: Iterable[Signal[Any, Any]],
        max_bytes: int,
        segment_bytes: int,
        cache_rows: int,
    ) -> None:
        self._dir = directory
        self._signals = {signal.name: signal for signal in signals}
        self._max_bytes = max_bytes
        self._segment_bytes = min(segment_bytes, max_bytes // 4)
        self._cache_limit = cache_rows
        self._cond = threading.Condition()
        self._write_lock = threading.Lock()
        self._closed = False
        self._sizes: dict[int, int] = {}
        self._formats: dict[int, RecordFormat] = {}
        self._read_fds: dict[int, int] = {}
        self._cache: dict[tuple[int, int], tuple[Record, Columns]] = {}
        self._cache_rows = 0
        self._uncached_rows = 0
        self._reread_rows = 0
        self._pending_rows = 0
        self._oldest_pending_ns: int | None = None
        self._appended_rows = 0
        self._drained_rows = 0
        self._refused = 0
        self._waiting_appends = 0
        directory.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(directory)
        try:
            self._checkpoint, self._active = self._recover()
            self._active_fd = self._create_segment(self._active)
            self._sizes[self._active] = _FIRST_OFFSET
            self._formats[self._active] = FORMAT
            if self._checkpoint.segment not in self._sizes:
                self._checkpoint = self._checkpoint.at(min(self._sizes), _FIRST_OFFSET)
            save_checkpoint(directory, self._checkpoint)
            self._skip_drained_segments()
        except BaseException:
            self._close_files()
            raise
        self._replayed_rows = self._pending_rows

    @property
    def directory(self) -> Path:
        return self._dir

    @property
    def pending_rows(self) -> int:
        """Rows logged (acknowledged) and not yet stored."""
        with self._cond:
            return self._pending_rows

    def append(self, signal: Signal[Any, Any], columns: Columns) -> None:
        """Make ``columns`` of ``signal`` durable: return only after their record is written
        and fsynced.

        Raises ``WalFull`` when the record would take the log past its byte budget, and
        ``WalError`` when the disk refuses the write; either way nothing was logged.
        """
        rows = len(columns)
        if rows == 0:
            return
        if self._signals.get(signal.name) is not signal:
            raise WalError(f"this write-ahead log was not opened for {signal.name}")
        appended_ns = time.time_ns()
        buffers = encode_record(signal, columns, appended_ns)
        size = sum(map(len, buffers))
        with self._write_lock:
            with self._cond:
                if self._closed:
                    raise WalError("the write-ahead log is closed")
                used = sum(self._sizes.values())
                if used + size > self._max_bytes:
                    self._refused += 1
                    raise WalFull(
                        f"write-ahead log full: {used:,} of {self._max_bytes:,} bytes hold rows "
                        "not yet in storage; retry once storage catches up"
                    )
                offset = self._sizes[self._active]
            if offset > _FIRST_OFFSET and offset + size > self._segment_bytes:
                self._rotate()
                offset = _FIRST_OFFSET
            self._write(buffers, offset)
            with self._cond:
                self._sizes[self._active] = offset + size
                self._pending_rows += rows
                self._appended_rows += rows
                if self._oldest_pending_ns is None:
                    self._oldest_pending_ns = appended_ns
                if self._cache_rows + rows <= self._cache_limit:
                    record = Record(offset, offset + size, rows, appended_ns, signal.name)
                    self._cache[(self._active, offset)] = (record, columns)
                    self._cache_rows += rows
                else:
                    self._uncached_rows += rows
                self._cond.notify_all()

    def wait_for_cache_room(
        self, rows: int, timeout_s: float, storage_healthy: Callable[[], bool]
    ) -> None:
        """Before appending ``rows``: wait, at most ``timeout_s``, while they would overflow
        the cache of a log whose whole backlog is cached and whose storage is healthy.

        Appends outpacing a healthy drainer would otherwise overflow the cache for good, and
        the drainer would then read every record back from disk and unmarshal it, which
        measured here cut the stored rate by a quarter while acknowledgements ran ahead. The
        wait holds the receiver's sink, so the batcher's queue bound turns sustained overload
        into retryable refusals. It never applies while storage is failing or a backlog from
        disk (an outage, a restart) is being drained: then the log takes everything, as it is
        for."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._waiting_appends += 1
            self._cond.notify_all()
            try:
                while (
                    not self._closed
                    and self._uncached_rows == 0
                    and self._cache_rows > 0
                    and self._cache_rows + rows > self._cache_limit
                    and storage_healthy()
                ):
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    self._cond.wait(min(remaining, _HEALTH_POLL_S))
            finally:
                self._waiting_appends -= 1

    def wait_for_rows(
        self, min_rows: int, max_age_s: float, timeout_s: float, stopping: Callable[[], bool]
    ) -> bool:
        """Wait, at most ``timeout_s``, until a drain batch is worth inserting; True when it
        is: at least ``min_rows`` rows are pending, the oldest pending row was appended
        ``max_age_s`` ago or more, an append is waiting for room in the cache, rows must be
        read back from disk (a backlog), or ``stopping()`` (shutdown drains at once).
        False when nothing is pending or the timeout passed first (or the log is closed)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not self._closed:
                if self._pending_rows > 0:
                    if (
                        self._pending_rows >= min_rows
                        or self._waiting_appends > 0
                        or self._uncached_rows > 0
                        or stopping()
                    ):
                        return True
                    oldest = self._oldest_pending_ns
                    age_s = 0.0 if oldest is None else (time.time_ns() - oldest) / 1e9
                    if age_s >= max_age_s:
                        return True
                    wait_s = max_age_s - age_s
                else:
                    wait_s = timeout_s
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, wait_s))
            return False

    def next_batch(self, max_rows: int, timeout_s: float) -> DrainBatch | None:
        """The records after the checkpoint, as one batch of at most ``max_rows`` rows (at
        least one record) from one segment; ``None`` when nothing arrives within
        ``timeout_s`` or the log is closed. After a crash the first batch is exactly the
        range that was being inserted, whatever ``max_rows`` says."""
        deadline = time.monotonic() + timeout_s
        while True:
            self._skip_drained_segments()
            with self._cond:
                if self._closed:
                    return None
                checkpoint = self._checkpoint
                limit = self._sizes[checkpoint.segment]
                if checkpoint.offset < limit:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._cond.wait(remaining):
                    return None
        end = limit if checkpoint.inflight_end is None else min(checkpoint.inflight_end, limit)
        forced = checkpoint.inflight_end is not None
        return self._read_batch(checkpoint, end, max_rows, forced=forced)

    def begin(self, batch: DrainBatch) -> None:
        """Record that ``batch`` is about to be inserted (see ``checkpoint.py`` for why)."""
        with self._cond:
            current = self._checkpoint
        if (current.segment, current.offset, current.inflight_end) == (
            batch.segment,
            batch.start,
            batch.end,
        ):
            return
        intent = Checkpoint(current.wal_id, batch.segment, batch.start, batch.end)
        save_checkpoint(self._dir, intent)
        with self._cond:
            self._checkpoint = intent

    def commit(self, batch: DrainBatch) -> None:
        """``batch`` is in storage: move the checkpoint past it and drop drained segments."""
        with self._cond:
            if self._closed:
                return
        self._advance(batch.segment, batch.end, rows=batch.rows)

    def stats(self) -> LogStats:
        with self._cond:
            checkpoint = self._checkpoint
            pending_bytes = sum(
                size - (checkpoint.offset if segment == checkpoint.segment else _FIRST_OFFSET)
                for segment, size in self._sizes.items()
                if segment >= checkpoint.segment
            )
            oldest = self._oldest_pending_ns
            return LogStats(
                log_bytes=sum(self._sizes.values()),
                max_bytes=self._max_bytes,
                segments=len(self._sizes),
                pending_rows=self._pending_rows,
                pending_bytes=pending_bytes,
                drain_lag_s=0.0 if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9),
                appended_rows=self._appended_rows,
                replayed_rows=self._replayed_rows,
                drained_rows=self._drained_rows,
                reread_rows=self._reread_rows,
                refused_appends=self._refused,
            )

    def wake(self) -> None:
        """Wake a drainer waiting in ``next_batch`` (used on shutdown)."""
        with self._cond:
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        with self._write_lock:
            self._close_files()

    def __enter__(self) -> WriteAheadLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _recover(self) -> tuple[Checkpoint, int]:
        """Drop drained segments, truncate torn tails, count what is left to drain; return
        the checkpoint and the number of the new segment this process appends to."""
        ids = sorted(
            int(match[1]) for name in os.listdir(self._dir) if (match := _SEGMENT_NAME.match(name))
        )
        checkpoint = load_checkpoint(self._dir)
        if checkpoint is None:
            if ids:
                log.warning("%s has segments but no checkpoint: draining all of them", self._dir)
            checkpoint = Checkpoint(uuid.uuid4().hex, ids[0] if ids else 0, _FIRST_OFFSET)
        for segment in ids:
            if segment < checkpoint.segment:
                self._segment_path(segment).unlink()
            else:
                start = checkpoint.offset if segment == checkpoint.segment else _FIRST_OFFSET
                self._recover_segment(segment, start)
        return checkpoint, max([*ids, checkpoint.segment]) + 1

    def _recover_segment(self, segment: int, start: int) -> None:
        path = self._segment_path(segment)
        fd = self._read_fd(segment)
        try:
            record_format = check_segment_header(fd)
        except CorruptRecord:
            log.warning("removing %s: its header was never completely written", path)
            os.close(self._read_fds.pop(segment))
            path.unlink()
            return
        self._formats[segment] = record_format
        size = os.fstat(fd).st_size
        records, valid_end = scan(fd, start, size, record_format)
        unknown = {record.signal for record in records} - set(self._signals)
        if unknown:
            raise WalError(
                f"{path} holds {', '.join(sorted(unknown))} records, which this otelhouse does "
                "not take: drain the log with the version that wrote it"
            )
        if valid_end < size:
            log.warning(
                "truncating %s from %d to %d bytes: a torn or corrupt record follows the last "
                "valid one (a write interrupted by a crash is never acknowledged)",
                path,
                size,
                valid_end,
            )
            os.truncate(path, valid_end)
            _fsync_path(path)
        self._sizes[segment] = valid_end
        recovered = sum(record.rows for record in records)
        self._pending_rows += recovered
        self._uncached_rows += recovered
        if records and self._oldest_pending_ns is None:
            self._oldest_pending_ns = records[0].appended_ns

    def _read_batch(
        self, checkpoint: Checkpoint, end: int, max_rows: int, *, forced: bool
    ) -> DrainBatch:
        segment, start = checkpoint.segment, checkpoint.offset
        record_format = self._formats[segment]
        parts: list[Columns] = []
        signal: Signal[Any, Any] | None = None
        rows = 0
        offset = start
        while offset < end:
            with self._cond:
                cached = self._cache.get((segment, offset))
            record = (
                cached[0]
                if cached
                else read_header(self._read_fd(segment), offset, end, record_format)[0]
            )
            if signal is None:
                signal = self._signals[record.signal]
            elif record.signal != signal.name or (not forced and rows + record.rows > max_rows):
                break
            if cached is None:
                record, payload = read_record(self._read_fd(segment), offset, end, record_format)
                parts.append(decode_payload(payload, record.rows, signal))
                with self._cond:
                    self._uncached_rows -= record.rows
                    self._reread_rows += record.rows
            else:
                with self._cond:
                    del self._cache[(segment, offset)]
                    self._cache_rows -= record.rows
                    self._cond.notify_all()
                parts.append(cached[1])
            rows += record.rows
            offset = record.end
        if signal is None:
            raise CorruptRecord(f"no record at offset {start} of segment {segment}")
        token = f"otelhouse-wal:{checkpoint.wal_id}:{segment}:{start}-{offset}"
        return DrainBatch(token, segment, start, offset, rows, signal.name, _merge(signal, parts))

    def _skip_drained_segments(self) -> None:
        """Move the checkpoint off sealed segments it has reached the end of (deleting them)."""
        while True:
            with self._cond:
                segment, offset = self._checkpoint.segment, self._checkpoint.offset
                if self._closed or segment == self._active or offset < self._sizes[segment]:
                    return
            self._advance(segment, offset, rows=0)

    def _advance(self, segment: int, offset: int, *, rows: int) -> None:
        """Persist the checkpoint at ``segment``/``offset`` (or at the next segment when that
        ends a sealed one), then delete the segments before it."""
        with self._cond:
            if segment != self._active and offset >= self._sizes[segment]:
                segment, offset = min(s for s in self._sizes if s > segment), _FIRST_OFFSET
            checkpoint = self._checkpoint.at(segment, offset)
        save_checkpoint(self._dir, checkpoint)
        with self._cond:
            self._checkpoint = checkpoint
            self._pending_rows -= rows
            self._drained_rows += rows
            drained = [s for s in self._sizes if s < segment]
            for s in drained:
                del self._sizes[s]
                del self._formats[s]
            caught_up = self._pending_rows == 0
            if caught_up:
                self._oldest_pending_ns = None
        for s in drained:
            with contextlib.suppress(KeyError):
                os.close(self._read_fds.pop(s))
            self._segment_path(s).unlink()
        if not caught_up:
            oldest = self._first_pending_appended_ns(checkpoint)
            with self._cond:
                if self._pending_rows:
                    self._oldest_pending_ns = oldest

    def _first_pending_appended_ns(self, checkpoint: Checkpoint) -> int | None:
        with self._cond:
            segments = sorted(item for item in self._sizes.items() if item[0] >= checkpoint.segment)
        for segment, size in segments:
            start = checkpoint.offset if segment == checkpoint.segment else _FIRST_OFFSET
            if start < size:
                fd = self._read_fd(segment)
                return read_header(fd, start, size, self._formats[segment])[0].appended_ns
        return None

    def _rotate(self) -> None:
        """Seal the active segment (every record in it is already fsynced) and start the next."""
        fd = self._create_segment(self._active + 1)
        with self._cond:
            previous = self._active_fd
            self._active += 1
            self._active_fd = fd
            self._sizes[self._active] = _FIRST_OFFSET
            self._formats[self._active] = FORMAT
            self._cond.notify_all()
        os.close(previous)

    def _create_segment(self, segment: int) -> int:
        """A new segment with its header durable; on failure (disk full) no file is left
        behind, so the next attempt can create it again."""
        path = self._segment_path(segment)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            _write_all(fd, [segment_header()])
            os.fsync(fd)
            fsync_directory(self._dir)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise
        return fd

    def _write(self, buffers: Sequence[bytes], offset: int) -> None:
        try:
            _write_all(self._active_fd, buffers)
            os.fdatasync(self._active_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._active_fd, offset)
            if exc.errno == errno.ENOSPC:
                raise WalFull(f"no space left for the write-ahead log in {self._dir}") from exc
            raise WalError(f"cannot write the write-ahead log in {self._dir}: {exc}") from exc

    def _read_fd(self, segment: int) -> int:
        fd = self._read_fds.get(segment)
        if fd is None:
            fd = self._read_fds[segment] = os.open(self._segment_path(segment), os.O_RDONLY)
        return fd

    def _segment_path(self, segment: int) -> Path:
        return self._dir / f"{segment:016d}.wal"

    def _close_files(self) -> None:
        for fd in self._read_fds.values():
            os.close(fd)
        self._read_fds.clear()
        active_fd = getattr(self, "_active_fd", None)
        if active_fd is not None:
            os.close(active_fd)
            self._active_fd = None
        os.close(self._lock_fd)


def _merge(signal: Signal[Any, Any], parts: list[Columns]) -> Columns:
    if len(parts) == 1:
        return parts[0]
    merged = signal.new_columns()
    for part in parts:
        merged.extend(part)
    return merged


def _write_all(fd: int, buffers: Sequence[bytes]) -> None:
    views = [memoryview(buffer) for buffer in buffers]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views.pop(0))
        if views and written:
            views[0] = views[0][written:]


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _lock(directory: Path) -> int:
    fd = os.open(directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WalLocked(
            f"the write-ahead log in {directory} is open in another otelhouse process: stop it "
            "or give this one another --data-dir (or --wal-dir)"
        ) from None
    return fd

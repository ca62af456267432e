"""Group commit: coalesce concurrent requests into large inserts, acknowledge after the insert.

Every ``submit`` waits until the batch holding its rows has been written by the sink, so an
Export call can only succeed once its rows are durable. The batcher knows nothing about
ClickHouse nor about signals: it batches any ``Columns`` (``len``, ``extend``, an empty batch
from ``new_columns()``), and a sink is any blocking callable taking a batch (a write-ahead log
can take the storage sink's place without touching this module).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from otelhouse.receiver.signal import Columns
from otelhouse.receiver.stats import IngestStats

log = logging.getLogger(__name__)

C = TypeVar("C", bound=Columns)
Sink = Callable[[Any], None]
"""Writes one batch of columns durably, blocking; raising means nothing of it was stored."""


class Overloaded(Exception):
    """More rows are waiting for storage than the queue bound allows; retry later."""


class SinkFailed(Exception):
    """The sink raised while writing the batch holding these rows; nothing was stored."""


class BatcherClosed(Exception):
    """The batcher is shutting down and takes no new rows."""


@dataclass(slots=True)
class _Pending(Generic[C]):
    rows: C
    done: asyncio.Future[None]
    arrived: float


class Batcher(Generic[C]):
    """Coalesces submitted batches of ``C`` into sink writes of up to ``max_rows`` rows,
    waiting at most ``max_delay_s`` for a batch to fill, and refuses new rows beyond
    ``max_queued_rows`` not yet written. ``item`` names the rows in messages."""

    def __init__(
        self,
        sink: Callable[[C], None],
        *,
        new_columns: Callable[[], C],
        item: str = "rows",
        max_rows: int,
        max_delay_s: float,
        max_queued_rows: int,
        stats: IngestStats | None = None,
    ) -> None:
        self._sink = sink
        self._new_columns = new_columns
        self._item = item
        self._max_rows = max_rows
        self._max_delay_s = max_delay_s
        self._max_queued_rows = max_queued_rows
        self.stats = stats or IngestStats()
        self._pending: deque[_Pending[C]] = deque()
        self._pending_rows = 0
        self._queued_rows = 0
        self._wakeup = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    @property
    def queued_rows(self) -> int:
        """Rows accepted and not yet stored (pending and in flight)."""
        return self._queued_rows

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="otelhouse-batcher")

    async def stop(self) -> None:
        """Take no new rows, write everything already accepted, then return."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task

    def check_room(self, rows: int) -> None:
        """Raise what ``submit`` would raise for ``rows`` rows now, so a caller can refuse a
        request before paying to convert it."""
        if self._closing:
            raise BatcherClosed("receiver is shutting down")
        if self._queued_rows + rows > self._max_queued_rows and self._queued_rows > 0:
            raise Overloaded(
                f"{self._queued_rows} {self._item} are waiting for storage "
                f"(bound {self._max_queued_rows})"
            )

    async def submit(self, columns: C) -> None:
        rows = len(columns)
        if rows == 0:
            return
        self.check_room(rows)
        item = _Pending(columns, asyncio.get_running_loop().create_future(), time.monotonic())
        self._pending.append(item)
        self._pending_rows += rows
        self._queued_rows += rows
        if self._pending_rows >= self._max_rows or len(self._pending) == 1:
            self._wakeup.set()
        await asyncio.shield(item.done)

    async def _run(self) -> None:
        while True:
            await self._wait_for_batch()
            if not self._pending:
                if self._closing:
                    return
                continue
            batch, waiters = self._take_batch()
            try:
                await asyncio.to_thread(self._sink, batch)
            except Exception as exc:  # noqa: BLE001 - any sink failure is reported to callers
                log.warning("storage write of %d %s failed: %s", len(batch), self._item, exc)
                self.stats.failed += len(batch)
                error = SinkFailed(str(exc))
                for waiter in waiters:
                    if not waiter.done.done():
                        waiter.done.set_exception(error)
            else:
                self.stats.stored += len(batch)
                for waiter in waiters:
                    if not waiter.done.done():
                        waiter.done.set_result(None)
            finally:
                self._queued_rows -= len(batch)

    async def _wait_for_batch(self) -> None:
        """Return when a full batch is waiting, the oldest row has waited long enough, or on
        shutdown."""
        while not self._closing:
            if self._pending_rows >= self._max_rows:
                return
            if self._pending:
                remaining = self._pending[0].arrived + self._max_delay_s - time.monotonic()
                if remaining <= 0:
                    return
            else:
                remaining = None
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self) -> tuple[C, list[_Pending[C]]]:
        """Whole requests up to ``max_rows`` (at least one request, however large)."""
        waiters = [self._pending.popleft()]
        batch = self._new_columns()
        batch.extend(waiters[0].rows)
        while self._pending and len(batch) + len(self._pending[0].rows) <= self._max_rows:
            item = self._pending.popleft()
            batch.extend(item.rows)
            waiters.append(item)
        self._pending_rows -= len(batch)
        return batch, waiters

"""A budget for the request bytes the receiver holds at once.

The queue bound counts spans, but a request also holds its body until it is answered, and an
answer waits for storage (or the log's fsync). Without a budget on bodies, memory grows with
the number of concurrent requests times their size: a few hundred clients sending large
batches against slow storage would take gigabytes before the span bound noticed anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class InflightFull(Exception):
    """Taking this request now would pass the budget; the client should retry later."""


class InflightBytes:
    """Counts the bytes of requests taken and not yet answered, up to ``limit``.

    A request larger than the whole budget is still taken when nothing else is in flight:
    ``max_request_bytes`` says what size is acceptable, this only says how many at once.
    Used from the event loop only."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    def check(self, size: int, *, own: int = 0) -> None:
        """Raise :class:`InflightFull` if ``size`` more bytes would not fit now; ``own`` are
        bytes the asking request already holds (alone, it may pass the budget)."""
        if self.held - own and self.held + size > self.limit:
            raise InflightFull(
                f"{self.held - own} bytes of requests are in flight (bound {self.limit}); "
                f"this one of {own + size} bytes would pass it"
            )

    @contextmanager
    def reserve(self, size: int) -> Iterator[Hold]:
        """Hold ``size`` bytes of the budget until the request is answered; the hold can grow
        while a body of unknown length is read."""
        self.check(size)
        hold = Hold(self, size)
        self.held += size
        try:
            yield hold
        finally:
            self.held -= hold.size


class Hold:
    """One request's share of the budget."""

    def __init__(self, budget: InflightBytes, size: int) -> None:
        self._budget = budget
        self.size = size

    def grow(self, extra: int) -> None:
        """Take ``extra`` more bytes, or raise :class:`InflightFull` (the hold keeps its size)."""
        self._budget.check(extra, own=self.size)
        self._budget.held += extra
        self.size += extra

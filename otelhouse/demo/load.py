"""The demo's users: an open-loop load generator at a fixed rate, and its running tally.

Open loop (requests start on schedule whether or not earlier ones finished) is how real
traffic behaves, so slow endpoints pile up concurrent requests instead of slowing the load.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import httpx

SKUS = ("apple", "pear", "plum", "kiwi", "fig", "durian")
"""``durian`` is not stocked: requests for it answer 404, the client-error case."""


@dataclass(frozen=True)
class Target:
    method: str
    path: str
    weight: float


TRAFFIC: tuple[Target, ...] = (
    Target("GET", "/products", 3),
    Target("GET", "/products/{sku}", 6),
    Target("POST", "/checkout?sku={sku}&quantity=1", 3),
    Target("GET", "/reports/sales", 1),
    Target("GET", "/recommendations", 0.5),
)
MAX_IN_FLIGHT = 200


@dataclass
class Tally:
    """Answers by class; ``failed`` counts requests that got no HTTP answer at all."""

    sent: int = 0
    ok: int = 0
    client_errors: int = 0
    server_errors: int = 0
    failed: int = 0
    skipped: int = 0

    def record(self, status: int) -> None:
        if status >= 500:
            self.server_errors += 1
        elif status >= 400:
            self.client_errors += 1
        else:
            self.ok += 1

    @property
    def finished(self) -> int:
        return self.ok + self.client_errors + self.server_errors + self.failed

    def summary(self) -> str:
        parts = [
            f"sent {self.sent}",
            f"ok {self.ok}",
            f"4xx {self.client_errors}",
            f"5xx {self.server_errors}",
            f"no answer {self.failed}",
        ]
        in_flight = self.sent - self.finished
        if in_flight:
            parts.append(f"in flight {in_flight}")
        if self.skipped:
            parts.append(f"skipped (too many in flight) {self.skipped}")
        return ", ".join(parts)


async def send_one(
    client: httpx.AsyncClient, target: Target, rng: random.Random, tally: Tally
) -> None:
    path = target.path.format(sku=rng.choice(SKUS))
    tally.sent += 1
    try:
        answer = await client.request(target.method, path)
    except httpx.HTTPError:
        tally.failed += 1
    else:
        tally.record(answer.status_code)


async def generate_load(
    client: httpx.AsyncClient,
    rate: float,
    duration_s: float | None,
    tally: Tally,
    rng: random.Random,
) -> None:
    """Send ``rate`` requests per second until ``duration_s`` passes (None: until cancelled),
    then wait for the requests still in flight."""
    loop = asyncio.get_running_loop()
    weights = [t.weight for t in TRAFFIC]
    start = next_at = loop.time()
    in_flight: set[asyncio.Task[None]] = set()
    try:
        while duration_s is None or loop.time() - start < duration_s:
            if len(in_flight) < MAX_IN_FLIGHT:
                target = rng.choices(TRAFFIC, weights)[0]
                task = asyncio.create_task(send_one(client, target, rng, tally))
                in_flight.add(task)
                task.add_done_callback(in_flight.discard)
            else:
                tally.skipped += 1
            next_at += 1.0 / rate
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        if in_flight:
            await asyncio.wait(in_flight, timeout=10)
    finally:
        for task in in_flight:
            task.cancel()


async def report_progress(tally: Tally, interval_s: float, started_at: float) -> None:
    """A line every ``interval_s`` with totals and the answer rate since the last line."""
    loop = asyncio.get_running_loop()
    previous = 0
    while True:
        await asyncio.sleep(interval_s)
        rate = (tally.finished - previous) / interval_s
        previous = tally.finished
        print(
            f"[{loop.time() - started_at:6.1f}s] {tally.summary()} ({rate:.1f} answers/s)",
            flush=True,
        )

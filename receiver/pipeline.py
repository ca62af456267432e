"""The ingest pipeline, whatever the signal and the transport: decode → room check →
convert → batch → sink → answer.

``Receiver`` composes one ``SignalPipeline`` per signal behind a shared in-flight byte budget;
the gRPC and HTTP transports borrow it and only frame requests and word answers (through
``receiver.errors``).

Counters: each pipeline counts in its own ``IngestStats``; authentication refusals, which
happen before a signal is known, in ``Receiver.auth_stats``. ``/metrics`` reports request
counters (``otelhouse_receiver_requests_total``, ``..._requests_refused_total{reason}``)
summed over all of them, and item counters and queue gauges per signal under the signal's
item noun: ``otelhouse_receiver_spans_stored_total`` and ``otelhouse_receiver_queue_spans``
for traces, ``otelhouse_receiver_log_records_stored_total`` for a signal whose items are
"log records", and so on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from typing import Any, Generic, NoReturn, TypeVar

from google.protobuf.message import Message

from otelhouse.receiver.batcher import Batcher, BatcherClosed, Overloaded, Sink, SinkFailed
from otelhouse.receiver.config import ReceiverConfig
from otelhouse.receiver.errors import IngestError, RequestTooLarge, RetryLater
from otelhouse.receiver.inflight import Hold, InflightBytes, InflightFull
from otelhouse.receiver.limits import ConvertLimits
from otelhouse.receiver.metrics import (
    ReceiverMetrics,
    inflight_samples,
    request_samples,
    signal_samples,
)
from otelhouse.receiver.signal import Columns, Conversion, Signal
from otelhouse.receiver.stats import IngestStats, LatencyHistogram, timed

Request = TypeVar("Request", bound=Message)
C = TypeVar("C", bound=Columns)
Decoder = Callable[[bytes], Any]

log = logging.getLogger(__name__)


class SignalPipeline(Generic[Request, C]):
    """Takes one signal's requests into its batcher and answers only once they are stored
    (or durably logged), counting every outcome in ``stats``.

    Memory has two bounds: the batcher's on rows waiting for storage, and ``inflight`` on
    the bodies of requests not yet answered. Only the converted columns wait with a request;
    its decoded protobuf tree, several times the body's size, is dropped before the wait."""

    def __init__(
        self,
        signal: Signal[Request, C],
        batcher: Batcher[C],
        *,
        limits: ConvertLimits,
        inflight: InflightBytes,
        stats: IngestStats,
    ) -> None:
        self.signal = signal
        self.batcher = batcher
        self.stats = stats
        self.inflight = inflight
        self._limits = limits

    @contextmanager
    def hold(self, size: int) -> Iterator[Hold]:
        """Hold ``size`` bytes of the in-flight budget for the block; ``RetryLater`` (not yet
        counted) when they, or what the hold grows by, do not fit."""
        try:
            with self.inflight.reserve(size) as held:
                yield held
        except InflightFull as exc:
            raise RetryLater(f"receiver busy, retry later: {exc}") from None

    async def export(self, payload: bytes, decode: Decoder | None = None) -> Message:
        """The response to the request in ``payload`` (protobuf unless ``decode`` says
        otherwise), once its rows are stored; raises ``IngestError``, already counted."""
        stats = self.stats
        stats.requests += 1
        try:
            with self.hold(len(payload)):
                conversion = self._convert(payload, decode or self.signal.decode_protobuf)
                await self.batcher.submit(conversion.columns)
        except IngestError as exc:
            self._count(exc)
            raise
        except (Overloaded, BatcherClosed, SinkFailed) as exc:
            error = RetryLater(_retry_reason(exc))
            self._count(error)
            raise error from None
        return self.signal.response(conversion)

    def _convert(self, payload: bytes, decode: Decoder) -> Conversion[C]:
        """Decode and convert, refusing before conversion when the queue has no room; the
        decoded request is freed on return."""
        request = decode(payload)
        items = self.signal.count(request)
        try:
            self.batcher.check_room(items)
        except (Overloaded, BatcherClosed):
            self.stats.refused += items
            raise
        conversion = self.signal.convert(request, self._limits)
        self.stats.received += len(conversion.columns) + conversion.rejected
        self.stats.rejected += conversion.rejected
        return conversion

    def count_rejected(self, items: int) -> None:
        """Count ``items`` that a transport's own decoder rejected one by one before they
        reached ``convert`` (they count as received and rejected, like malformed items)."""
        self.stats.received += items
        self.stats.rejected += items

    def refuse(self, error: IngestError) -> NoReturn:
        """Count a request its transport refused before ``export`` (say, an unsupported
        content type), then raise ``error``."""
        self.count_refusal(error)
        raise error

    def count_refusal(self, error: IngestError) -> None:
        """Count a request its transport refused before ``export``."""
        self.stats.requests += 1
        self._count(error)

    def _count(self, error: IngestError) -> None:
        stats = self.stats
        if isinstance(error, RequestTooLarge):
            stats.oversize_requests += 1
        elif isinstance(error, RetryLater):
            stats.retry_later_requests += 1
        else:
            stats.invalid_requests += 1


class Receiver:
    """One pipeline per signal in ``sinks`` (each signal's batches go to its sink), the
    shared in-flight budget, and the receiver's ``/metrics``. ``start`` runs the batchers;
    ``stop`` takes no new rows and writes every accepted row to its sink before returning.
    Transports borrow it; they start and stop on their own, around it."""

    def __init__(self, config: ReceiverConfig, sinks: Mapping[Signal[Any, Any], Sink]) -> None:
        self.config = config
        self.inflight = InflightBytes(config.max_inflight_bytes)
        self.auth_stats = IngestStats()
        self.write_latency = LatencyHistogram()
        self.metrics = ReceiverMetrics(self.write_latency)
        self.metrics.add_provider(
            lambda: request_samples([*(p.stats for p in self.pipelines), self.auth_stats])
        )
        self.pipelines = [self._pipeline(signal, sink) for signal, sink in sinks.items()]
        self.metrics.add_provider(lambda: inflight_samples(self.inflight))

    def _pipeline(self, signal: Signal[Any, Any], sink: Sink) -> SignalPipeline[Any, Any]:
        config = self.config
        stats = IngestStats()
        batcher: Batcher[Any] = Batcher(
            timed(sink, self.write_latency),
            new_columns=signal.new_columns,
            item=signal.item,
            max_rows=config.batch_max_rows,
            max_delay_s=config.batch_max_delay_s,
            max_queued_rows=config.queue_max_rows,
            stats=stats,
        )
        self.metrics.add_provider(
            lambda: signal_samples(
                signal.item_key, stats, batcher.queued_rows, config.queue_max_rows
            )
        )
        return SignalPipeline(
            signal, batcher, limits=config.limits, inflight=self.inflight, stats=stats
        )

    def pipeline(self, name: str) -> SignalPipeline[Any, Any]:
        """The pipeline of the signal called ``name``; ``KeyError`` when there is none."""
        for pipeline in self.pipelines:
            if pipeline.signal.name == name:
                return pipeline
        raise KeyError(name)

    @property
    def stats(self) -> IngestStats:
        """Every counter summed over all signals and authentication (a new object)."""
        every = [*(p.stats for p in self.pipelines), self.auth_stats]
        return IngestStats(
            **{f.name: sum(getattr(s, f.name) for s in every) for f in fields(IngestStats)}
        )

    def health(self) -> dict[str, object]:
        """Per signal, queue depth and bound and rows stored, and the in-flight budget, for
        ``/healthz``: how close ingest is to refusing."""
        state: dict[str, object] = {
            "inflight_bytes": self.inflight.held,
            "inflight_max_bytes": self.inflight.limit,
        }
        for pipeline in self.pipelines:
            item = pipeline.signal.item_key
            state[f"queued_{item}"] = pipeline.batcher.queued_rows
            state[f"queue_max_{item}"] = self.config.queue_max_rows
            state[f"{item}_stored"] = pipeline.stats.stored
        return state

    def start(self) -> None:
        for pipeline in self.pipelines:
            pipeline.batcher.start()

    async def stop(self) -> None:
        await asyncio.gather(*(pipeline.batcher.stop() for pipeline in self.pipelines))
        for pipeline in self.pipelines:
            log.info(
                "OTLP %s pipeline stopped; %d %s stored in total",
                pipeline.signal.name,
                pipeline.stats.stored,
                pipeline.signal.item,
            )


def _retry_reason(exc: Exception) -> str:
    if isinstance(exc, Overloaded):
        return f"receiver overloaded, retry later: {exc}"
    if isinstance(exc, SinkFailed):
        return f"storage unavailable, nothing stored: {exc}"
    return str(exc)

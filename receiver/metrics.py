"""The receiver's own telemetry in the Prometheus text exposition format (version 0.0.4).

Written by hand: a dozen series do not justify a client library, and rendering straight from
``IngestStats`` means the numbers in ``/metrics`` and in the periodic log line are the same
counters. Other parts (the write-ahead log) add series through ``add_provider``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from otelhouse.receiver.stats import IngestStats, LatencyHistogram

if TYPE_CHECKING:
    from otelhouse.receiver.inflight import InflightBytes
    from otelhouse.receiver.wal.service import WalStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Sample:
    """One series: ``name`` is the full metric name, ``labels`` tell series of a family apart."""

    name: str
    help: str
    value: float
    kind: Literal["counter", "gauge"] = "gauge"
    labels: Mapping[str, str] = field(default_factory=dict)


MetricsProvider = Callable[[], Iterable[Sample]]

ITEM_COUNTERS = {
    "received": "{Items} in decoded requests, valid or not.",
    "stored": "{Items} the sink wrote (stored, or durably logged when the log is on).",
    "rejected": "{Items} dropped as malformed and reported through partial_success.",
    "refused": "{Items} of requests refused with a retryable error (overload, shutdown).",
    "failed": "{Items} in batches whose write failed; their requests were told to retry.",
}
REFUSAL_COUNTERS = {
    "invalid": "invalid_requests",
    "oversize": "oversize_requests",
    "unauthenticated": "unauthenticated_requests",
    "retry_later": "retry_later_requests",
}


WAL_GAUGES = {
    "log_bytes": ("otelhouse_wal_bytes", "Bytes in write-ahead log segments on disk."),
    "max_bytes": ("otelhouse_wal_max_bytes", "Disk budget; appends beyond it get retry-later."),
    "pending_rows": ("otelhouse_wal_pending_spans", "Logged spans not yet stored."),
    "pending_bytes": ("otelhouse_wal_pending_bytes", "Logged bytes not yet stored."),
    "drain_lag_s": ("otelhouse_wal_drain_lag_seconds", "Age of the oldest span not yet stored."),
}
WAL_COUNTERS = {
    "appended_rows": ("otelhouse_wal_appended_spans_total", "Spans appended to the log."),
    "drained_rows": ("otelhouse_wal_drained_spans_total", "Spans stored from the log."),
    "refused_appends": ("otelhouse_wal_refused_appends_total", "Appends refused: budget full."),
    "reread_rows": (
        "otelhouse_wal_reread_spans_total",
        "Spans the drainer read back from disk rather than its memory cache.",
    ),
}


def inflight_samples(inflight: InflightBytes) -> list[Sample]:
    """How much of the in-flight budget requests hold (``--max-inflight-bytes``)."""
    return [
        Sample(
            "otelhouse_receiver_inflight_bytes",
            "Bodies of OTLP requests taken and not yet answered.",
            inflight.held,
        ),
        Sample(
            "otelhouse_receiver_inflight_max_bytes",
            "In-flight budget; requests beyond it get UNAVAILABLE / 503.",
            inflight.limit,
        ),
    ]


def wal_samples(stats: WalStats) -> list[Sample]:
    """The write-ahead log's state (``WalService.stats()``) as series. The log holds every
    signal: its row counts cover all of them, under the ``spans`` names they had when traces
    were the only signal."""
    log, drain = stats.log, stats.drain
    samples = [Sample(name, text, getattr(log, key)) for key, (name, text) in WAL_GAUGES.items()]
    samples += [
        Sample(name, text, getattr(log, key), "counter")
        for key, (name, text) in WAL_COUNTERS.items()
    ]
    samples += [
        Sample("otelhouse_wal_inserts_total", "Storage inserts by the drainer.", drain.inserts,
               "counter"),
        Sample("otelhouse_wal_insert_failures_total", "Drainer inserts that failed.",
               drain.insert_failures, "counter"),
        Sample("otelhouse_wal_insert_seconds_total", "Time spent in drainer inserts.",
               drain.insert_seconds, "counter"),
    ]
    return samples


def request_samples(every: Sequence[IngestStats]) -> list[Sample]:
    """Request counters summed over ``every`` (each signal's stats and authentication's)."""

    def total(attribute: str) -> int:
        return sum(getattr(stats, attribute) for stats in every)

    samples = [
        Sample(
            "otelhouse_receiver_requests_total",
            "OTLP export requests (gRPC and HTTP) that passed auth.",
            total("requests"),
            "counter",
        )
    ]
    samples += [
        Sample(
            "otelhouse_receiver_requests_refused_total",
            "Requests answered with an error, by reason; nothing of them was stored.",
            total(attribute),
            "counter",
            {"reason": reason},
        )
        for reason, attribute in REFUSAL_COUNTERS.items()
    ]
    return samples


def signal_samples(item: str, stats: IngestStats, queued: int, bound: int) -> list[Sample]:
    """One signal's item counters and queue gauges, named after its ``item`` (``spans``)."""
    items = item.replace("_", " ").capitalize()
    samples = [
        Sample(
            f"otelhouse_receiver_{item}_{name}_total",
            text.format(Items=items),
            getattr(stats, name),
            "counter",
        )
        for name, text in ITEM_COUNTERS.items()
    ]
    samples += [
        Sample(
            f"otelhouse_receiver_queue_{item}",
            f"{items} accepted and waiting for the sink.",
            queued,
        ),
        Sample(
            f"otelhouse_receiver_queue_max_{item}",
            "Queue bound; requests beyond it get UNAVAILABLE / 503.",
            bound,
        ),
    ]
    return samples


class ReceiverMetrics:
    """Renders the samples of every provider, then the write latency histogram."""

    def __init__(self, write_latency: LatencyHistogram) -> None:
        self._write_latency = write_latency
        self._providers: list[MetricsProvider] = []

    def add_provider(self, provider: MetricsProvider) -> None:
        self._providers.append(provider)

    def samples(self) -> list[Sample]:
        return [sample for provider in self._providers for sample in provider()]

    def render(self) -> str:
        lines: list[str] = []
        described: set[str] = set()
        for sample in self.samples():
            if sample.name not in described:
                described.add(sample.name)
                lines.append(f"# HELP {sample.name} {sample.help}")
                lines.append(f"# TYPE {sample.name} {sample.kind}")
            lines.append(f"{sample.name}{_labels(sample.labels)} {_number(sample.value)}")
        lines += _histogram(
            "otelhouse_receiver_write_seconds",
            "Time to write one batch to the sink (storage insert, or log append).",
            self._write_latency,
        )
        return "\n".join(lines) + "\n"


def _histogram(name: str, help_text: str, histogram: LatencyHistogram) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} histogram"]
    lines += [
        f'{name}_bucket{_labels({"le": _number(bound)})} {count}'
        for bound, count in histogram.cumulative()
    ]
    lines += [f"{name}_sum {_number(histogram.total)}", f"{name}_count {histogram.count}"]
    return lines


_LABEL_ESCAPES = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n"})


def _labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{key}="{value.translate(_LABEL_ESCAPES)}"' for key, value in labels.items())
    return "{" + pairs + "}"


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)

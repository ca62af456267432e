"""Replay benchmark: how fast a write-ahead log left by a storage outage drains into storage.

    .venv/bin/python bench/replay.py [--spans 1000000] [--spans-per-request 512]

After an outage the log holds every span acknowledged meanwhile, and ``otelhouse serve``
(or the running drainer) inserts them in ``batch_max_rows`` batches with a deduplication
token each. Measured side by side on the same rows:

1. insert ceiling: the rows, already in columns, inserted directly in the same batch size
   (what ClickHouse and the client library cost);
2. replay: a log holding the rows is opened as ``serve`` opens it at start, and drained until
   nothing is pending (what reading, unmarshalling, checkpointing and the tokens add).

The embedded engine serves one data directory per process, so every run uses one directory
with a database per run.

The ratio replay / ceiling says how much of the insert path the log keeps; spans/s says how
long an outage of a given volume takes to catch up.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from ingest import fresh_store, log, make_payloads
from otelhouse.settings import Settings
from otelhouse.receiver.convert import convert_request
from otelhouse.receiver.traces import TRACES
from otelhouse.receiver.wal import WalService
from otelhouse.receiver.wal.log import WriteAheadLog
from otelhouse.storage.traces import SpanColumns, insert_spans


def request_columns(spans_per_request: int) -> list[SpanColumns]:
    """Converted requests, as the batcher hands them to the log one request at a time."""
    return [
        convert_request(ExportTraceServiceRequest.FromString(payload)).spans
        for payload in make_payloads(spans_per_request)
    ]


def insert_ceiling(requests: list[SpanColumns], total: int, settings: Settings) -> float:
    """Direct inserts of ``total`` rows in ``batch_max_rows`` batches, spans per second."""
    batch = SpanColumns()
    while len(batch) < settings.batch_max_rows:
        for columns in requests:
            batch.extend(columns)
    client = fresh_store(settings)
    rounds = max(1, total // len(batch))
    started = time.perf_counter()
    for _ in range(rounds):
        insert_spans(client, batch, settings={"insert_deduplicate": 0})
    elapsed = time.perf_counter() - started
    client.close()
    return rounds * len(batch) / elapsed


def fill_log(requests: list[SpanColumns], total: int, settings: Settings) -> tuple[int, int]:
    """A log holding at least ``total`` spans (whole requests) and no checkpoint past them, as
    after an outage; its size in bytes and the spans it holds."""
    wal = WriteAheadLog(
        settings.effective_wal_dir,
        signals=(TRACES,),
        max_bytes=settings.wal_max_bytes,
        segment_bytes=settings.wal_segment_bytes,
        cache_rows=settings.batch_max_rows,
    )
    logged = 0
    while logged < total:
        for columns in requests:
            wal.append(TRACES, columns)
            logged += len(columns)
            if logged >= total:
                break
    size = wal.stats().log_bytes
    wal.close()
    return size, logged


def replay(settings: Settings, total: int) -> tuple[float, float]:
    """Open the log as ``serve`` does and time the drain; spans/s and seconds to open."""
    writer = fresh_store(settings)

    def insert(spans: SpanColumns, token: str) -> None:
        insert_spans(writer, spans, settings={"insert_deduplication_token": token})

    started = time.perf_counter()
    service = WalService.open(settings.wal_config(), {TRACES: insert})
    opened = time.perf_counter() - started
    last_report = started
    while service.wal.pending_rows:
        time.sleep(0.05)
        if time.perf_counter() - last_report > 5:
            last_report = time.perf_counter()
            log(f"  replay: {service.wal.pending_rows:,} spans still pending")
    elapsed = time.perf_counter() - started
    service.close(10)
    stored = writer.query("SELECT count() FROM otel_traces").result_rows[0][0]
    writer.close()
    if stored != total:
        raise SystemExit(f"replay stored {stored} spans, expected {total}")
    return total / elapsed, opened


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spans", type=int, default=1_000_000, help="spans in the log")
    parser.add_argument("--spans-per-request", type=int, default=512)
    parser.add_argument("--runs", type=int, default=3, help="replays (and ceilings) measured")
    args = parser.parse_args()

    requests = request_columns(args.spans_per_request)
    work = Path(tempfile.mkdtemp(prefix="otelhouse-replay-"))
    ceilings, replays, opens, sizes = [], [], [], []
    try:
        for run in range(args.runs):
            settings = Settings(
                data_dir=work / "data", database=f"replay_{run}", wal_dir=work / f"wal{run}"
            )
            log(f"run {run + 1}/{args.runs}: direct inserts of {args.spans:,} spans ...")
            ceilings.append(
                insert_ceiling(
                    requests,
                    args.spans,
                    settings.model_copy(update={"database": f"ceiling_{run}"}),
                )
            )
            log(f"run {run + 1}/{args.runs}: logging {args.spans:,} spans ...")
            size, logged = fill_log(requests, args.spans, settings)
            sizes.append(size)
            log(f"run {run + 1}/{args.runs}: replaying ...")
            rate, opened = replay(settings, logged)
            replays.append(rate)
            opens.append(opened)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ceiling, rate = statistics.median(ceilings), statistics.median(replays)
    print(
        f"\nreplay of {args.spans:,} logged spans ({statistics.median(sizes) / 2**20:,.0f} MiB "
        f"of log), median of {args.runs} runs:"
    )
    print(f"  direct insert ceiling   {ceiling:>12,.0f} spans/s")
    print(f"  replay from the log     {rate:>12,.0f} spans/s  (opening the log: "
          f"{statistics.median(opens):.2f} s)")
    print(f"  replay / ceiling        {rate / ceiling:>12.2f}")
    print(f"  an outage's backlog of 1M spans drains in {1e6 / rate:.0f} s")


if __name__ == "__main__":
    main()

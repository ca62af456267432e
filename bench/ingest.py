"""Ingest benchmark: spans/s (or log records/s) end to end, against the two ceilings
measured in the same run.

    .venv/bin/python bench/ingest.py [--signal traces|logs] [--seconds 20] [--clients 8]
                                     [--per-request 512]

``--signal`` picks the payloads (``realistic_request`` or ``realistic_logs_request``) and,
through the signal's ``Signal`` (``TRACES`` or ``LOGS``), the request type, the gRPC method,
the conversion and the insert; the measuring below is the same for both. Rates are in the
signal's items (spans, records).

1. decode ceiling: bare protobuf decode (``request_type.FromString``) of the same payloads;
2. insert ceiling: the same rows, already in columns, inserted directly in 50k-row batches;
3. end to end: pre-serialized requests from concurrent gRPC clients → a real ``otelhouse
   serve`` subprocess (its own data directory) → acknowledged, i.e. durably stored. The
   server's CPU time is read from /proc so the rate per core is reported too, with its
   peak RSS. With the write-ahead log on (the default), acknowledged means logged: the
   backlog the drainer has not yet stored is read from ``/metrics`` at the end, so a rate
   storage cannot sustain shows as a growing backlog. The log's series count rows of every
   signal (under ``spans`` names); only one signal is sent here, so they count its items.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from signal import SIGTERM
from typing import Any

import grpc
import httpx
from clickhouse_connect.driver.client import Client
from google.protobuf.message import Message

from otelhouse.core.addresses import free_port
from otelhouse.demo.payloads import realistic_logs_request, realistic_request
from otelhouse.receiver.limits import DEFAULT_LIMITS
from otelhouse.receiver.logs import LOGS
from otelhouse.receiver.signal import Signal
from otelhouse.receiver.traces import TRACES
from otelhouse.settings import Settings
from otelhouse.storage import migrate, open_client

SERVE = [sys.executable, "-m", "otelhouse.cli", "serve"]

DISTINCT_PAYLOADS = 64


@dataclass(frozen=True)
class Workload:
    """A signal and the builder of its realistic requests: ``build(items, seed=, service=)``."""

    signal: Signal[Any, Any]
    build: Callable[..., Message]

    @property
    def unit(self) -> str:
        """The last word of the signal's ``item``, as rates are printed: ``spans``, ``records``."""
        return self.signal.item.split()[-1]


WORKLOADS = {
    "traces": Workload(TRACES, realistic_request),
    "logs": Workload(LOGS, realistic_logs_request),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_payloads(workload: Workload, per_request: int) -> list[bytes]:
    log(f"building {DISTINCT_PAYLOADS} requests of {per_request} {workload.signal.item} ...")
    return [
        workload.build(per_request, seed=i, service=f"svc-{i % 8}").SerializeToString()
        for i in range(DISTINCT_PAYLOADS)
    ]


def decode_rate(
    signal: Signal[Any, Any], payloads: list[bytes], per_request: int, seconds: float
) -> float:
    decode = signal.request_type.FromString
    rates = []
    for _ in range(5):
        done, start = 0, time.perf_counter()
        while time.perf_counter() - start < seconds / 5:
            for payload in payloads:
                decode(payload)
            done += len(payloads)
        rates.append(done * per_request / (time.perf_counter() - start))
    return statistics.median(rates)


def convert(signal: Signal[Any, Any], payload: bytes) -> Any:
    """``payload``'s rows in the signal's columns, converted under the default limits."""
    return signal.convert(signal.request_type.FromString(payload), DEFAULT_LIMITS).columns


def convert_rate(signal: Signal[Any, Any], payloads: list[bytes], per_request: int) -> float:
    start = time.perf_counter()
    for payload in payloads:
        convert(signal, payload)
    return len(payloads) * per_request / (time.perf_counter() - start)


def fresh_store(settings: Settings) -> Client:
    """A client on ``settings``' database, migrated to the current schema."""
    config = settings.storage_config()
    admin = open_client(config, database="")
    migrate(admin, config)
    admin.close()
    return open_client(config)


def insert_rate(
    signal: Signal[Any, Any], payloads: list[bytes], batch_rows: int, data_dir: Path
) -> float:
    settings = Settings(data_dir=data_dir, database="bench_insert")
    client = fresh_store(settings)
    batch = signal.new_columns()
    while len(batch) < batch_rows:
        for payload in payloads:
            batch.extend(convert(signal, payload))
    rates = []
    for _ in range(4):
        start = time.perf_counter()
        signal.insert(client, batch, settings={"insert_deduplicate": 0})
        rates.append(len(batch) / (time.perf_counter() - start))
    client.close()
    return statistics.median(rates[1:])


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def server_metrics(metrics_url: str) -> dict[str, float]:
    """The server's ``/metrics`` series without labels, by name."""
    text = httpx.get(metrics_url, timeout=10).text
    pairs = (line.split(" ", 1) for line in text.splitlines() if line and line[0] != "#")
    return {name: float(value) for name, value in pairs if "{" not in name}


def stored_total(signal: Signal[Any, Any], metrics: dict[str, float]) -> float:
    """Items in storage so far: drained from the log when it is on (the receiver's "stored"
    then counts logged items), else inserted by the receiver."""
    return metrics.get(
        "otelhouse_wal_drained_spans_total",
        metrics[f"otelhouse_receiver_{signal.item_key}_stored_total"],
    )


@dataclass(frozen=True)
class EndToEnd:
    acknowledged_per_s: float
    stored_per_s: float
    per_cpu_s: float
    peak_rss_mib: float
    backlog_items: float
    backlog_age_s: float


def end_to_end(
    workload: Workload,
    payloads: list[bytes],
    per_request: int,
    clients: int,
    inflight: int,
    seconds: float,
    data_dir: Path,
    extra_env: dict[str, str],
) -> EndToEnd:
    port = free_port()
    env = {
        **os.environ,
        "OTELHOUSE_DATA_DIR": str(data_dir),
        "OTELHOUSE_OTLP_GRPC_ADDR": f"127.0.0.1:{port}",
        "OTELHOUSE_OTLP_HTTP_ADDR": f"127.0.0.1:{free_port()}",
        "OTELHOUSE_API_ADDR": f"127.0.0.1:{free_port()}",
        **extra_env,
    }
    server = subprocess.Popen(SERVE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    signal, unit = workload.signal, workload.unit
    acked = [0] * clients
    stop = threading.Event()
    errors: list[str] = []

    def client(index: int) -> None:
        """One channel keeping ``inflight`` Export calls outstanding, like many SDK
        processes behind one connection."""
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            export = channel.unary_unary(
                signal.grpc_method,
                request_serializer=None,
                response_deserializer=signal.response_type.FromString,
            )
            i = index
            outstanding = []
            while not stop.is_set():
                while len(outstanding) < inflight:
                    outstanding.append(export.future(payloads[i % len(payloads)], timeout=60))
                    i += clients
                call = outstanding.pop(0)
                try:
                    call.result()
                    acked[index] += per_request
                except grpc.RpcError as exc:
                    errors.append(exc.code().name)
                    time.sleep(0.2)
            for call in outstanding:
                call.cancel()

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            grpc.channel_ready_future(channel).result(timeout=120)
        threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        time.sleep(2)
        metrics_url = f"http://{env['OTELHOUSE_OTLP_HTTP_ADDR']}/metrics"
        stored_0 = stored_total(signal, server_metrics(metrics_url))
        acked_0, cpu_0, t_0 = sum(acked), proc_cpu_seconds(server.pid), time.perf_counter()
        for remaining in range(int(seconds), 0, -5):
            time.sleep(min(5, remaining))
            now = server_metrics(metrics_url)
            log(
                f"  end to end: {sum(acked) - acked_0:,} {unit} acknowledged, "
                f"{stored_total(signal, now) - stored_0:,.0f} stored so far; backlog "
                f"{now.get('otelhouse_wal_pending_spans', 0):,.0f} {unit}, oldest "
                f"{now.get('otelhouse_wal_drain_lag_seconds', 0):.1f} s"
            )
        acked_1, cpu_1, t_1 = sum(acked), proc_cpu_seconds(server.pid), time.perf_counter()
        metrics = server_metrics(metrics_url)
        stop.set()
        for thread in threads:
            thread.join()
        rss = proc_peak_rss_mib(server.pid)
    finally:
        server.send_signal(SIGTERM)
        server.wait(60)
    if errors:
        log(f"  {len(errors)} failed calls: {sorted(set(errors))}")
    items, elapsed = acked_1 - acked_0, t_1 - t_0
    return EndToEnd(
        acknowledged_per_s=items / elapsed,
        stored_per_s=(stored_total(signal, metrics) - stored_0) / elapsed,
        per_cpu_s=items / max(cpu_1 - cpu_0, 1e-9),
        peak_rss_mib=rss,
        backlog_items=metrics.get("otelhouse_wal_pending_spans", 0.0),
        backlog_age_s=metrics.get("otelhouse_wal_drain_lag_seconds", 0.0),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument(
        "--signal", choices=sorted(WORKLOADS), default="traces", help="what to send (traces)"
    )
    parser.add_argument("--seconds", type=float, default=20, help="end-to-end measuring time")
    parser.add_argument("--clients", type=int, default=8, help="concurrent gRPC clients")
    parser.add_argument("--inflight", type=int, default=16, help="outstanding calls per client")
    parser.add_argument(
        "--per-request", "--spans-per-request", dest="per_request", type=int, default=512,
        help="items (spans, log records) per request",
    )
    parser.add_argument("--batch-rows", type=int, default=50_000, help="rows per direct insert")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE",
        help="extra OTELHOUSE_* setting for the server, e.g. --env OTELHOUSE_WAL_ENABLED=false",
    )
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)

    workload = WORKLOADS[args.signal]
    signal, unit, per_request = workload.signal, workload.unit, args.per_request
    payloads = make_payloads(workload, per_request)
    size = sum(map(len, payloads)) / (len(payloads) * per_request)
    work = Path(tempfile.mkdtemp(prefix="otelhouse-bench-"))
    try:
        log("measuring protobuf decode ...")
        decode = decode_rate(signal, payloads, per_request, 5)
        log("measuring decode + convert ...")
        converted = convert_rate(signal, payloads, per_request)
        log(f"measuring direct {args.batch_rows:,}-row inserts ...")
        insert = insert_rate(signal, payloads, args.batch_rows, work / "direct")
        log(f"measuring end to end for {args.seconds:.0f}s with {args.clients} clients ...")
        e2e = end_to_end(
            workload,
            payloads,
            per_request,
            args.clients,
            args.inflight,
            args.seconds,
            work / "serve",
            extra_env,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"payload: {per_request} {unit}/request, {size:.0f} B/{unit.removesuffix('s')}, "
          f"{args.clients} clients x {args.inflight} in flight, {os.cpu_count()} cores")
    print(f"{'measure':44} {unit + '/s':>12} {'ratio':>8}")
    rows = [
        ("protobuf decode only (ceiling 1)", decode),
        ("decode + convert to columns (Python)", converted),
        (f"direct insert, {args.batch_rows:,}-row batches (ceiling 2)", insert),
        ("end to end, acknowledged (wall clock)", e2e.acknowledged_per_s),
        ("end to end, stored in the same window", e2e.stored_per_s),
        ("end to end, acknowledged per server CPU-second", e2e.per_cpu_s),
    ]
    for name, rate in rows:
        print(f"{name:44} {rate:12,.0f}")
    stored = e2e.stored_per_s
    print(f"stored / decode ceiling:  {stored / decode:.3f}")
    print(f"stored / insert ceiling:  {stored / insert:.3f}")
    print(f"server peak RSS: {e2e.peak_rss_mib:.0f} MiB")
    print(f"write-ahead log backlog at the end: {e2e.backlog_items:,.0f} {unit} not yet stored "
          f"(oldest {e2e.backlog_age_s:.1f} s old)")


if __name__ == "__main__":
    main()

"""Ingest benchmark: spans/s (or log records/s) end to end, against the two ceilings
measured in the same run.

    .venv/bin/python bench/ingest.py [--signal traces|logs] [--seconds 20] [--clients 8]
                                     [--per-request 512] [--no-pin]
                                     [--route NAME=KEY=VALUE,... --route ... --rounds 3]

``--route`` compares server configurations side by side: each route's end-to-end run is
repeated ``--rounds`` times in alternation (A B A B ...) and its medians are printed, each
beside the same ceilings; without ``--route`` there is one route, the defaults.

``--signal`` picks the payloads (``realistic_request`` or ``realistic_logs_request``) and,
through the signal's ``Signal`` (``TRACES`` or ``LOGS``), the request type, the gRPC method,
the conversion and the insert; the measuring below is the same for both. Rates are in the
signal's items (spans, records).

On one core (the default on a machine with two or more): everything the server or the
storage engine does runs pinned to CPU 0 (``taskset``), the load clients to CPU 1, so "per
core" means what one core stores while the machine's other load shares it. Rates on a shared
machine move with its load; the ratios between routes measured in one run are what to quote,
with the load average printed at the start and the end.

1. decode ceiling: bare protobuf decode (``request_type.FromString``) of the same payloads;
2. insert ceilings, in a child process on the server's core, on a fresh store with the full
   schema (indexes, materialized columns and views):
   - INSERT…SELECT: ClickHouse copying the same rows from a Memory table into the signal's
     table with one thread (``max_threads = max_insert_threads = 1``), per wall second and
     per CPU second of the process (merges running meanwhile included);
   - sustained: pre-built 50k-row column batches inserted through the signal's insert for
     the end-to-end duration, merges included;
3. end to end: pre-serialized requests from concurrent gRPC clients → a real ``otelhouse
   serve`` subprocess (its own data directory) → acknowledged, i.e. durably stored. The
   server's CPU time is read from /proc so the rate per core is reported too, with its
   peak RSS. With the write-ahead log on (the default), acknowledged means logged: the
   backlog the drainer has not yet stored is read from ``/metrics`` at the end, so a rate
   storage cannot sustain shows as a growing backlog. The log's series count rows of every
   signal (under ``spans`` names); only one signal is sent here, so they count its items.
   The server's CPU over the window is split by thread from ``/proc/<pid>/task``: Python
   (threads named like the interpreter: gRPC handlers, conversion, log, drainer and the
   Native serialisation of inserts), ClickHouse query threads (the inserts' pipelines) and
   background merges.
"""

from __future__ import annotations

import argparse
import json
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
from otelhouse.storage.tables import LOGS_TABLE, TRACES_TABLE

SERVE = [sys.executable, "-m", "otelhouse.cli", "serve"]

DISTINCT_PAYLOADS = 64


@dataclass(frozen=True)
class Workload:
    """A signal, the builder of its realistic requests (``build(items, seed=, service=)``)
    and the table its rows go to."""

    signal: Signal[Any, Any]
    build: Callable[..., Message]
    table: str

    @property
    def unit(self) -> str:
        """The last word of the signal's ``item``, as rates are printed: ``spans``, ``records``."""
        return self.signal.item.split()[-1]


WORKLOADS = {
    "traces": Workload(TRACES, realistic_request, TRACES_TABLE),
    "logs": Workload(LOGS, realistic_logs_request, LOGS_TABLE),
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


def insert_ceilings(
    workload: Workload, payloads: list[bytes], batch_rows: int, seconds: float, data_dir: Path
) -> dict[str, float]:
    """ClickHouse's own rates for the same rows on a fresh store: ``select_wall`` /
    ``select_cpu`` (one-thread INSERT…SELECT from a Memory table, per wall and per process
    CPU second) and ``sustained_wall`` / ``sustained_cpu`` (``batch_rows``-row batches
    through the signal's insert for ``seconds``, merges included). The engine gets a memory
    limit large enough for the INSERT…SELECT of all the staged rows in one block."""
    signal = workload.signal
    settings = Settings(
        data_dir=data_dir, database="bench_insert", engine_memory_bytes=4 * 1024**3
    )
    client = fresh_store(settings)
    batch = signal.new_columns()
    while len(batch) < batch_rows:
        for payload in payloads:
            batch.extend(convert(signal, payload))
    table = workload.table
    client.command(f"CREATE TABLE bench_stage AS {table} ENGINE = Memory")
    for _ in range(4):
        signal.insert(client, batch, settings={"insert_deduplicate": 0})
    client.command(f"INSERT INTO bench_stage SELECT * FROM {table}")
    staged = int(client.command("SELECT count() FROM bench_stage"))
    one_thread = {"max_threads": 1, "max_insert_threads": 1, "insert_deduplicate": 0}
    select_wall, select_cpu = [], []
    for _ in range(3):
        cpu_0, start = os.times(), time.perf_counter()
        client.command(f"INSERT INTO {table} SELECT * FROM bench_stage", settings=one_thread)
        wall, cpu_1 = time.perf_counter() - start, os.times()
        select_wall.append(staged / wall)
        select_cpu.append(staged / max(_cpu(cpu_1) - _cpu(cpu_0), 1e-9))
    client.command(f"TRUNCATE TABLE {table}")
    rows, cpu_0, start = 0, os.times(), time.perf_counter()
    while time.perf_counter() - start < seconds:
        signal.insert(client, batch, settings={"insert_deduplicate": 0})
        rows += len(batch)
    wall, cpu_1 = time.perf_counter() - start, os.times()
    client.close()
    return {
        "select_wall": statistics.median(select_wall),
        "select_cpu": statistics.median(select_cpu),
        "sustained_wall": rows / wall,
        "sustained_cpu": rows / max(_cpu(cpu_1) - _cpu(cpu_0), 1e-9),
    }


def _cpu(times: os.times_result) -> float:
    return times.user + times.system


def ceilings_in_child(
    args: argparse.Namespace, data_dir: Path, pin: str | None
) -> dict[str, float]:
    """``insert_ceilings`` in a child process (pinned to ``pin`` when given), as chdb allows
    one data directory per process and its threads must share the server's core."""
    command = [
        sys.executable, __file__, "--signal", args.signal, "--per-request", str(args.per_request),
        "--batch-rows", str(args.batch_rows), "--seconds", str(args.seconds),
        "--ceilings-only", str(data_dir),
    ]
    if pin is not None:
        command = ["taskset", "-c", pin, *command]
    done = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int) -> dict[int, tuple[str, float]]:
    """CPU seconds of each live thread of ``pid`` by thread id, with its name."""
    ticks = os.sysconf("SC_CLK_TCK")
    threads = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name, fields = stat.split("(", 1)[1].rsplit(")", 1)
        values = fields.split()
        threads[int(task.name)] = (name, (int(values[11]) + int(values[12])) / ticks)
    return threads


@dataclass(frozen=True)
class CpuSplit:
    python: float
    queries: float
    merges: float
    top: list[tuple[str, float]]


def cpu_split(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]], python_name: str
) -> CpuSplit:
    """The CPU seconds spent between two ``thread_cpu_seconds`` snapshots, by kind of thread
    (threads that ended in between are not counted)."""
    by_name: dict[str, float] = {}
    python = queries = merges = 0.0
    for tid, (name, seconds) in after.items():
        spent = seconds - before.get(tid, (name, 0.0))[1]
        by_name[name] = by_name.get(name, 0.0) + spent
        if name == python_name:
            python += spent
        elif "Merge" in name or "Mutate" in name:
            merges += spent
        else:
            queries += spent
    top = sorted(by_name.items(), key=lambda item: -item[1])[:6]
    return CpuSplit(python, queries, merges, top)


def proc_peak_rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmHWM:")


def proc_rss_mib(pid: int) -> float:
    return _status_mib(pid, "VmRSS:")


def _status_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field):
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
    stored_per_cpu_s: float
    backlog_items: float
    backlog_age_s: float
    cpu: CpuSplit


def end_to_end(
    workload: Workload,
    payloads: list[bytes],
    per_request: int,
    clients: int,
    inflight: int,
    seconds: float,
    data_dir: Path,
    extra_env: dict[str, str],
    pin: str | None,
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
    command = SERVE if pin is None else ["taskset", "-c", pin, *SERVE]
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
        threads_0 = thread_cpu_seconds(server.pid)
        acked_0, cpu_0, t_0 = sum(acked), proc_cpu_seconds(server.pid), time.perf_counter()
        for remaining in range(int(seconds), 0, -5):
            time.sleep(min(5, remaining))
            now = server_metrics(metrics_url)
            log(
                f"  end to end: {sum(acked) - acked_0:,} {unit} acknowledged, "
                f"{stored_total(signal, now) - stored_0:,.0f} stored so far; backlog "
                f"{now.get('otelhouse_wal_pending_spans', 0):,.0f} {unit}, oldest "
                f"{now.get('otelhouse_wal_drain_lag_seconds', 0):.1f} s; server RSS "
                f"{proc_rss_mib(server.pid):.0f} MiB"
            )
        acked_1, cpu_1, t_1 = sum(acked), proc_cpu_seconds(server.pid), time.perf_counter()
        threads_1 = thread_cpu_seconds(server.pid)
        python_name = Path(f"/proc/{server.pid}/comm").read_text().strip()
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
    items, elapsed, cpu = acked_1 - acked_0, t_1 - t_0, max(cpu_1 - cpu_0, 1e-9)
    stored = stored_total(signal, metrics) - stored_0
    return EndToEnd(
        acknowledged_per_s=items / elapsed,
        stored_per_s=stored / elapsed,
        per_cpu_s=items / cpu,
        stored_per_cpu_s=stored / cpu,
        peak_rss_mib=rss,
        cpu=cpu_split(threads_0, threads_1, python_name),
        backlog_items=metrics.get("otelhouse_wal_pending_spans", 0.0),
        backlog_age_s=metrics.get("otelhouse_wal_drain_lag_seconds", 0.0),
    )


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


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
    parser.add_argument(
        "--no-pin", dest="pin", action="store_false",
        help="let the server and the clients use every core (default: server on CPU 0, "
        "clients on CPU 1)",
    )
    parser.add_argument(
        "--route", action="append", default=[], metavar="NAME=KEY=VALUE,...",
        help="a server configuration to compare, e.g. --route base=OTELHOUSE_INSERT_MAX_DELAY_MS=0",
    )
    parser.add_argument("--rounds", type=int, default=1, help="end-to-end runs per route")
    parser.add_argument(
        "--no-ceilings", dest="ceilings", action="store_false",
        help="skip the INSERT…SELECT and sustained-insert ceilings (memory runs)",
    )
    parser.add_argument("--ceilings-only", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    extra_env = dict(item.split("=", 1) for item in args.env)

    workload = WORKLOADS[args.signal]
    signal, unit, per_request = workload.signal, workload.unit, args.per_request
    payloads = make_payloads(workload, per_request)
    if args.ceilings_only is not None:
        ceilings = insert_ceilings(
            workload, payloads, args.batch_rows, args.seconds, args.ceilings_only
        )
        print(json.dumps(ceilings))
        return
    pin = args.pin and (os.cpu_count() or 1) >= 2
    server_cpu = "0" if pin else None
    if pin:
        os.sched_setaffinity(0, {1})
    routes = parse_routes(args.route, extra_env)
    load_before = load_average()
    size = sum(map(len, payloads)) / (len(payloads) * per_request)
    work = Path(tempfile.mkdtemp(prefix="otelhouse-bench-"))
    runs: dict[str, list[EndToEnd]] = {name: [] for name in routes}
    try:
        log("measuring protobuf decode ...")
        decode = decode_rate(signal, payloads, per_request, 5)
        log("measuring decode + convert ...")
        converted = convert_rate(signal, payloads, per_request)
        if args.ceilings:
            log(f"measuring INSERT…SELECT and {args.seconds:.0f}s of {args.batch_rows:,}-row "
                "inserts ...")
        ceilings = (
            ceilings_in_child(args, work / "direct", server_cpu) if args.ceilings else None
        )
        for round_ in range(args.rounds):
            for name, env in routes.items():
                log(f"round {round_ + 1}, route {name}: end to end for {args.seconds:.0f}s "
                    f"with {args.clients} clients ...")
                runs[name].append(end_to_end(
                    workload,
                    payloads,
                    per_request,
                    args.clients,
                    args.inflight,
                    args.seconds,
                    work / f"serve-{name}-{round_}",
                    env,
                    server_cpu,
                ))
                shutil.rmtree(work / f"serve-{name}-{round_}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    where = "server and ClickHouse pinned to CPU 0, clients on CPU 1" if pin else "unpinned"
    print(f"payload: {per_request} {unit}/request, {size:.0f} B/{unit.removesuffix('s')}, "
          f"{args.clients} clients x {args.inflight} in flight, {os.cpu_count()} cores, {where}")
    print(f"load average: {load_before} at the start, {load_average()} at the end")
    print(f"{'ceiling':52} {unit + '/s':>12}")
    measured = [
        ("protobuf decode only (client core)", decode),
        ("decode + convert to columns, Python (client core)", converted),
    ]
    if ceilings is not None:
        measured += [
            ("INSERT…SELECT, one thread", ceilings["select_wall"]),
            ("INSERT…SELECT, per CPU-second", ceilings["select_cpu"]),
            (f"sustained {args.batch_rows:,}-row inserts", ceilings["sustained_wall"]),
            ("sustained inserts, per CPU-second", ceilings["sustained_cpu"]),
        ]
    for name, rate in measured:
        print(f"{name:52} {rate:12,.0f}")
    for name, env in routes.items():
        report_route(name, env, runs[name], ceilings, unit)


def parse_routes(specs: list[str], extra_env: dict[str, str]) -> dict[str, dict[str, str]]:
    """``NAME=KEY=VALUE,KEY=VALUE`` route specs as server environments (each on top of
    ``extra_env``); one route named ``default`` when there are none."""
    if not specs:
        return {"default": dict(extra_env)}
    routes = {}
    for spec in specs:
        name, _, assignments = spec.partition("=")
        env = dict(extra_env)
        for item in filter(None, assignments.split(",")):
            key, value = item.split("=", 1)
            env[key] = value
        routes[name] = env
    return routes


def report_route(
    name: str,
    env: dict[str, str],
    runs: list[EndToEnd],
    ceilings: dict[str, float] | None,
    unit: str,
) -> None:
    """One route's medians over its rounds, and its ratios to the ceilings (when measured)."""
    def median(value: Callable[[EndToEnd], float]) -> float:
        return statistics.median(value(run) for run in runs)

    stored, stored_cpu = median(lambda r: r.stored_per_s), median(lambda r: r.stored_per_cpu_s)
    settings = " ".join(f"{k}={v}" for k, v in sorted(env.items())) or "defaults"
    print(f"\nroute {name} ({settings}), median of {len(runs)} rounds:")
    for label, rate in [
        ("end to end, acknowledged (wall clock)", median(lambda r: r.acknowledged_per_s)),
        ("end to end, stored (wall clock)", stored),
        ("end to end, acknowledged per server CPU-second", median(lambda r: r.per_cpu_s)),
        ("end to end, stored per server CPU-second", stored_cpu),
    ]:
        print(f"  {label:50} {rate:12,.0f}")
    if ceilings is not None:
        print(f"  stored / INSERT…SELECT ceiling:     {stored / ceilings['select_wall']:.3f} "
              f"wall clock, {stored_cpu / ceilings['select_cpu']:.3f} per CPU-second")
        print(f"  stored / sustained-insert ceiling:  {stored / ceilings['sustained_wall']:.3f} "
              f"wall clock, {stored_cpu / ceilings['sustained_cpu']:.3f} per CPU-second")
    python = sum(r.cpu.python for r in runs)
    queries = sum(r.cpu.queries for r in runs)
    merges = sum(r.cpu.merges for r in runs)
    total = max(python + queries + merges, 1e-9)
    busiest: dict[str, float] = {}
    for run in runs:
        for thread, seconds in run.cpu.top:
            busiest[thread] = busiest.get(thread, 0.0) + seconds
    top = sorted(busiest.items(), key=lambda item: -item[1])[:5]
    print(f"  server CPU: Python {python / total:.0%}, ClickHouse queries (inserts) "
          f"{queries / total:.0%}, merges {merges / total:.0%} (busiest threads: "
          + ", ".join(f"{thread} {seconds / len(runs):.1f}s" for thread, seconds in top) + ")")
    print(f"  server peak RSS: {max(r.peak_rss_mib for r in runs):.0f} MiB (highest of the rounds)")
    print(f"  write-ahead log backlog at the end: "
          f"{median(lambda r: r.backlog_items):,.0f} {unit} not yet stored "
          f"(oldest {median(lambda r: r.backlog_age_s):.1f} s old)")


if __name__ == "__main__":
    main()

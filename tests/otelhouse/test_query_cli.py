"""``otelhouse query`` against the real API served by uvicorn on a free loopback port, over
plain HTTP and over TLS with a self-signed certificate."""

from __future__ import annotations

import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from clickhouse_connect.driver.client import Client

from otelhouse.cli import main
from otelhouse.settings import Settings
from otelhouse.query.app import create_app
from otelhouse.core.tls import server_tls
from otelhouse.storage.logs import insert_logs
from otelhouse.storage.traces import insert_spans
from tests.query import log_records
from tests.query.log_records import Log
from tests.query.spans import Event, Span, generate, to_columns
from tests.tls_certs import self_signed
from otelhouse.receiver.metric_points import convert_metrics_request
from otelhouse.storage.metrics import insert_metrics
from tests.query.test_metrics_api import request as metrics_request

TOKEN = "cli-secret"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


class ApiThread:
    """The query app under uvicorn in a background thread, as ``otelhouse serve`` hosts it
    (over TLS when the settings name a certificate)."""

    def __init__(self, settings: Settings) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        tls = server_tls(settings.tls_cert_file, settings.tls_key_file)
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(settings.api_config(), settings.storage_config()),
            log_config=None,
            lifespan="on",
            **(tls.uvicorn_options() if tls else {}),
        )
        self.server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self._socket]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self._thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        self._socket.close()


@pytest.fixture
def spans(storage: Client) -> list[Span]:
    """Generated spans plus one three-level trace with an exception."""
    now = time.time_ns()
    trace = [
        Span(
            "edge",
            "GET /cart",
            now - 10**9,
            9 * 10**8,
            TRACE_ID,
            "a" * 16,
            attributes={"http.response.status_code": "503"},
        ),
        Span("cart", "load", now - 9 * 10**8, 5 * 10**8, TRACE_ID, "b" * 16, "a" * 16, "Server"),
        Span(
            "cart",
            "SELECT carts",
            now - 8 * 10**8,
            10**8,
            TRACE_ID,
            "c" * 16,
            "b" * 16,
            "Client",
            "Error",
            events=(
                Event(
                    now - 8 * 10**8,
                    "exception",
                    {"exception.type": "DbError", "exception.message": "deadlock 42"},
                ),
            ),
            status_message="deadlock detected",
        ),
    ]
    generated = generate(400, start_ns=now - 30 * 60 * 10**9, end_ns=now)
    insert_spans(storage, to_columns(trace + generated))
    return trace + generated


@pytest.fixture
def start_api(settings: Settings, storage: Client) -> Iterator[Callable[..., ApiThread]]:
    started: list[ApiThread] = []

    def start(**changes: object) -> ApiThread:
        started.append(ApiThread(settings.model_copy(update=changes)))
        return started[-1]

    yield start
    for api in started:
        api.stop()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["query", *argv]) == 0
    return capsys.readouterr().out


def test_services_json_counts_every_span(
    start_api: Callable[..., ApiThread], spans: list[Span], capsys: pytest.CaptureFixture[str]
) -> None:
    api = start_api()
    body = json.loads(run_cli(capsys, "services", "--json", "--url", api.url))
    assert {row["service"]: row["spans"] for row in body["services"]} == Counter(
        s.service for s in spans
    )


def test_operations_table_is_aligned(
    start_api: Callable[..., ApiThread], spans: list[Span], capsys: pytest.CaptureFixture[str]
) -> None:
    api = start_api()
    out = run_cli(capsys, "operations", "--url", api.url, "--service", "svc-0", "--sort", "count")
    header, *rows = out.splitlines()
    assert header.split()[:4] == ["SERVICE", "OPERATION", "KIND", "SPANS"]
    counts = Counter((s.name, s.kind) for s in spans if s.service == "svc-0")
    spans_end = header.index("SPANS") + len("SPANS")
    got = {}
    for row in rows:
        service, operation, kind, count = row.split()[:4]
        assert service == "svc-0"
        assert row[:spans_end].endswith(count)
        got[operation, kind] = int(count)
    assert got == counts
    assert [int(r.split()[3]) for r in rows] == sorted(got.values(), reverse=True)


def test_trace_is_printed_as_a_tree(
    start_api: Callable[..., ApiThread], spans: list[Span], capsys: pytest.CaptureFixture[str]
) -> None:
    api = start_api()
    out = run_cli(capsys, "trace", TRACE_ID, "--url", api.url)
    header, *rows = out.splitlines()
    span_column = slice(header.index("SPAN "), header.index("KIND"))
    assert [row[span_column].rstrip() for row in rows] == [
        "GET /cart",
        "  load",
        "    SELECT carts",
    ]
    listed = json.loads(run_cli(capsys, "traces", "--json", "--url", api.url, "--service", "edge"))
    assert [t["trace_id"] for t in listed["traces"]] == [TRACE_ID]


def test_trace_shows_http_status_message_and_exception(
    start_api: Callable[..., ApiThread], spans: list[Span], capsys: pytest.CaptureFixture[str]
) -> None:
    api = start_api()
    header, root, _, query = run_cli(capsys, "trace", TRACE_ID, "--url", api.url).splitlines()
    http = slice(header.index("HTTP"), header.index("SPAN ID"))
    assert (root[http].strip(), query[http].strip()) == ("503", "-")
    assert query.rstrip().endswith("deadlock detected  DbError: deadlock 42")


@pytest.mark.parametrize(
    ("view", "first_header", "argv"),
    [
        ("latency", "START", ("--service", "svc-0", "--step", "5m")),
        ("errors", "SERVICE", ("--group-by", "status_code")),
        ("summary", "REQUESTS", ()),
        ("endpoints", "SERVICE", ("--limit", "3")),
        ("requests", "TIME", ("--limit", "5")),
        ("map", "CALLER", ()),
    ],
)
def test_every_api_view_has_a_subcommand(
    start_api: Callable[..., ApiThread],
    spans: list[Span],
    capsys: pytest.CaptureFixture[str],
    view: str,
    first_header: str,
    argv: tuple[str, ...],
) -> None:
    api = start_api()
    out = run_cli(capsys, view, "--url", api.url, *argv)
    header, *rows = out.splitlines()
    assert header.split()[0] == first_header
    assert rows and "Traceback" not in out
    body = json.loads(run_cli(capsys, view, "--json", "--url", api.url, *argv))
    assert "start" in body and "end" in body


def test_exceptions_table(
    start_api: Callable[..., ApiThread], spans: list[Span], capsys: pytest.CaptureFixture[str]
) -> None:
    api = start_api()
    out = run_cli(capsys, "exceptions", "--url", api.url, "--service", "cart")
    header, row = out.splitlines()
    assert header.split()[:4] == ["COUNT", "SERVICE", "TYPE", "MESSAGE"]
    assert row.split()[:5] == ["1", "cart", "DbError", "deadlock", "<n>"]
    assert row.rstrip().endswith(TRACE_ID)


def test_token_from_flag_or_env(
    start_api: Callable[..., ApiThread],
    storage: Client,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api = start_api(api_tokens=TOKEN)
    with pytest.raises(SystemExit, match="--token or set OTELHOUSE_API_TOKEN"):
        main(["query", "services", "--url", api.url])
    assert "(no services in the range)" in run_cli(
        capsys, "services", "--url", api.url, "--token", TOKEN
    )
    monkeypatch.setenv("OTELHOUSE_API_TOKEN", TOKEN)
    assert json.loads(run_cli(capsys, "services", "--json", "--url", api.url))["services"] == []


def test_bad_parameter_is_reported_by_name(
    start_api: Callable[..., ApiThread], storage: Client
) -> None:
    api = start_api()
    with pytest.raises(SystemExit, match="422: since: expected a number and a unit"):
        main(["query", "services", "--url", api.url, "--since", "soon"])


def test_server_not_running() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    with pytest.raises(SystemExit, match="cannot reach the otelhouse API.*otelhouse serve"):
        main(["query", "services", "--url", f"127.0.0.1:{port}"])


def test_installed_command_reads_the_address_from_env(
    start_api: Callable[..., ApiThread], spans: list[Span]
) -> None:
    api = start_api()
    otelhouse = Path(sys.executable).with_name("otelhouse")
    env = {**os.environ, "OTELHOUSE_API_ADDR": api.url.removeprefix("http://")}
    done = subprocess.run(
        [str(otelhouse), "query", "services", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {row["service"] for row in json.loads(done.stdout)["services"]} == {
        s.service for s in spans
    }


def test_logs_table_and_json(
    start_api: Callable[..., ApiThread], storage: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    now = time.time_ns()
    logs = [
        Log(now - 3 * 10**9, "cart", 17, "Connection refused", TRACE_ID, severity_text="ERROR"),
        Log(now - 2 * 10**9, "cart", 9, "connection refused\nretrying", severity_text="INFO"),
        Log(now - 10**9, "cart", 21, "all refused", severity_text="FATAL"),
        Log(now, "edge", 21, "Connection refused", severity_text="FATAL"),
    ]
    insert_logs(storage, log_records.to_columns(logs))
    api = start_api()
    filters = ["--service", "cart", "--severity", "warn", "--grep", "CONNECTION"]
    out = run_cli(capsys, "logs", "--url", api.url, *filters)
    header, row = out.splitlines()
    assert header.split() == ["TIME", "SEVERITY", "SERVICE", "TRACE", "ID", "BODY"]
    assert row.split()[1:] == ["ERROR", "cart", TRACE_ID, "Connection", "refused"]
    body = json.loads(run_cli(capsys, "logs", "--json", "--url", api.url, "--service", "cart"))
    assert [r["body"] for r in body["logs"]] == [log.body for log in reversed(logs[:3])]
    out = run_cli(capsys, "logs", "--url", api.url, "--severity", "info", "--grep", "retrying")
    assert out.splitlines()[1].endswith("connection refused\\nretrying")


class LineReader:
    """A process's stdout lines, read in a thread so a test can wait with a timeout."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(process,), daemon=True).start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        for line in process.stdout or ():
            self.lines.put(line.rstrip("\n"))

    def take(self, count: int, timeout_s: float = 30) -> list[str]:
        deadline = time.monotonic() + timeout_s
        return [
            self.lines.get(timeout=max(0.1, deadline - time.monotonic())) for _ in range(count)
        ]


def body_of(line: str) -> str:
    """The last column of a ``--follow`` line (columns are two spaces apart)."""
    return line.rsplit("  ", 1)[-1]


def test_follow_prints_new_records_once_and_exits_0_on_ctrl_c(
    start_api: Callable[..., ApiThread], storage: Client
) -> None:
    def insert(*logs: Log) -> None:
        insert_logs(storage, log_records.to_columns(logs))

    now = time.time_ns()
    insert(
        Log(now - 2 * 10**9, "tail", 9, "older record"),
        Log(now - 10**9, "tail", 13, "newest before start"),
        Log(now - 10**9, "other", 13, "another service"),
    )
    api = start_api()
    otelhouse = Path(sys.executable).with_name("otelhouse")
    command = ["query", "logs", "--follow", "--interval", "0.2", "--service", "tail"]
    process = subprocess.Popen(
        [str(otelhouse), *command, "--url", api.url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        reader = LineReader(process)
        assert [body_of(line) for line in reader.take(2)] == ["older record", "newest before start"]
        arrived = time.time_ns()
        insert(
            Log(arrived, "tail", 17, "just arrived", TRACE_ID, severity_text="ERROR"),
            Log(arrived, "tail", 17, "same instant", TRACE_ID, severity_text="ERROR"),
        )
        both = reader.take(2)
        assert sorted(map(body_of, both)) == ["just arrived", "same instant"]
        assert all(line.split()[1:4] == ["ERROR", "tail", TRACE_ID] for line in both)
        insert(Log(time.time_ns(), "tail", 9, "last"))
        assert [body_of(line) for line in reader.take(1)] == ["last"]
        time.sleep(1)
        assert reader.lines.empty()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0, process.stderr.read() if process.stderr else ""
    finally:
        if process.poll() is None:
            process.kill()


@pytest.fixture
def tls_api(tmp_path: Path, start_api: Callable[..., ApiThread]) -> tuple[ApiThread, Path]:
    """The API over TLS with a self-signed certificate, which is its own CA."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl CLI")
    cert, key = self_signed(tmp_path)
    return start_api(tls_cert_file=cert, tls_key_file=key), cert


def test_https_api_trusted_through_ca_file(
    tls_api: tuple[ApiThread, Path],
    spans: list[Span],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api, cert = tls_api
    expected = Counter(s.service for s in spans)
    trusted = ["--ca-file", str(cert)]
    body = json.loads(run_cli(capsys, "services", "--json", "--url", api.url, *trusted))
    assert {row["service"]: row["spans"] for row in body["services"]} == expected
    monkeypatch.setenv("OTELHOUSE_API_ADDR", api.url.removeprefix("https://"))
    monkeypatch.setenv("OTELHOUSE_TLS_CERT_FILE", str(cert))
    body = json.loads(run_cli(capsys, "services", "--json", *trusted))
    assert {row["service"]: row["spans"] for row in body["services"]} == expected
    with pytest.raises(SystemExit):
        main(["query", "services", "--help"])
    assert "--ca-file PEM" in capsys.readouterr().out


def test_https_failures_say_what_to_change(
    tls_api: tuple[ApiThread, Path], tmp_path: Path
) -> None:
    api, cert = tls_api
    other_cert, _ = self_signed(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    plain = api.url.replace("https://", "http://")
    cases = {
        "system CAs only": ((api.url,), "does not trust .*--ca-file"),
        "another CA": ((api.url, "--ca-file", str(other_cert)), "does not trust"),
        "plain http": ((plain, "--ca-file", str(cert)), "use an https:// --url"),
        "missing CA file": ((api.url, "--ca-file", str(tmp_path / "no.pem")), "--ca-file .*no.pem"),
        "CA file not PEM": ((api.url, "--ca-file", str(garbage)), "garbage.pem .*must be a PEM"),
    }
    for label, (argv, message) in cases.items():
        with pytest.raises(SystemExit, match=message):
            main(["query", "services", "--url", *argv])
            pytest.fail(label)


def test_metrics_list_and_one_metric_by_route(
    start_api: Callable[..., ApiThread], storage: Client, capsys: pytest.CaptureFixture[str]
) -> None:
    converted = convert_metrics_request(metrics_request())
    insert_metrics(storage, converted.metrics)
    api = start_api()
    header, *rows = run_cli(capsys, "metrics", "--url", api.url, "--service", "shop").splitlines()
    assert header.split()[:3] == ["METRIC", "TYPE", "UNIT"]
    assert [row.split()[:2] for row in rows] == [
        ["jobs", "sum"], ["latency", "histogram"], ["requests", "sum"], ["temperature", "gauge"]
    ]
    args = ("metric", "latency", "--url", api.url, "--since", "1h", "--step", "60")
    body = json.loads(run_cli(capsys, *args, "--agg", "p95", "--group-by", "route", "--json"))
    assert body["agg"] == "p95" and [s["labels"] for s in body["series"]] == [
        {"route": "/a"}, {"route": "/b"}
    ]
    header, *rows = run_cli(capsys, *args, "--agg", "avg", "--where", "route:/a").splitlines()
    assert header.split() == ["SERIES", "TIME", "VALUE"]
    assert [row.split()[0] for row in rows] == ["(all)"] and rows[0].endswith("5.45455")

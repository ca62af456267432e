"""``otelhouse serve`` as a separate process, the way users run it.

chdb lets one process own a data directory, so a test that runs ``serve`` gives it a data
directory of its own and reads the store back from yet another fresh process.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from otelhouse.core.addresses import free_port

SERVE = [sys.executable, "-m", "otelhouse.cli", "serve"]


def serve_env(data_dir: Path, **settings: object) -> dict[str, str]:
    """Environment for ``serve`` on ``data_dir`` with every listener on a free loopback port;
    ``settings`` (e.g. ``otlp_grpc_addr=...``, ``wal_enabled=False``) override as
    ``OTELHOUSE_*`` variables."""
    ports = {
        "otlp_grpc_addr": f"127.0.0.1:{free_port()}",
        "otlp_http_addr": f"127.0.0.1:{free_port()}",
        "api_addr": f"127.0.0.1:{free_port()}",
    }
    values = {"data_dir": data_dir, **ports, **settings}
    return {**os.environ, **{f"OTELHOUSE_{k.upper()}": str(v) for k, v in values.items()}}


def start_serve(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*SERVE, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


@contextmanager
def serving(env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[str]]:
    """``serve`` for the duration of the block, killed if the block ends without stopping it
    (a failed assertion must not leave a process holding the data directory)."""
    process = start_serve(env, *args)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def stop_serve(process: subprocess.Popen[str], timeout: float = 60) -> str:
    """SIGTERM, as an init system stops it; everything it printed."""
    process.send_signal(signal.SIGTERM)
    return process.communicate(timeout=timeout)[0]


def run_serve(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``serve`` expected to refuse to start: its exit status and messages."""
    return subprocess.run([*SERVE, *args], env=env, capture_output=True, text=True, timeout=timeout)


def query_store(data_dir: Path, sql: str) -> list[str]:
    """First column of ``sql`` over the store in ``data_dir``, read from a fresh process."""
    code = (
        "import clickhouse_connect, sys;"
        "c = clickhouse_connect.get_client(interface='chdb', path=sys.argv[1]);"
        "print('\\n'.join(str(r[0]) for r in c.query(sys.argv[2]).result_rows))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(data_dir), sql], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.split()

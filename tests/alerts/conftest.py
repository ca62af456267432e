"""A loopback webhook receiver (a real HTTP server recording POSTs) and helpers that store
spans and log records at chosen times."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.client import Client

from otelhouse.alerts.evaluator import Evaluator, RulesFile
from otelhouse.alerts.notify import Notifier
from otelhouse.settings import Settings
from otelhouse.storage import open_client
from otelhouse.storage.tables import LOGS_TABLE, TRACES_TABLE

EXTERNAL_URL = "http://otelhouse.test:8080"


class Hook:
    """Records every POST body; answers ``status`` after ``delay_s``."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        self.attempts = 0
        self.status = 200
        self.delay_s = 0.0
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.attempts += 1
                time.sleep(hook.delay_s)
                if hook.status == 200:
                    hook.posts.append(json.loads(body))
                self.send_response(hook.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


@pytest.fixture
def notifier() -> Iterator[Notifier]:
    notifier = Notifier(EXTERNAL_URL, timeout_s=0.5, max_attempts=3, backoff_s=0.05)
    yield notifier
    notifier.close(timeout_s=0)


class Harness:
    """Rules written to a file, an evaluator on its own client, data stored on demand."""

    def __init__(self, settings: Settings, storage: Client, path: Path, notifier: Notifier) -> None:
        self.settings = settings
        self.storage = storage
        self.path = path
        self.notifier = notifier
        self.clients: list[Client] = []
        self.rules = RulesFile(path)
        self.evaluator: Evaluator | None = None

    def write_rules(self, text: str) -> None:
        self.path.write_text(text, encoding="utf-8")

    def start(self, notifier: Notifier | None = None) -> Evaluator:
        """A fresh evaluator (as after a restart) over the same store and rules file."""
        client = open_client(self.settings.storage_config())
        self.clients.append(client)
        self.rules = RulesFile(self.path)
        assert self.rules.reload(), self.rules.errors
        self.evaluator = Evaluator(client, self.rules, notifier or self.notifier)
        return self.evaluator

    def spans(self, at: datetime, n: int, *, service: str = "checkout", errors: int = 0,
              duration_ms: float = 10, operation: str = "POST /checkout") -> None:
        rows = [
            [at, f"{i:032x}", f"{i:016x}", "", operation, "Server", service,
             "Error" if i < errors else "Ok", int(duration_ms * 1e6)]
            for i in range(n)
        ]
        self.storage.insert(TRACES_TABLE, rows, column_names=[
            "Timestamp", "TraceId", "SpanId", "ParentSpanId", "SpanName", "SpanKind",
            "ServiceName", "StatusCode", "Duration",
        ])

    def logs(self, at: datetime, n: int, *, service: str = "auth", severity: int = 17,
             body: str = "login failed for user") -> None:
        rows = [[at, service, severity, "ERROR", body] for _ in range(n)]
        self.storage.insert(LOGS_TABLE, rows, column_names=[
            "Timestamp", "ServiceName", "SeverityNumber", "SeverityText", "Body",
        ])

    def close(self) -> None:
        for client in self.clients:
            client.close()


@pytest.fixture
def harness(settings: Settings, storage: Client, tmp_path: Path, notifier: Notifier) -> Iterator[Harness]:
    h = Harness(settings, storage, tmp_path / "rules.yaml", notifier)
    yield h
    h.close()

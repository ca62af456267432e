"""What OTLP/HTTP receiver tests share besides fixtures (those are in ``conftest.py``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from clickhouse_connect.driver.client import Client

from otelhouse.receiver.http_service import OtlpHttpReceiver

if TYPE_CHECKING:
    from tests.conftest import ReceiverThread

StartHttpReceiver = Callable[..., "HttpReceiver"]


@dataclass
class HttpReceiver:
    thread: ReceiverThread
    http: OtlpHttpReceiver
    tls: bool = False

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.http.port}"

    @property
    def traces_url(self) -> str:
        return f"{self.url}/v1/traces"


def stored_count(storage: Client) -> int:
    return storage.query("SELECT count() FROM otel_traces").result_rows[0][0]

"""TLS on both OTLP ports from ``tls_cert_file``/``tls_key_file``: the SDK exporters connect
with the (self-signed) certificate as their root, plaintext clients do not get through, and
unusable files stop start-up with a message naming them."""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter

from otelhouse.settings import Settings
from otelhouse.core.tls import TlsConfigError, server_tls
from tests.receiver.http_harness import HttpReceiver, StartHttpReceiver, stored_count
from tests.tls_certs import requires_openssl, self_signed

pytestmark = requires_openssl


@pytest.fixture
def tls_receiver(
    tmp_path: Path, start_http_receiver: StartHttpReceiver
) -> tuple[HttpReceiver, Path]:
    cert, key = self_signed(tmp_path)
    return start_http_receiver(tls_cert_file=cert, tls_key_file=key), cert


def export_one(exporter: SpanExporter, name: str) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("tls").start_as_current_span(name):
        pass
    provider.shutdown()


def test_sdk_exporters_store_over_tls(
    tls_receiver: tuple[HttpReceiver, Path], storage: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets these env vars override a session's own CA file (psf/requests#3829).
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    receiver, cert = tls_receiver
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    export_one(
        GrpcExporter(
            endpoint=f"localhost:{receiver.thread.port}", credentials=credentials, timeout=10
        ),
        "over grpc tls",
    )
    export_one(
        HttpExporter(endpoint=receiver.traces_url, certificate_file=str(cert), timeout=10),
        "over https",
    )
    names = {row[0] for row in storage.query("SELECT SpanName FROM otel_traces").result_rows}
    assert names == {"over grpc tls", "over https"}


def test_plaintext_and_untrusted_clients_get_nothing_through(
    tls_receiver: tuple[HttpReceiver, Path], storage: Client, tmp_path: Path
) -> None:
    receiver, _ = tls_receiver
    other_cert, _ = self_signed(tmp_path, "other")
    with grpc.insecure_channel(receiver.thread.endpoint) as channel:
        with pytest.raises(grpc.FutureTimeoutError):
            grpc.channel_ready_future(channel).result(timeout=2)
    with pytest.raises(httpx.HTTPError):
        httpx.post(receiver.traces_url.replace("https:", "http:"), content=b"", timeout=5)
    with pytest.raises(httpx.ConnectError):
        trusting_other = ssl.create_default_context(cafile=str(other_cert))
        httpx.post(receiver.traces_url, content=b"", timeout=5, verify=trusting_other)
    assert stored_count(storage) == 0


def test_unusable_tls_settings_are_named(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    other_cert, other_key = self_signed(tmp_path, "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    cases = {
        "cert only": ({"tls_cert_file": cert}, "set both or neither"),
        "key only": ({"tls_key_file": key}, "set both or neither"),
        "missing file": ({"tls_cert_file": tmp_path / "nope.crt", "tls_key_file": key}, "nope.crt"),
        "foreign key": ({"tls_cert_file": cert, "tls_key_file": other_key}, "must belong"),
        "not pem": ({"tls_cert_file": garbage, "tls_key_file": key}, "garbage.pem"),
    }
    for label, (files, message) in cases.items():
        with pytest.raises(TlsConfigError, match=message):
            server_tls(files.get("tls_cert_file"), files.get("tls_key_file"))
            pytest.fail(label)
    assert server_tls(None, None) is None
    assert server_tls(other_cert, other_key) is not None

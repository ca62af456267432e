"""``otelhouse serve --tls-cert-file``: the query API uses the receivers' certificate, so no
listener stays plaintext, and an unusable file stops start-up with a message naming it."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import httpx
import pytest

from otelhouse.core.health import HealthRegistry
from otelhouse.serve import StartupError, start_api
from otelhouse.settings import Settings
from tests.serve_process import run_serve, serve_env, serving, stop_serve
from tests.tls_certs import requires_openssl, self_signed

pytestmark = requires_openssl


def wait_for_https(url: str, trusted: ssl.SSLContext, deadline_s: float = 60) -> httpx.Response:
    deadline = time.monotonic() + deadline_s
    while True:
        try:
            return httpx.get(url, verify=trusted, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_query_api_is_served_over_tls_only(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    env = serve_env(tmp_path / "data", tls_cert_file=cert, tls_key_file=key)
    api = f"127.0.0.1:{env['OTELHOUSE_API_ADDR'].rsplit(':', 1)[1]}"
    trusted = ssl.create_default_context(cafile=str(cert))
    with serving(env) as process:
        health = wait_for_https(f"https://{api}/healthz", trusted)
        assert health.status_code == 200 and health.json()["storage"] == "ok"
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://{api}/healthz", timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(f"https://{api}/healthz", timeout=5)
        output = stop_serve(process)
    assert process.returncode == 0, output
    assert f"query API on https://{api}" in output


def test_unusable_certificate_stops_start_up(tmp_path: Path, settings: Settings) -> None:
    _, key = self_signed(tmp_path)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")
    result = run_serve(serve_env(tmp_path / "data", tls_cert_file=garbage, tls_key_file=key))
    assert result.returncode == 1
    assert "garbage.pem" in result.stderr and "must be PEM" in result.stderr
    unusable = settings.model_copy(update={"tls_cert_file": garbage, "tls_key_file": key})
    with pytest.raises(StartupError, match="garbage.pem .*must be PEM"):
        asyncio.run(
            start_api(unusable.api_config(), unusable.storage_config(), HealthRegistry())
        )

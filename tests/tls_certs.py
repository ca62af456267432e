"""Throwaway TLS certificates for tests that serve over TLS (the openssl CLI makes them)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

requires_openssl = pytest.mark.skipif(
    shutil.which("openssl") is None, reason="needs the openssl CLI"
)


def self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """A one-day self-signed certificate for localhost and 127.0.0.1, and its key: the
    certificate is its own CA, so clients trust it by loading it."""
    cert, key = directory / f"{name}.crt", directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key

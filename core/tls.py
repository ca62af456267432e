"""Optional TLS for every listener (OTLP gRPC, OTLP HTTP, the query API), from a PEM
certificate and key.

The pair is loaded into an ``ssl`` context once at start-up, so a missing file, a key that
does not match its certificate or a non-PEM file stops ``serve`` with a clear message instead
of failing later, one handshake at a time.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc


class TlsConfigError(ValueError):
    """The TLS settings cannot be used; the message says which file and why."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    cert_file: Path
    key_file: Path

    def grpc_credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key_file.read_bytes(), self.cert_file.read_bytes())]
        )

    def uvicorn_options(self) -> dict[str, str]:
        return {"ssl_certfile": str(self.cert_file), "ssl_keyfile": str(self.key_file)}


def server_tls(cert: Path | None, key: Path | None) -> ServerTls | None:
    """``None`` when TLS is off; raises ``TlsConfigError`` when only half of it is set or the
    files do not form a usable certificate/key pair."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        raise TlsConfigError(
            "TLS needs both --tls-cert-file and --tls-key-file (OTELHOUSE_TLS_CERT_FILE, "
            "OTELHOUSE_TLS_KEY_FILE); set both or neither"
        )
    for path in (cert, key):
        if not path.is_file():
            raise TlsConfigError(f"TLS file {path} does not exist or is not a file")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (ssl.SSLError, OSError) as exc:
        raise TlsConfigError(
            f"cannot use {cert} with key {key} ({exc}); both must be PEM and the key must "
            "belong to the certificate"
        ) from None
    return ServerTls(cert, key)

"""What the query API needs to know: where it listens, whom it lets in, its certificate.

The composition root (``otelhouse.settings``) builds an :class:`ApiConfig` from the user's
settings; the API never sees the rest of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from otelhouse.core.addresses import split_host_port
from otelhouse.core.tls import ServerTls, server_tls


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """``addr`` is ``host:port`` (port 0 picks a free one); an empty ``tokens`` leaves the API
    open; both TLS files or neither (checked by :meth:`tls`)."""

    addr: str = "127.0.0.1:8080"
    tokens: frozenset[str] = frozenset()
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None

    def __post_init__(self) -> None:
        split_host_port(self.addr)

    def tls(self) -> ServerTls | None:
        """The certificate and key to serve with, None for plain HTTP; raises
        :class:`otelhouse.core.tls.TlsConfigError` when the files are unusable."""
        return server_tls(self.tls_cert_file, self.tls_key_file)

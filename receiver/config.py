"""What the OTLP receiver needs to know, and nothing else: built by the composition root
(``Settings.receiver_config()``), never read from the environment here."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from otelhouse.receiver.limits import DEFAULT_LIMITS, ConvertLimits

DEFAULT_MAX_INFLIGHT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceiverConfig:
    """Listen addresses (``host:port``; port 0 picks a free one), accepted bearer tokens
    (empty: no auth), TLS files (both or neither), the largest request after decompression,
    conversion limits, batching (rows per write, longest wait in seconds), the queue bound in
    rows waiting for storage per signal, and the byte budget of request bodies held at once."""

    grpc_addr: str
    http_addr: str
    max_request_bytes: int
    batch_max_rows: int
    batch_max_delay_s: float
    queue_max_rows: int
    max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES
    tokens: frozenset[str] = frozenset()
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    limits: ConvertLimits = field(default=DEFAULT_LIMITS)

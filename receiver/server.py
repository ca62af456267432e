"""The OTLP/gRPC server: binds the port, owns the batcher, shuts down without losing spans."""

from __future__ import annotations

import asyncio
import logging

import grpc

from otelhouse.settings import Settings
from otelhouse.core.tokens import BearerTokens
from otelhouse.receiver.auth import GrpcBearerAuth
from otelhouse.receiver.batcher import Batcher, Sink
from otelhouse.receiver.grpc_service import TraceExportHandler
from otelhouse.receiver.ingest import TraceIngest
from otelhouse.receiver.limits import ConvertLimits
from otelhouse.receiver.metrics import ReceiverMetrics, inflight_samples
from otelhouse.receiver.stats import IngestStats, LatencyHistogram, timed
from otelhouse.core.tls import server_tls

log = logging.getLogger(__name__)

GRPC_OVERHEAD_BYTES = 64 * 1024


class GrpcReceiver:
    """``start`` binds and serves; ``stop`` refuses new calls, lets accepted ones finish and
    flushes every accepted span to the sink before returning.

    It owns the batcher and the ``TraceIngest`` in front of it, which the OTLP/HTTP receiver
    shares, so both transports fill the same batches and the same queue bound.
    """

    def __init__(self, settings: Settings, sink: Sink, *, stats: IngestStats | None = None) -> None:
        self.settings = settings
        self.stats = stats or IngestStats()
        self.write_latency = LatencyHistogram()
        self.batcher = Batcher(
            timed(sink, self.write_latency),
            max_rows=settings.batch_max_rows,
            max_delay_s=settings.batch_max_delay_ms / 1000,
            max_queued_rows=settings.queue_max_rows,
            stats=self.stats,
        )
        self.ingest = TraceIngest(
            self.batcher,
            ConvertLimits.from_settings(settings),
            max_inflight_bytes=settings.max_inflight_bytes,
        )
        self.metrics = ReceiverMetrics(
            self.stats,
            self.write_latency,
            lambda: self.batcher.queued_rows,
            settings.queue_max_rows,
        )
        self.metrics.add_provider(lambda: inflight_samples(self.ingest.inflight))
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Raises ``TlsConfigError`` for unusable TLS files, ``OSError`` when the port is taken."""
        tls = server_tls(self.settings.tls_cert_file, self.settings.tls_key_file)
        tokens = BearerTokens(self.settings.otlp_token_set)
        limit = self.settings.max_request_bytes
        self._server = grpc.aio.server(
            interceptors=[GrpcBearerAuth(tokens, self.stats)] if tokens.required else None,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", GRPC_OVERHEAD_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers((TraceExportHandler(self.ingest).generic_handler(),))
        addr = self.settings.otlp_grpc_addr
        if tls is None:
            self.port = self._server.add_insecure_port(addr)
        else:
            self.port = self._server.add_secure_port(addr, tls.grpc_credentials())
        if self.port == 0:
            raise OSError(f"cannot listen on {addr} for OTLP/gRPC")
        self.batcher.start()
        await self._server.start()
        log.info("OTLP/gRPC receiver listening on %s%s", self.address, " (TLS)" if tls else "")
        return self.port

    @property
    def address(self) -> str:
        host = self.settings.otlp_grpc_addr.rpartition(":")[0]
        return f"{host}:{self.port}"

    def health(self) -> dict[str, object]:
        """Queue depth and bound for ``/healthz``: how close ingest is to refusing."""
        return {
            "queued_spans": self.batcher.queued_rows,
            "queue_max_spans": self.settings.queue_max_rows,
            "inflight_bytes": self.ingest.inflight.held,
            "inflight_max_bytes": self.ingest.inflight.limit,
            "spans_stored": self.stats.stored,
        }

    async def stop(self, grace_s: float = 10.0) -> None:
        """New calls are refused at once; the batcher flushes immediately (not after its
        delay) so calls in flight get their answer within the grace period."""
        if self._server is None:
            await self.batcher.stop()
        else:
            await asyncio.gather(self._server.stop(grace_s), self.batcher.stop())
        log.info("OTLP/gRPC receiver stopped; %d spans stored in total", self.stats.stored)

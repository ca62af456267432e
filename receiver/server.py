"""The OTLP/gRPC server: binds the port and serves one ``Export`` method per signal of the
``Receiver`` it borrows."""

from __future__ import annotations

import logging

import grpc

from otelhouse.core.tls import server_tls
from otelhouse.core.tokens import BearerTokens
from otelhouse.receiver.auth import GrpcBearerAuth
from otelhouse.receiver.grpc_service import ExportHandler
from otelhouse.receiver.pipeline import Receiver

log = logging.getLogger(__name__)

GRPC_OVERHEAD_BYTES = 64 * 1024


class GrpcReceiver:
    """``start`` binds and serves; ``stop`` refuses new calls and lets accepted ones finish
    (their rows are flushed by ``Receiver.stop``, which the caller runs alongside)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.config = receiver.config
        self._server: grpc.aio.Server | None = None
        self.port: int | None = None

    async def start(self) -> int:
        """Raises ``TlsConfigError`` for unusable TLS files, ``OSError`` when the port is taken."""
        config = self.config
        tls = server_tls(config.tls_cert_file, config.tls_key_file)
        tokens = BearerTokens(config.tokens)
        self._server = grpc.aio.server(
            interceptors=(
                [GrpcBearerAuth(tokens, self.receiver.auth_stats)] if tokens.required else None
            ),
            options=[
                ("grpc.max_receive_message_length", config.max_request_bytes),
                ("grpc.max_send_message_length", GRPC_OVERHEAD_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._server.add_generic_rpc_handlers(
            tuple(ExportHandler(p).generic_handler() for p in self.receiver.pipelines)
        )
        if tls is None:
            self.port = self._server.add_insecure_port(config.grpc_addr)
        else:
            self.port = self._server.add_secure_port(config.grpc_addr, tls.grpc_credentials())
        if self.port == 0:
            raise OSError(f"cannot listen on {config.grpc_addr} for OTLP/gRPC")
        await self._server.start()
        log.info("OTLP/gRPC receiver listening on %s%s", self.address, " (TLS)" if tls else "")
        return self.port

    @property
    def address(self) -> str:
        host = self.config.grpc_addr.rpartition(":")[0]
        return f"{host}:{self.port}"

    async def stop(self, grace_s: float = 10.0) -> None:
        """New calls are refused at once; calls in flight get up to ``grace_s`` seconds."""
        if self._server is not None:
            await self._server.stop(grace_s)

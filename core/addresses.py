"""Listen addresses as ``host:port`` strings, as settings and flags spell them."""

from __future__ import annotations

import socket


def split_host_port(addr: str) -> tuple[str, int]:
    """Split ``host:port`` (IPv6 as ``[::1]:4317``) and check the port."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected host:port, got {addr!r}")
    return host.strip("[]") or "0.0.0.0", int(port)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (the OS picks it), for a listener started next."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]

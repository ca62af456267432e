"""Hostile input for the trace APIs' injection tests, and the fixture that lets it through
the test client unchanged."""

from __future__ import annotations

import httpx
import pytest

INJECTION_CORPUS = (
    "'",
    '"',
    "' OR 1=1 --",
    "{x:String}",
    "x; DROP TABLE otel_traces",
    "nul\x00byte",
    "\\' \\\\",
    "m" * 1_000_000,
)


@pytest.fixture
def long_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx refuses URLs over 64 KiB on the client side; the 1 MB corpus entry must reach
    the app, so the client-side guard is raised for the test using this fixture."""
    monkeypatch.setattr(httpx._urlparse, "MAX_URL_LENGTH", 8 * 1024 * 1024)

"""Receiver fixtures beyond the shared ones (the receivers themselves are in
``tests/conftest.py``)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=20) as client:
        yield client

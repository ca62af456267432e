"""Which storage failures mean "not now" (503 with ``Retry-After``) rather than a bug (500).

Unavailable, and answered 503:

- :class:`otelhouse.storage.StorageUnavailable`: the store could not be opened or reached;
- clickhouse-connect's ``OperationalError``: no answer came (connection refused or reset,
  timeout), or the server kept failing after the driver's retries;
- a ``DatabaseError`` the server answered with a ClickHouse code that means it is busy or
  cannot reach its own peers (:data:`UNAVAILABLE_CODES`).

Every other ``DatabaseError`` (a syntax error, an unknown column, a type mismatch) is a bug
in the query and stays a 500.
"""

from __future__ import annotations

from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

from otelhouse.storage import StorageUnavailable

RETRY_AFTER_S = 5
RETRY_HEADERS = {"Retry-After": str(RETRY_AFTER_S)}
UNAVAILABLE_CODES = frozenset(
    {
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        279,  # ALL_CONNECTION_TRIES_FAILED
    }
)
CANDIDATES: tuple[type[Exception], ...] = (StorageUnavailable, DatabaseError)
"""The exception types to catch and test with :func:`storage_unavailable`."""


def storage_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` says storage cannot answer now (see the module docstring)."""
    if isinstance(exc, (StorageUnavailable, OperationalError)):
        return True
    return isinstance(exc, DatabaseError) and exc.code in UNAVAILABLE_CODES


def unavailable_message(exc: BaseException) -> str:
    return f"storage unavailable, retry in {RETRY_AFTER_S}s: {exc}"

"""Log records with known properties for the logs API tests, and the API's rules restated in
plain Python (never SQL), so a wrong query cannot agree with its own expectation."""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass, field

from otelhouse.storage.logs import LogColumns

LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
WORDS = (
    "Connection", "REFUSED", "refused", "disk", "full", "user", "users", "login", "Timeout",
    "GET", "/cart/42", "payment-failed", "retry", "Ünïcode", "naïve", "x=1;", "[db]", "ok",
)


@dataclass(frozen=True)
class Log:
    timestamp_ns: int
    service: str
    severity_number: int
    body: str
    trace_id: str = ""
    span_id: str = ""
    severity_text: str = ""
    attributes: dict[str, str] = field(default_factory=dict)
    resource: dict[str, str] = field(default_factory=dict)
    scope_name: str = "app"

    @property
    def level(self) -> str:
        """The level the API derives from the number (UNSPECIFIED outside 1..24)."""
        n = self.severity_number
        return LEVELS[(n - 1) // 4] if 1 <= n <= 24 else "UNSPECIFIED"

    def json(self) -> dict[str, object]:
        """The API's record, without its RFC 3339 ``timestamp`` (checked separately)."""
        return {
            "timestamp_unix_nano": self.timestamp_ns,
            "severity_text": self.severity_text,
            "severity_number": self.severity_number,
            "body": self.body,
            "service": self.service,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "attributes": self.attributes,
            "resource_attributes": {"service.name": self.service, **self.resource},
            "scope_name": self.scope_name,
        }


def at_least(level: str) -> int:
    return LEVELS.index(level.upper()) * 4 + 1


def contains(body: str, q: str) -> bool:
    """``q`` as the API's documented substring match: ASCII letters folded, nothing else."""
    return q.encode().lower() in body.encode().lower()


def generate(rng: random.Random, n: int, start_ns: int, end_ns: int) -> list[Log]:
    """``n`` records over [start_ns, end_ns): four services, severity numbers 0..24 and one
    out of range, bodies from :data:`WORDS`, a few trace ids and attributes, and some
    records sharing a timestamp (the tiebreaker's job)."""
    trace_ids = [f"{rng.getrandbits(128):032x}" for _ in range(5)]
    logs: list[Log] = []
    for i in range(n):
        if logs and i % 9 == 0:
            timestamp = logs[-1].timestamp_ns
        else:
            timestamp = rng.randrange(start_ns, end_ns)
        number = rng.choice([*range(25), 30])
        traced = rng.random() < 0.6
        logs.append(
            Log(
                timestamp_ns=timestamp,
                service=f"svc-{rng.randrange(4)}",
                severity_number=number,
                severity_text=rng.choice(["", LEVELS[(number - 1) // 4 % 6].lower(), "Custom"]),
                body=" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))) + f" #{i}",
                trace_id=rng.choice(trace_ids) if traced else "",
                span_id=f"{rng.getrandbits(64):016x}" if traced else "",
                attributes={
                    "user": rng.choice(["alice", "bob", "carol"]),
                    **({"region": rng.choice(["eu", "us"])} if rng.random() < 0.5 else {}),
                },
                resource={"host.name": rng.choice(["h1", "h2"])},
            )
        )
    return logs


def to_columns(logs: Iterable[Log]) -> LogColumns:
    columns = LogColumns()
    for log in logs:
        row = {
            "Timestamp": log.timestamp_ns,
            "TraceId": log.trace_id,
            "SpanId": log.span_id,
            "TraceFlags": 1 if log.trace_id else 0,
            "SeverityText": log.severity_text,
            "SeverityNumber": log.severity_number,
            "ServiceName": log.service,
            "Body": log.body,
            "ResourceSchemaUrl": "",
            "ResourceAttributes": {"service.name": log.service, **log.resource},
            "ScopeSchemaUrl": "",
            "ScopeName": log.scope_name,
            "ScopeVersion": "",
            "ScopeAttributes": {},
            "LogAttributes": log.attributes,
            "EventName": "",
        }
        for name, value in row.items():
            getattr(columns, name).append(value)
    return columns

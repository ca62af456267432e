"""The alert evaluator's narrow config, built from ``Settings`` in ``otelhouse/settings.py``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class AlertsConfig:
    """``rules_path`` is the YAML rules file (alerting is off when None); rules are evaluated
    every ``eval_interval_s`` seconds (at least 1); ``external_url`` is the query API's base
    URL that notifications link to."""

    rules_path: Path | None
    eval_interval_s: float = 30.0
    external_url: str = "http://127.0.0.1:8080"

    def __post_init__(self) -> None:
        if self.eval_interval_s < 1:
            raise ValueError("the alert evaluation interval must be at least 1 second")

"""The alert evaluator as a background component of ``otelhouse serve``.

It evaluates every ``eval_interval_s`` in a thread on its own storage client (so a slow query
never blocks the event loop), reloads the rules file when it changes or on :meth:`reload`
(``serve`` calls it on SIGHUP), and reports rules, alerts and delivery counts through the
health registry and its router.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from clickhouse_connect.driver.client import Client
from fastapi import APIRouter

from otelhouse.alerts.api import alerts_router
from otelhouse.alerts.config import AlertsConfig
from otelhouse.alerts.evaluator import FIRING, Evaluator, RulesFile
from otelhouse.alerts.notify import Notifier
from otelhouse.core.health import ComponentHealth
from otelhouse.storage import StorageConfig, open_client

log = logging.getLogger("otelhouse.alerts")


class AlertRulesError(ValueError):
    """The rules file cannot be used at start; the message lists every mistake."""


class AlertService:
    """Built and started by ``serve``; ``stop`` once."""

    def __init__(self, config: AlertsConfig, storage: StorageConfig) -> None:
        self.config = config
        self.rules = RulesFile(config.rules_path)
        if not self.rules.reload():
            raise AlertRulesError(
                f"alert rules {config.rules_path}:\n  " + "\n  ".join(self.rules.errors)
            )
        self._client: Client = open_client(storage)
        self.notifier = Notifier(config.external_url)
        self.evaluator = Evaluator(self._client, self.rules, self.notifier)
        self._task: asyncio.Task[None] | None = None
        self._failures = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="alerts-evaluator")
        log.info(
            "alerts: %d rules from %s, evaluated every %gs",
            len(self.rules.rules.rules), self.config.rules_path, self.config.eval_interval_s,
        )

    def reload(self) -> None:
        """Read the rules file again (keeping the loaded rules if it has mistakes)."""
        if self.rules.reload():
            log.info("alerts: reloaded %d rules", len(self.rules.rules.rules))

    def router(self) -> APIRouter:
        return alerts_router(self.evaluator, self.rules, self.notifier)

    def health(self) -> ComponentHealth:
        alerts = self.evaluator.alerts()
        delivery = self.notifier.stats()
        return ComponentHealth(
            {
                "rules": len(self.rules.rules.rules),
                "rule_file_errors": len(self.rules.errors),
                "rule_evaluation_errors": len(self.evaluator.rule_errors),
                "firing": sum(a.state == FIRING for a in alerts),
                "last_evaluation": (
                    self.evaluator.last_evaluation.isoformat()
                    if self.evaluator.last_evaluation else None
                ),
                "notifications_sent": sum(s["sent"] for s in delivery.values()),
                "notifications_failed": sum(s["failed"] for s in delivery.values()),
                "notifications_dropped": sum(s["dropped"] for s in delivery.values()),
            },
            healthy=self._failures == 0,
        )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await asyncio.to_thread(self.notifier.close)
        self._client.close()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.evaluator.evaluate_once, datetime.now(UTC))
                self._failures = 0
            except Exception:  # noqa: BLE001 - storage down: try again next interval
                self._failures += 1
                log.exception("alerts: evaluation failed")
            await asyncio.sleep(self.config.eval_interval_s)

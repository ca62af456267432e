"""``/api/v1/alerts``: current alerts and delivery counts, transition history, loaded rules.

The router is mounted by ``serve`` through ``create_app(..., ingest_routers=...)``, so the
API's bearer tokens apply; handlers are synchronous and run in FastAPI's thread pool.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query

from otelhouse.alerts.evaluator import Evaluator, RulesFile
from otelhouse.alerts.notify import Notifier

DEFAULT_HISTORY = timedelta(days=1)


def alerts_router(evaluator: Evaluator, rules: RulesFile, notifier: Notifier) -> APIRouter:
    router = APIRouter(prefix="/api/v1/alerts", tags=["alerts"])

    @router.get("")
    def current() -> dict[str, Any]:
        """Pending and firing alerts (rule, labels, state, value, since, last notified),
        per-receiver delivery counts and rules whose last evaluation failed."""
        return {
            "alerts": [alert.as_json() for alert in evaluator.alerts()],
            "delivery": notifier.stats(),
            "rule_errors": dict(evaluator.rule_errors),
            "last_evaluation": (
                evaluator.last_evaluation.isoformat() if evaluator.last_evaluation else None
            ),
        }

    @router.get("/history")
    def history(
        since: Annotated[
            datetime | None, Query(description="RFC 3339 time; default one day ago")
        ] = None,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
    ) -> dict[str, Any]:
        """Transitions (pending, firing, resolved, inactive) at or after ``since``, newest
        first."""
        start = since or datetime.now(UTC) - DEFAULT_HISTORY
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        return {"since": start.isoformat(), "transitions": evaluator.history(start, limit)}

    @router.get("/rules")
    def loaded_rules() -> dict[str, Any]:
        """The rules as loaded, the receivers' names and kinds (not their URLs, which may
        hold secrets), and the mistakes of the latest load (the previous rules stay)."""
        ruleset = rules.rules
        return {
            "path": str(rules.path) if rules.path else None,
            "loaded_at": rules.loaded_at.isoformat() if rules.loaded_at else None,
            "rules": [rule.as_json() for rule in ruleset.rules],
            "receivers": [{"name": r.name, "kind": r.kind} for r in ruleset.receivers.values()],
            "errors": list(rules.errors),
        }

    return router

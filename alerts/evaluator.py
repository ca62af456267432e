"""Rule evaluation: one query per rule, alert states, persisted transitions, notifications.

An alert is a rule and one group's labels (its fingerprint). States: inactive (no row kept)
→ ``pending`` when the condition holds → ``firing`` once it has held for ``for`` →
``resolved`` once it has not held for ``keep_firing_for`` → inactive. A pending alert whose
condition stops holding goes back to inactive without a notification. A notification is sent
once when an alert starts firing and once when it resolves (with ``endsAt``).

Every transition is a row of ``otelhouse_alerts``; at start the evaluator takes each alert's
latest row, so a restart neither sends a firing alert again nor forgets it. One evaluator per
store is assumed (one ``serve``).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from clickhouse_connect.driver.client import Client

from otelhouse.alerts.measures import NS_PER_S, group_labels, measure_query
from otelhouse.alerts.notify import AlertEvent, Notifier
from otelhouse.alerts.rules import Rule, RuleSet, parse_rules, render
from otelhouse.storage.tables import ALERTS_TABLE

log = logging.getLogger("otelhouse.alerts")

PENDING, FIRING, RESOLVED, INACTIVE = "pending", "firing", "resolved", "inactive"
_COLUMNS = [
    "Time", "Fingerprint", "Alert", "Labels", "Annotations", "State", "Value", "ActiveSince",
    "FiringSince", "Notified",
]


class RulesFile:
    """The rules as last loaded from ``path`` without mistakes, and the mistakes of the
    latest load (empty when it succeeded)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.rules = RuleSet()
        self.errors: list[str] = []
        self.loaded_at: datetime | None = None
        self._mtime: float | None = None
        self._lock = threading.Lock()

    def reload(self) -> bool:
        """Read the file again; on any mistake keep the rules held and report the errors."""
        if self.path is None:
            return True
        with self._lock:
            try:
                self._mtime = self.path.stat().st_mtime
                text = self.path.read_text(encoding="utf-8")
            except OSError as exc:
                self.errors = [f"cannot read {self.path}: {exc}"]
            else:
                rules, errors = parse_rules(text)
                self.errors = errors
                if not errors:
                    self.rules = rules
                    self.loaded_at = datetime.now(UTC)
            if self.errors:
                log.error("alert rules %s not loaded, keeping the previous ones:\n  %s",
                          self.path, "\n  ".join(self.errors))
            return not self.errors

    def poll(self) -> None:
        """Reload when the file's modification time changed since the last load."""
        if self.path is None:
            return
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            mtime = None
        if mtime != self._mtime:
            self.reload()


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert that is pending or firing."""

    rule: str
    fingerprint: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    state: str
    value: float
    active_since: datetime
    firing_since: datetime | None
    last_breach: datetime
    notified: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "fingerprint": self.fingerprint,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "state": self.state,
            "value": None if math.isnan(self.value) else self.value,
            "since": self.active_since.isoformat(),
            "firing_since": self.firing_since.isoformat() if self.firing_since else None,
            "last_notified": self.firing_since.isoformat() if self.notified and self.firing_since else None,
        }


def fingerprint(rule: str, group: Mapping[str, str]) -> str:
    """16 hex digits identifying a rule's alert for one group."""
    key = "\x00".join([rule, *(f"{k}={v}" for k, v in sorted(group.items()))])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


class Evaluator:
    """Evaluates ``rules`` over ``client``'s store and hands transitions to ``notifier``.

    ``evaluate_once`` is synchronous and must not run concurrently with itself; the API
    reads ``alerts()`` and ``history()`` from other threads.
    """

    def __init__(self, client: Client, rules: RulesFile, notifier: Notifier) -> None:
        self.client = client
        self.rules = rules
        self.notifier = notifier
        self.rule_errors: dict[str, str] = {}
        self.last_evaluation: datetime | None = None
        self._lock = threading.Lock()
        self._client_lock = threading.Lock()
        self._alerts: dict[str, Alert] = {}
        self._load()

    def alerts(self) -> list[Alert]:
        with self._lock:
            return sorted(self._alerts.values(), key=lambda a: (a.rule, a.fingerprint))

    def history(self, since: datetime, limit: int = 1000) -> list[dict[str, Any]]:
        """Transitions at or after ``since``, newest first."""
        with self._client_lock:
            rows = self.client.query(
                f"SELECT Time, Fingerprint, Alert, Labels, State, Value FROM {ALERTS_TABLE} "
                "WHERE Time >= fromUnixTimestamp64Milli({since_ms:Int64}) "
                "ORDER BY Time DESC LIMIT {limit:UInt32}",
                parameters={"since_ms": int(since.timestamp() * 1000), "limit": limit},
            ).result_rows
        return [
            {
                "time": _utc(time).isoformat(),
                "fingerprint": fp,
                "rule": alert,
                "labels": dict(labels),
                "state": state,
                "value": None if math.isnan(value) else value,
            }
            for time, fp, alert, labels, state, value in rows
        ]

    def evaluate_once(self, now: datetime) -> list[Alert]:
        """Evaluate every rule at ``now`` (UTC); returns the transitions (as the alerts' new
        states, ``resolved``/``inactive`` included) and notifies them."""
        self.rules.poll()
        ruleset = self.rules.rules
        rows: list[list[Any]] = []
        changed: list[Alert] = []
        seen_rules = {rule.alert for rule in ruleset.rules}
        for rule in ruleset.rules:
            try:
                values = self._measure(rule, now)
            except Exception as exc:  # noqa: BLE001 - a failing rule must not stop the others
                self.rule_errors[rule.alert] = f"{type(exc).__name__}: {exc}"
                log.warning("alert rule %s: evaluation failed: %s", rule.alert, exc)
                continue
            self.rule_errors.pop(rule.alert, None)
            for alert in self._step(rule, values, now, ruleset):
                changed.append(alert)
                rows.append(_row(alert, now))
        with self._lock:
            for fp, alert in list(self._alerts.items()):
                if alert.rule not in seen_rules:
                    del self._alerts[fp]
                    gone = replace(alert, state=INACTIVE)
                    changed.append(gone)
                    rows.append(_row(gone, now))
        if rows:
            with self._client_lock:
                self.client.insert(ALERTS_TABLE, rows, column_names=_COLUMNS)
        self.last_evaluation = now
        return changed

    def _measure(self, rule: Rule, now: datetime) -> dict[str, tuple[dict[str, str], float]]:
        end_ns = int(now.timestamp() * NS_PER_S)
        query = measure_query(rule, end_ns)
        with self._client_lock:
            result = self.client.query(query.sql, parameters=query.parameters).result_rows
        found: dict[str, tuple[dict[str, str], float]] = {}
        width = len(rule.group_by)
        for row in result:
            labels = group_labels(rule, row)
            value = float(row[width])
            if rule.absent:
                previous = float(row[width + 1])
                value = 1.0 if value == 0 and previous > 0 else 0.0
            found[fingerprint(rule.alert, labels)] = (labels, value)
        return found

    def _step(
        self,
        rule: Rule,
        values: Mapping[str, tuple[dict[str, str], float]],
        now: datetime,
        ruleset: RuleSet,
    ) -> list[Alert]:
        changed: list[Alert] = []
        with self._lock:
            held = {fp: a for fp, a in self._alerts.items() if a.rule == rule.alert}
        for fp in set(values) | set(held):
            current = held.get(fp)
            if fp in values:
                group, value = values[fp]
                breached = value > 0 if rule.absent else rule.breached(value)
            else:
                group = {k: v for k, v in current.labels.items() if k in rule.group_by}
                value = 1.0 if rule.absent else math.nan
                breached = rule.absent
            labels = {"alertname": rule.alert, **rule.labels, **group}
            annotations = {k: render(t, value, labels) for k, t in rule.annotations.items()}
            new = self._next(rule, current, fp, labels, annotations, value, breached, now)
            if new is None or new is current:
                continue
            with self._lock:
                if new.state in (PENDING, FIRING):
                    self._alerts[fp] = new
                else:
                    self._alerts.pop(fp, None)
            if current is None or new.state != current.state:
                changed.append(new)
                if new.state in (FIRING, RESOLVED) and not (new.state == FIRING and current and current.notified):
                    self._notify(rule, new, group, now, ruleset)
        return changed

    def _next(
        self,
        rule: Rule,
        current: Alert | None,
        fp: str,
        labels: dict[str, str],
        annotations: dict[str, str],
        value: float,
        breached: bool,
        now: datetime,
    ) -> Alert | None:
        """The alert's next state (``current`` itself: no alert and none to start)."""
        if current is None:
            if not breached:
                return None
            current = Alert(rule.alert, fp, labels, annotations, PENDING, value, now, None, now, False)
            if rule.for_s > 0:
                return current
        if breached:
            if current.state == PENDING and now - current.active_since >= timedelta(seconds=rule.for_s):
                return replace(current, state=FIRING, value=value, labels=labels,
                               annotations=annotations, firing_since=now, last_breach=now, notified=True)
            return replace(current, value=value, labels=labels, annotations=annotations, last_breach=now)
        if current.state == PENDING:
            return replace(current, state=INACTIVE, value=value)
        if now - current.last_breach >= timedelta(seconds=rule.keep_firing_for_s):
            return replace(current, state=RESOLVED, value=value)
        return replace(current, value=value)

    def _notify(
        self, rule: Rule, alert: Alert, group: Mapping[str, str], now: datetime, ruleset: RuleSet
    ) -> None:
        event = AlertEvent(
            status=alert.state,
            labels=alert.labels,
            annotations=alert.annotations,
            starts_at=alert.firing_since or alert.active_since,
            ends_at=now if alert.state == RESOLVED else None,
            fingerprint=alert.fingerprint,
            group_labels=group,
            value=alert.value,
        )
        for name in rule.notify:
            receiver = ruleset.receivers.get(name)
            if receiver is not None:
                self.notifier.submit(receiver, event)

    def _load(self) -> None:
        with self._client_lock:
            rows = self.client.query(
                f"SELECT Fingerprint, argMax(tuple(Alert, Labels, Annotations, State, Value, "
                f"ActiveSince, FiringSince, Notified, Time), Time) FROM {ALERTS_TABLE} "
                "GROUP BY Fingerprint"
            ).result_rows
        for fp, (rule, labels, annotations, state, value, since, firing, notified, time) in rows:
            if state in (PENDING, FIRING):
                self._alerts[fp] = Alert(
                    rule, fp, dict(labels), dict(annotations), state, value, _utc(since),
                    _utc(firing) if firing else None, _utc(time), bool(notified),
                )


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _row(alert: Alert, now: datetime) -> list[Any]:
    return [
        now, alert.fingerprint, alert.rule, dict(alert.labels), dict(alert.annotations),
        alert.state, alert.value, alert.active_since, alert.firing_since, alert.notified,
    ]

"""The alert rules file: YAML shaped like Prometheus alerting rules, parsed into frozen rules.

:func:`parse_rules` checks every rule and receiver and returns all mistakes at once, each
naming the rule (or receiver) and the field; a file with any mistake yields no rules, so a
reload either takes the whole file or keeps what was loaded before.

A rule measures one value per group over ``window`` ending at the evaluation time:

- ``signal: traces``: ``requests``, ``errors``, ``error_rate`` or ``p50``/``p90``/``p95``/
  ``p99`` (milliseconds) over request spans; ``where`` takes ``service`` and ``operation``.
- ``signal: logs``: ``count``; ``where`` takes ``service``, ``severity`` (that level and
  above), ``q`` (case-insensitive substring of the body) and ``attr`` (a mapping of record
  attributes that must be equal).
- ``signal: metrics``: ``avg`` or ``last`` of a gauge, ``rate`` (per second) of a sum;
  ``where`` takes ``metric`` (required) and ``service``.
- ``measure: absent`` on any signal: fires for a group (or the whole filter, without
  ``group_by``) that had data in the window before this one and has none in this one; it
  takes no ``op``/``threshold``.

``group_by`` takes ``service`` (and ``operation`` for traces).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from otelhouse.storage.semantics import LEVELS, severity_floor

SIGNALS = ("traces", "logs", "metrics")
ABSENT = "absent"
MEASURES: dict[str, tuple[str, ...]] = {
    "traces": ("requests", "errors", "error_rate", "p50", "p90", "p95", "p99", ABSENT),
    "logs": ("count", ABSENT),
    "metrics": ("avg", "last", "rate", ABSENT),
}
WHERE_KEYS: dict[str, tuple[str, ...]] = {
    "traces": ("service", "operation"),
    "logs": ("service", "severity", "q", "attr"),
    "metrics": ("metric", "service"),
}
GROUP_KEYS: dict[str, tuple[str, ...]] = {
    "traces": ("service", "operation"),
    "logs": ("service",),
    "metrics": ("service",),
}
OPS = (">", ">=", "<", "<=", "==", "!=")
RULE_FIELDS = (
    "alert", "signal", "measure", "where", "op", "threshold", "window", "for",
    "keep_firing_for", "group_by", "labels", "annotations", "notify",
)
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_:.-]*$")
_TEMPLATE = re.compile(r"\{\{\s*\$(value|labels\.([A-Za-z_][A-Za-z0-9_]*))\s*\}\}")


@dataclass(frozen=True, slots=True)
class ReceiverSpec:
    """Where notifications go: ``kind`` is ``webhook`` (Alertmanager JSON) or
    ``slack_webhook`` (Slack's ``{"text": ...}``)."""

    name: str
    kind: str
    url: str


@dataclass(frozen=True, slots=True)
class Rule:
    alert: str
    signal: str
    measure: str
    where: Mapping[str, Any]
    op: str
    threshold: float
    window_s: float
    for_s: float
    keep_firing_for_s: float
    group_by: tuple[str, ...]
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    notify: tuple[str, ...]

    @property
    def absent(self) -> bool:
        return self.measure == ABSENT

    def breached(self, value: float) -> bool:
        """Whether ``value`` meets the rule's condition (never for NaN: no data)."""
        if math.isnan(value):
            return False
        return {
            ">": value > self.threshold,
            ">=": value >= self.threshold,
            "<": value < self.threshold,
            "<=": value <= self.threshold,
            "==": value == self.threshold,
            "!=": value != self.threshold,
        }[self.op]

    def as_json(self) -> dict[str, Any]:
        return {
            "alert": self.alert,
            "signal": self.signal,
            "measure": self.measure,
            "where": dict(self.where),
            "op": self.op,
            "threshold": self.threshold,
            "window_s": self.window_s,
            "for_s": self.for_s,
            "keep_firing_for_s": self.keep_firing_for_s,
            "group_by": list(self.group_by),
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "notify": list(self.notify),
        }


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...] = ()
    receivers: Mapping[str, ReceiverSpec] = field(default_factory=dict)


def render(template: str, value: float, labels: Mapping[str, str]) -> str:
    """``template`` with ``{{ $value }}`` and ``{{ $labels.name }}`` filled in (an unknown
    label becomes an empty string)."""

    def fill(match: re.Match[str]) -> str:
        if match[1] == "value":
            return format(value, ".4g")
        return labels.get(match[2], "")

    return _TEMPLATE.sub(fill, template)


def parse_duration(text: Any) -> float:
    """Seconds of ``30s``, ``5m``, ``1h``, ``1d``, ``500ms`` or a plain number of seconds;
    raises ValueError otherwise."""
    if isinstance(text, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {text!r}")
    if isinstance(text, int | float):
        if text < 0:
            raise ValueError(f"expected a duration of 0 or more, got {text!r}")
        return float(text)
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"expected a duration like 30s, 5m or 1h, got {text!r}")
    return float(match[1]) * _UNIT_S[match[2]]


def parse_rules(text: str) -> tuple[RuleSet, list[str]]:
    """The rules and receivers of a rules file's ``text``, and every mistake found; when
    there is any mistake the rule set is empty."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return RuleSet(), [f"not valid YAML: {exc}"]
    if document is None:
        document = {}
    if not isinstance(document, dict):
        return RuleSet(), ["the file must be a mapping with 'receivers' and 'rules'"]
    errors = [
        f"unknown top-level key {key!r} (expected 'receivers', 'rules')"
        for key in document
        if key not in ("receivers", "rules")
    ]
    receivers = _receivers(document.get("receivers") or [], errors)
    rules: list[Rule] = []
    raw_rules = document.get("rules") or []
    if not isinstance(raw_rules, list):
        errors.append("'rules' must be a list")
        raw_rules = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule = _rule(index, raw, receivers, errors)
        if rule is None:
            continue
        if rule.alert in seen:
            errors.append(f"rule {rule.alert}: field 'alert': the name is used by another rule")
        seen.add(rule.alert)
        rules.append(rule)
    if errors:
        return RuleSet(), errors
    return RuleSet(tuple(rules), receivers), []


def _receivers(raw: Any, errors: list[str]) -> dict[str, ReceiverSpec]:
    if not isinstance(raw, list):
        errors.append("'receivers' must be a list")
        return {}
    found: dict[str, ReceiverSpec] = {}
    for index, entry in enumerate(raw):
        if not isinstance(entry, dict):
            errors.append(f"receiver #{index + 1}: must be a mapping")
            continue
        name = entry.get("name")
        where = f"receiver {name}" if isinstance(name, str) and name else f"receiver #{index + 1}"
        if not isinstance(name, str) or not name:
            errors.append(f"{where}: field 'name': required")
            continue
        kinds = [kind for kind in ("webhook", "slack_webhook") if kind in entry]
        unknown = set(entry) - {"name", "webhook", "slack_webhook"}
        if unknown:
            errors.append(f"{where}: unknown fields {sorted(unknown)}")
        if len(kinds) != 1:
            errors.append(f"{where}: needs exactly one of 'webhook', 'slack_webhook'")
            continue
        url = entry[kinds[0]]
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            errors.append(f"{where}: field {kinds[0]!r}: expected an http(s) URL, got {url!r}")
            continue
        if name in found:
            errors.append(f"{where}: field 'name': used by another receiver")
        found[name] = ReceiverSpec(name, kinds[0], url)
    return found


def _rule(
    index: int, raw: Any, receivers: Mapping[str, ReceiverSpec], errors: list[str]
) -> Rule | None:
    if not isinstance(raw, dict):
        errors.append(f"rule #{index + 1}: must be a mapping")
        return None
    name = raw.get("alert")
    if not isinstance(name, str) or not _NAME.match(name):
        errors.append(f"rule #{index + 1}: field 'alert': required, a name like CheckoutErrors")
        return None
    count = len(errors)

    def bad(field_name: str, message: str) -> None:
        errors.append(f"rule {name}: field {field_name!r}: {message}")

    for key in raw:
        if key not in RULE_FIELDS:
            bad(key, f"unknown field (expected {', '.join(RULE_FIELDS)})")
    signal = raw.get("signal")
    if signal not in SIGNALS:
        bad("signal", f"expected one of {', '.join(SIGNALS)}, got {signal!r}")
        return None
    measure = raw.get("measure")
    if measure not in MEASURES[signal]:
        bad("measure", f"for {signal}: expected one of {', '.join(MEASURES[signal])}, got {measure!r}")
    where = raw.get("where") or {}
    if not isinstance(where, dict):
        bad("where", "expected a mapping")
        where = {}
    for key, value in where.items():
        if key not in WHERE_KEYS[signal]:
            bad(f"where.{key}", f"for {signal}: expected one of {', '.join(WHERE_KEYS[signal])}")
        elif key == "attr":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()
            ):
                bad("where.attr", "expected a mapping of attribute names to values")
        elif not isinstance(value, str) or not value:
            bad(f"where.{key}", f"expected a non-empty string, got {value!r}")
        elif key == "severity" and severity_floor(value) is None:
            bad("where.severity", f"expected one of {', '.join(LEVELS)}, got {value!r}")
    if signal == "metrics" and "metric" not in where:
        bad("where.metric", "required for metrics: the metric's name")
    absent = measure == ABSENT
    op = raw.get("op", ">" if absent else None)
    if op is None:
        bad("op", f"required, one of {' '.join(OPS)}")
    elif op not in OPS:
        bad("op", f"expected one of {' '.join(OPS)}, got {op!r}")
    threshold = raw.get("threshold", 0 if absent else None)
    if threshold is None:
        bad("threshold", "required, a number")
        threshold = 0.0
    elif isinstance(threshold, bool) or not isinstance(threshold, int | float):
        bad("threshold", f"expected a number, got {threshold!r}")
        threshold = 0.0
    durations = {}
    for key, default in (("window", None), ("for", 0), ("keep_firing_for", 0)):
        if key not in raw and default is None:
            bad(key, "required, a duration like 30s, 5m or 1h")
            durations[key] = 1.0
            continue
        try:
            durations[key] = parse_duration(raw.get(key, default))
        except ValueError as exc:
            bad(key, str(exc))
            durations[key] = 1.0
    if durations["window"] < 1:
        bad("window", "must be at least 1s")
    group_by = raw.get("group_by") or []
    if not isinstance(group_by, list) or any(g not in GROUP_KEYS[signal] for g in group_by):
        bad("group_by", f"for {signal}: expected a list of {', '.join(GROUP_KEYS[signal])}")
        group_by = []
    labels = _string_map(raw.get("labels"), "labels", bad)
    annotations = _string_map(raw.get("annotations"), "annotations", bad)
    notify = raw.get("notify") or []
    if not isinstance(notify, list) or not all(isinstance(n, str) for n in notify):
        bad("notify", "expected a list of receiver names")
        notify = []
    for receiver in notify:
        if receiver not in receivers:
            bad("notify", f"no receiver named {receiver!r}")
    if len(errors) > count:
        return None
    return Rule(
        alert=name,
        signal=signal,
        measure=measure,
        where=dict(where),
        op=op,
        threshold=float(threshold),
        window_s=durations["window"],
        for_s=durations["for"],
        keep_firing_for_s=durations["keep_firing_for"],
        group_by=tuple(dict.fromkeys(group_by)),
        labels=labels,
        annotations=annotations,
        notify=tuple(notify),
    )


def _string_map(raw: Any, field_name: str, bad: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(
        isinstance(k, str) and _NAME.match(k) and isinstance(v, str | int | float)
        for k, v in raw.items()
    ):
        bad(field_name, "expected a mapping of names to strings")
        return {}
    if field_name == "labels" and "alertname" in raw:
        bad("labels.alertname", "is set from 'alert'")
    return {k: str(v) for k, v in raw.items()}

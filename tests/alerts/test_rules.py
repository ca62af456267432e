"""The rules file: its shape, mistakes named by rule and field, and reloads that keep the
last good rules."""

from __future__ import annotations

from pathlib import Path

from otelhouse.alerts.evaluator import RulesFile
from otelhouse.alerts.rules import parse_duration, parse_rules, render

GOOD = """\
receivers:
  - name: ops
    webhook: http://alerts.example/hook
  - name: chat
    slack_webhook: https://hooks.slack.com/services/x
rules:
  - alert: CheckoutErrorRate
    signal: traces
    measure: error_rate
    where: {service: checkout, operation: "POST /checkout"}
    op: ">"
    threshold: 0.05
    window: 5m
    for: 1m
    group_by: [service]
    labels: {severity: critical}
    annotations: {summary: "checkout error rate is {{ $value }}"}
    notify: [ops, chat]
  - alert: Silent
    signal: logs
    measure: absent
    window: 10m
"""


def test_the_issue_s_example_loads() -> None:
    ruleset, errors = parse_rules(GOOD)
    assert errors == []
    rule, silent = ruleset.rules
    assert (rule.window_s, rule.for_s, rule.threshold, rule.group_by) == (300, 60, 0.05, ("service",))
    assert rule.breached(0.06) and not rule.breached(0.05) and not rule.breached(float("nan"))
    assert silent.absent and silent.notify == ()
    assert ruleset.receivers["chat"].kind == "slack_webhook"


def test_mistakes_name_the_rule_and_the_field() -> None:
    text = GOOD.replace('op: ">"', 'op: "=>"').replace("window: 5m", "window: 5 minutes")
    text = text.replace("notify: [ops, chat]", "notify: [pager]").replace("measure: absent", "measure: p99")
    ruleset, errors = parse_rules(text)
    assert ruleset.rules == ()
    assert errors == [
        "rule CheckoutErrorRate: field 'op': expected one of > >= < <= == !=, got '=>'",
        "rule CheckoutErrorRate: field 'window': expected a duration like 30s, 5m or 1h, got '5 minutes'",
        "rule CheckoutErrorRate: field 'notify': no receiver named 'pager'",
        "rule Silent: field 'measure': for logs: expected one of count, absent, got 'p99'",
        "rule Silent: field 'op': required, one of > >= < <= == !=",
        "rule Silent: field 'threshold': required, a number",
    ]


def test_more_mistakes() -> None:
    _, errors = parse_rules(
        "rules:\n  - alert: A\n    signal: spans\n  - alert: B\n    signal: logs\n"
        "    measure: count\n    op: '>'\n    threshold: ten\n    where: {severity: loud}\n"
        "  - {signal: logs}\n"
    )
    assert errors == [
        "rule A: field 'signal': expected one of traces, logs, metrics, got 'spans'",
        "rule B: field 'where.severity': expected one of TRACE, DEBUG, INFO, WARN, ERROR, FATAL, got 'loud'",
        "rule B: field 'threshold': expected a number, got 'ten'",
        "rule B: field 'window': required, a duration like 30s, 5m or 1h",
        "rule #3: field 'alert': required, a name like CheckoutErrors",
    ]
    assert parse_rules("rules: [")[1][0].startswith("not valid YAML")


def test_durations_and_templates() -> None:
    assert [parse_duration(d) for d in ("500ms", "30s", "5m", "1h", "1d", 15)] == [
        0.5, 30, 300, 3600, 86400, 15
    ]
    assert render("{{$labels.service}}: {{ $value }} {{ $labels.none }}", 0.1234567, {"service": "a"}) == "a: 0.1235 "


def test_a_bad_reload_keeps_the_last_good_rules(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(GOOD)
    rules = RulesFile(path)
    assert rules.reload()
    path.write_text(GOOD.replace("signal: traces", "signal: nope"))
    assert not rules.reload()
    assert [r.alert for r in rules.rules.rules] == ["CheckoutErrorRate", "Silent"]
    assert rules.errors == ["rule CheckoutErrorRate: field 'signal': expected one of traces, logs, metrics, got 'nope'"]
    path.write_text(GOOD.replace("alert: Silent", "alert: Quiet"))
    rules.poll()
    assert rules.errors == []
    assert [r.alert for r in rules.rules.rules] == ["CheckoutErrorRate", "Quiet"]

"""Rules over stored spans and log records, evaluated at explicit times, notifying a real
loopback webhook: fire once, resolve once, respect ``for``, survive a restart."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from otelhouse.alerts.notify import Notifier, rfc3339
from otelhouse.storage.tables import METRICS_GAUGE_TABLE, METRICS_SUM_TABLE
from tests.alerts.conftest import EXTERNAL_URL, Hook, Harness

T0 = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
"""Recent enough for the tables' retention."""
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def rules(hook: Hook, body: str) -> str:
    return f"receivers:\n  - name: ops\n    webhook: {hook.url}\nrules:\n{body}"


ERROR_RATE = """\
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
    annotations: {summary: "{{ $labels.service }} error rate is {{ $value }}"}
    notify: [ops]
"""


def evaluate(harness: Harness, at: datetime) -> None:
    assert harness.evaluator is not None
    harness.evaluator.evaluate_once(at)
    assert harness.evaluator.rule_errors == {}
    assert harness.notifier.wait_idle(10)


def test_error_rate_fires_once_after_for_and_resolves_once(harness: Harness, hook: Hook) -> None:
    harness.write_rules(rules(hook, ERROR_RATE))
    harness.spans(T0 - timedelta(minutes=1), 100, errors=10)
    harness.start()
    evaluate(harness, T0)
    evaluate(harness, T0 + timedelta(seconds=30))
    assert hook.posts == []
    assert [a.state for a in harness.evaluator.alerts()] == ["pending"]
    evaluate(harness, T0 + timedelta(seconds=61))
    evaluate(harness, T0 + timedelta(seconds=90))
    assert [p["status"] for p in hook.posts] == ["firing"]
    evaluate(harness, T0 + timedelta(minutes=5))
    evaluate(harness, T0 + timedelta(minutes=6))
    assert [p["status"] for p in hook.posts] == ["firing", "resolved"]
    firing, resolved = hook.posts
    assert_alertmanager_shape(firing, "firing")
    assert_alertmanager_shape(resolved, "resolved")
    alert = firing["alerts"][0]
    assert alert["labels"] == {"alertname": "CheckoutErrorRate", "severity": "critical", "service": "checkout"}
    assert alert["annotations"] == {"summary": "checkout error rate is 0.1"}
    assert alert["startsAt"] == rfc3339(T0 + timedelta(seconds=61))
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"
    assert resolved["alerts"][0]["startsAt"] == alert["startsAt"]
    assert resolved["alerts"][0]["endsAt"] == rfc3339(T0 + timedelta(minutes=5))
    assert resolved["alerts"][0]["fingerprint"] == alert["fingerprint"]
    assert firing["groupLabels"] == {"alertname": "CheckoutErrorRate", "service": "checkout"}
    assert harness.evaluator.alerts() == []
    history = harness.evaluator.history(T0 - timedelta(hours=1))
    assert [h["state"] for h in history] == ["resolved", "firing", "pending"]


def assert_alertmanager_shape(payload: dict, status: str) -> None:
    assert set(payload) >= {
        "version", "status", "receiver", "groupLabels", "commonLabels", "commonAnnotations",
        "externalURL", "alerts", "groupKey", "truncatedAlerts",
    }
    assert payload["version"] == "4"
    assert payload["status"] == status
    assert payload["receiver"] == "ops"
    assert payload["externalURL"] == EXTERNAL_URL
    assert isinstance(payload["groupKey"], str)
    assert payload["truncatedAlerts"] == 0
    (alert,) = payload["alerts"]
    assert set(alert) == {
        "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"
    }
    assert alert["status"] == status
    assert alert["labels"]["alertname"] == payload["commonLabels"]["alertname"]
    assert alert["labels"] == payload["commonLabels"]
    assert alert["annotations"] == payload["commonAnnotations"]
    assert all(isinstance(v, str) for v in alert["labels"].values())
    assert RFC3339.match(alert["startsAt"]) and RFC3339.match(alert["endsAt"])
    assert re.fullmatch(r"[0-9a-f]{16}", alert["fingerprint"])
    assert alert["generatorURL"].startswith(EXTERNAL_URL + "/api/v1/alerts?alert=")


def test_latency_rule_per_group_fires_for_the_slow_service_only(harness: Harness, hook: Hook) -> None:
    harness.write_rules(rules(hook, """\
  - alert: SlowRequests
    signal: traces
    measure: p95
    op: ">="
    threshold: 500
    window: 5m
    group_by: [service]
    annotations: {summary: "p95 of {{ $labels.service }} is {{ $value }} ms"}
    notify: [ops]
"""))
    harness.spans(T0 - timedelta(minutes=2), 20, service="fast", duration_ms=20)
    harness.spans(T0 - timedelta(minutes=2), 20, service="slow", duration_ms=800)
    harness.start()
    evaluate(harness, T0)
    evaluate(harness, T0 + timedelta(seconds=30))
    assert len(hook.posts) == 1
    assert hook.posts[0]["alerts"][0]["labels"]["service"] == "slow"
    assert hook.posts[0]["commonAnnotations"] == {"summary": "p95 of slow is 800 ms"}
    evaluate(harness, T0 + timedelta(minutes=4))
    assert [p["status"] for p in hook.posts] == ["firing", "resolved"]


def test_log_count_over_severity_and_text(harness: Harness, hook: Hook) -> None:
    harness.write_rules(rules(hook, """\
  - alert: FailedLogins
    signal: logs
    measure: count
    where: {service: auth, severity: warn, q: "LOGIN FAILED"}
    op: ">"
    threshold: 10
    window: 10m
    notify: [ops]
"""))
    harness.logs(T0 - timedelta(minutes=1), 8)
    harness.logs(T0 - timedelta(minutes=1), 50, severity=9)
    harness.logs(T0 - timedelta(minutes=1), 50, body="login ok")
    harness.start()
    evaluate(harness, T0)
    assert hook.posts == []
    harness.logs(T0 + timedelta(seconds=10), 3)
    evaluate(harness, T0 + timedelta(seconds=30))
    evaluate(harness, T0 + timedelta(seconds=60))
    assert [p["status"] for p in hook.posts] == ["firing"]
    assert harness.evaluator.alerts()[0].value == 11
    evaluate(harness, T0 + timedelta(minutes=10))
    assert [p["status"] for p in hook.posts] == ["firing", "resolved"]


def test_absent_fires_for_a_service_that_stopped_reporting(harness: Harness, hook: Hook) -> None:
    harness.write_rules(rules(hook, """\
  - alert: ServiceSilent
    signal: traces
    measure: absent
    window: 5m
    group_by: [service]
    notify: [ops]
"""))
    harness.spans(T0 - timedelta(minutes=7), 5, service="a")
    harness.spans(T0 - timedelta(minutes=7), 5, service="b")
    harness.spans(T0 - timedelta(minutes=1), 5, service="b")
    harness.start()
    evaluate(harness, T0)
    assert [p["alerts"][0]["labels"]["service"] for p in hook.posts] == ["a"]
    evaluate(harness, T0 + timedelta(minutes=5))
    assert [p["alerts"][0]["labels"]["service"] for p in hook.posts] == ["a", "b"]
    evaluate(harness, T0 + timedelta(minutes=30))
    assert len(hook.posts) == 2
    harness.spans(T0 + timedelta(minutes=31), 1, service="a")
    evaluate(harness, T0 + timedelta(minutes=32))
    assert [(p["status"], p["alerts"][0]["labels"]["service"]) for p in hook.posts[2:]] == [
        ("resolved", "a")
    ]


def test_keep_firing_for_holds_through_a_dip(harness: Harness, hook: Hook) -> None:
    harness.write_rules(rules(hook, """\
  - alert: Errors
    signal: traces
    measure: errors
    op: ">"
    threshold: 0
    window: 1m
    keep_firing_for: 2m
    notify: [ops]
"""))
    harness.spans(T0 - timedelta(seconds=30), 1, errors=1)
    harness.start()
    evaluate(harness, T0)
    evaluate(harness, T0 + timedelta(minutes=1))
    harness.spans(T0 + timedelta(minutes=1, seconds=30), 1, errors=1)
    evaluate(harness, T0 + timedelta(minutes=2))
    evaluate(harness, T0 + timedelta(minutes=3))
    assert [p["status"] for p in hook.posts] == ["firing"]
    evaluate(harness, T0 + timedelta(minutes=4))
    assert [p["status"] for p in hook.posts] == ["firing", "resolved"]


def test_restart_while_firing_sends_nothing_new(harness: Harness, hook: Hook) -> None:
    harness.write_rules(rules(hook, ERROR_RATE.replace("for: 1m", "for: 0s")))
    harness.spans(T0 - timedelta(minutes=1), 10, errors=5)
    harness.start()
    evaluate(harness, T0)
    assert len(hook.posts) == 1
    restarted = harness.start()
    assert [a.state for a in restarted.alerts()] == ["firing"]
    evaluate(harness, T0 + timedelta(seconds=30))
    assert len(hook.posts) == 1
    evaluate(harness, T0 + timedelta(minutes=5))
    assert [p["status"] for p in hook.posts] == ["firing", "resolved"]
    assert hook.posts[1]["alerts"][0]["startsAt"] == hook.posts[0]["alerts"][0]["startsAt"]


def test_failing_and_hanging_receivers_are_retried_without_blocking(
    harness: Harness, hook: Hook
) -> None:
    hook.status = 500
    harness.write_rules(rules(hook, ERROR_RATE.replace("for: 1m", "for: 0s")))
    harness.spans(T0 - timedelta(minutes=1), 10, errors=5)
    notifier = Notifier(EXTERNAL_URL, timeout_s=0.3, max_attempts=3, backoff_s=0.05)
    try:
        evaluator = harness.start(notifier)
        evaluator.evaluate_once(T0)
        assert notifier.wait_idle(10)
        assert hook.attempts == 3
        assert notifier.stats()["ops"]["failed"] == 1
        assert notifier.stats()["ops"]["last_error"] == "HTTP 500"
        hook.status, hook.delay_s = 200, 5
        evaluator.evaluate_once(T0 + timedelta(minutes=5))
        started = datetime.now(UTC)
        evaluator.evaluate_once(T0 + timedelta(minutes=6))
        assert datetime.now(UTC) - started < timedelta(seconds=2)
        assert notifier.wait_idle(10)
        stats = notifier.stats()["ops"]
        assert stats["failed"] == 2 and stats["retries"] == 4
        assert "Timeout" in stats["last_error"]
    finally:
        notifier.close(timeout_s=0)


def test_metric_rules_gauge_avg_and_counter_rate(harness: Harness, hook: Hook) -> None:
    harness.write_rules(rules(hook, """\
  - alert: DeepQueue
    signal: metrics
    measure: avg
    where: {metric: queue.depth}
    op: ">"
    threshold: 100
    window: 5m
    group_by: [service]
  - alert: FastCounter
    signal: metrics
    measure: rate
    where: {metric: http.requests, service: api}
    op: ">"
    threshold: 0.5
    window: 5m
"""))
    at = [T0 - timedelta(minutes=m) for m in (4, 2)]
    harness.storage.insert(METRICS_GAUGE_TABLE, [
        ["worker", "queue.depth", at[0], 100.0, {}], ["worker", "queue.depth", at[1], 300.0, {}],
        ["web", "queue.depth", at[1], 50.0, {}],
    ], column_names=["ServiceName", "MetricName", "TimeUnix", "Value", "Attributes"])
    harness.storage.insert(METRICS_SUM_TABLE, [
        ["api", "http.requests", at[0], 1000.0, {"route": "/a"}, 2, True],
        ["api", "http.requests", at[1], 1300.0, {"route": "/a"}, 2, True],
        ["api", "http.requests", at[0], 5.0, {"route": "/b"}, 2, True],
        ["api", "http.requests", at[1], 5.0, {"route": "/b"}, 2, True],
    ], column_names=["ServiceName", "MetricName", "TimeUnix", "Value", "Attributes",
                     "AggregationTemporality", "IsMonotonic"])
    harness.start()
    evaluate(harness, T0)
    alerts = {(a.rule, a.labels.get("service")): a.value for a in harness.evaluator.alerts()}
    assert alerts == {("DeepQueue", "worker"): 200.0, ("FastCounter", None): 300 / 300}

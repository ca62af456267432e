"""``otelhouse serve --alert-rules``: evaluates, notifies, serves /api/v1/alerts, reloads on
SIGHUP keeping the last good rules, and refuses to start on a rules file with mistakes."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from otelhouse.demo.payloads import realistic_request
from tests.alerts.conftest import Hook
from tests.serve_process import run_serve, serve_env, serving, stop_serve

RULES = """\
receivers:
  - name: ops
    webhook: {url}
rules:
  - alert: AnyRequests
    signal: traces
    measure: requests
    op: ">"
    threshold: 0
    window: 1h
    labels: {{severity: info}}
    annotations: {{summary: "{{{{ $value }}}} requests"}}
    notify: [ops]
"""


def wait_for(check: Callable[[], Any], timeout_s: float = 60) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_serve_evaluates_notifies_and_reloads(tmp_path: Path, hook: Hook) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(url=hook.url))
    env = serve_env(tmp_path / "data", alert_eval_interval_s=1)
    api = f"http://{env['OTELHOUSE_API_ADDR']}"
    with serving(env, "--alert-rules", str(rules)) as process:
        wait_for(lambda: _get(f"{api}/healthz"))
        response = httpx.post(
            f"http://{env['OTELHOUSE_OTLP_HTTP_ADDR']}/v1/traces",
            content=realistic_request(20).SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
        assert response.status_code == 200
        wait_for(lambda: hook.posts)
        (post,) = hook.posts
        assert post["status"] == "firing"
        assert post["alerts"][0]["generatorURL"].startswith(f"{api}/api/v1/alerts?alert=AnyRequests")
        current = httpx.get(f"{api}/api/v1/alerts").json()
        assert [(a["rule"], a["state"]) for a in current["alerts"]] == [("AnyRequests", "firing")]
        assert current["delivery"]["ops"]["sent"] == 1
        health = httpx.get(f"{api}/healthz").json()
        assert health["alerts"]["firing"] == 1
        history = httpx.get(f"{api}/api/v1/alerts/history").json()["transitions"]
        assert [t["state"] for t in history] == ["firing"]

        rules.write_text(RULES.format(url=hook.url).replace("op: \">\"", "op: bigger"))
        process.send_signal(signal.SIGHUP)
        loaded = wait_for(lambda: (r := _get(f"{api}/api/v1/alerts/rules")) and r["errors"] and r)
        assert loaded["errors"] == [
            "rule AnyRequests: field 'op': expected one of > >= < <= == !=, got 'bigger'"
        ]
        assert [r["alert"] for r in loaded["rules"]] == ["AnyRequests"]
        assert loaded["receivers"] == [{"name": "ops", "kind": "webhook"}]
        time.sleep(2)
        assert len(hook.posts) == 1
        output = stop_serve(process)
    assert process.returncode == 0, output


def test_serve_refuses_a_rules_file_with_mistakes(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.format(url="ftp://nowhere").replace("window: 1h", "window: soon"))
    result = run_serve(serve_env(tmp_path / "data"), "--alert-rules", str(rules))
    assert result.returncode != 0
    assert "receiver ops: field 'webhook': expected an http(s) URL, got 'ftp://nowhere'" in result.stderr
    assert "rule AnyRequests: field 'window': expected a duration like 30s, 5m or 1h, got 'soon'" in result.stderr


def _get(url: str) -> Any:
    try:
        response = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None

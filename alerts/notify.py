"""Notifications: Alertmanager webhook JSON (version "4") and Slack incoming-webhook text,
delivered by one worker thread per receiver from a bounded queue.

:meth:`Notifier.submit` never blocks: a full queue drops the notification (counted), so a
slow or dead receiver holds up neither evaluation nor ingest. A delivery is retried with
exponential backoff on a connection error, a timeout or a non-2xx answer, up to
``max_attempts``; then it is counted as failed.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx

from otelhouse.alerts.rules import ReceiverSpec

ZERO_TIME = "0001-01-01T00:00:00Z"
"""Alertmanager's ``endsAt`` of an alert still firing."""


@dataclass(frozen=True, slots=True)
class AlertEvent:
    """One alert's firing or resolution, as a notification tells it."""

    status: str
    labels: Mapping[str, str]
    annotations: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None
    fingerprint: str
    group_labels: Mapping[str, str]
    value: float


def rfc3339(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertmanager_payload(receiver: str, event: AlertEvent, external_url: str) -> dict[str, Any]:
    """The body Alertmanager POSTs to a webhook, for one alert."""
    alertname = event.labels["alertname"]
    return {
        "version": "4",
        "groupKey": f"{{}}:{{alertname={json.dumps(alertname)}}}",
        "truncatedAlerts": 0,
        "status": event.status,
        "receiver": receiver,
        "groupLabels": {"alertname": alertname, **event.group_labels},
        "commonLabels": dict(event.labels),
        "commonAnnotations": dict(event.annotations),
        "externalURL": external_url,
        "alerts": [
            {
                "status": event.status,
                "labels": dict(event.labels),
                "annotations": dict(event.annotations),
                "startsAt": rfc3339(event.starts_at),
                "endsAt": rfc3339(event.ends_at) if event.ends_at else ZERO_TIME,
                "generatorURL": f"{external_url}/api/v1/alerts?alert={quote(alertname)}",
                "fingerprint": event.fingerprint,
            }
        ],
    }


def slack_payload(event: AlertEvent) -> dict[str, str]:
    """Slack's incoming-webhook message for one alert."""
    head = "[FIRING]" if event.status == "firing" else "[RESOLVED]"
    labels = ", ".join(f"{k}={v}" for k, v in sorted(event.labels.items()) if k != "alertname")
    summary = event.annotations.get("summary") or event.annotations.get("description", "")
    lines = [f"{head} {event.labels['alertname']}" + (f" ({labels})" if labels else "")]
    if summary:
        lines.append(summary)
    lines.append(f"value {event.value:.4g} since {rfc3339(event.starts_at)}")
    return {"text": "\n".join(lines)}


@dataclass(slots=True)
class DeliveryStats:
    sent: int = 0
    retries: int = 0
    failed: int = 0
    dropped: int = 0
    last_error: str | None = None


class Notifier:
    """Workers per receiver; ``submit`` from any thread, ``close`` once."""

    def __init__(
        self,
        external_url: str,
        *,
        queue_size: int = 1000,
        timeout_s: float = 10.0,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
    ) -> None:
        self.external_url = external_url.rstrip("/")
        self._queue_size = queue_size
        self._timeout_s = timeout_s
        self._max_attempts = max_attempts
        self._backoff_s = backoff_s
        self._lock = threading.Lock()
        self._queues: dict[str, queue.Queue[tuple[ReceiverSpec, dict[str, Any]] | None]] = {}
        self._threads: list[threading.Thread] = []
        self._stats: dict[str, DeliveryStats] = {}
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self._closed = threading.Event()

    def submit(self, receiver: ReceiverSpec, event: AlertEvent) -> bool:
        """Queue ``event`` for ``receiver``; False (and counted as dropped) when its queue is
        full or the notifier is closed."""
        body = (
            slack_payload(event)
            if receiver.kind == "slack_webhook"
            else alertmanager_payload(receiver.name, event, self.external_url)
        )
        with self._lock:
            stats = self._stats.setdefault(receiver.name, DeliveryStats())
            if self._closed.is_set():
                stats.dropped += 1
                return False
            work = self._queues.get(receiver.name)
            if work is None:
                work = self._queues[receiver.name] = queue.Queue(self._queue_size)
                thread = threading.Thread(
                    target=self._work, args=(work,), name=f"alerts-notify-{receiver.name}",
                    daemon=True,
                )
                self._threads.append(thread)
                thread.start()
            try:
                work.put_nowait((receiver, body))
            except queue.Full:
                stats.dropped += 1
                return False
            self._pending += 1
            return True

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per receiver: sent, retries, failed, dropped and the last error."""
        with self._lock:
            return {name: vars_of(s) for name, s in self._stats.items()}

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until every submitted notification is delivered or given up."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout_s)

    def close(self, timeout_s: float = 2.0) -> None:
        """Stop the workers (what is queued is dropped after ``timeout_s``)."""
        self.wait_idle(timeout_s)
        self._closed.set()
        with self._lock:
            queues = list(self._queues.values())
        for work in queues:
            while True:
                try:
                    work.get_nowait()
                except queue.Empty:
                    break
            work.put(None)
        for thread in self._threads:
            thread.join(timeout=self._timeout_s)

    def _work(self, work: queue.Queue[tuple[ReceiverSpec, dict[str, Any]] | None]) -> None:
        with httpx.Client(timeout=self._timeout_s) as client:
            while (item := work.get()) is not None:
                receiver, body = item
                try:
                    self._deliver(client, receiver, body)
                finally:
                    with self._idle:
                        self._pending -= 1
                        self._idle.notify_all()

    def _deliver(self, client: httpx.Client, receiver: ReceiverSpec, body: dict[str, Any]) -> None:
        for attempt in range(self._max_attempts):
            if attempt:
                with self._lock:
                    self._stats[receiver.name].retries += 1
                if self._closed.wait(self._backoff_s * 2 ** (attempt - 1)):
                    break
            try:
                response = client.post(receiver.url, json=body)
                if 200 <= response.status_code < 300:
                    with self._lock:
                        self._stats[receiver.name].sent += 1
                    return
                error = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            with self._lock:
                self._stats[receiver.name].last_error = error
        with self._lock:
            self._stats[receiver.name].failed += 1


def vars_of(stats: DeliveryStats) -> dict[str, Any]:
    return {
        "sent": stats.sent,
        "retries": stats.retries,
        "failed": stats.failed,
        "dropped": stats.dropped,
        "last_error": stats.last_error,
    }

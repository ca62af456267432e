"""The health registry on the ground floor: named providers, one report."""

from __future__ import annotations

import pytest

from otelhouse.core.health import ComponentHealth, HealthRegistry


def test_report_is_healthy_only_when_every_component_is() -> None:
    health = HealthRegistry()
    assert health.report().healthy and health.report().components == {}
    health.register("queue", lambda: ComponentHealth({"depth": 1}))
    assert health.report().healthy
    health.register("disk", lambda: ComponentHealth("full", healthy=False))
    report = health.report()
    assert not report.healthy and report.components == {"queue": {"depth": 1}, "disk": "full"}
    health.unregister("disk")
    assert health.report().healthy


def test_names_are_unique_and_unregistering_an_unknown_name_fails() -> None:
    health = HealthRegistry()
    health.register("queue", lambda: ComponentHealth(0))
    with pytest.raises(ValueError, match="'queue' is already registered"):
        health.register("queue", lambda: ComponentHealth(1))
    with pytest.raises(KeyError):
        health.unregister("disk")


def test_a_provider_that_raises_makes_the_report_raise() -> None:
    health = HealthRegistry()

    def broken() -> ComponentHealth:
        raise RuntimeError("bug")

    health.register("broken", broken)
    with pytest.raises(RuntimeError, match="bug"):
        health.report()

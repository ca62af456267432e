"""The health registry: components register named state providers, ``/healthz`` reports them.

A provider returns a :class:`ComponentHealth`: the JSON value ``/healthz`` shows under the
component's name, and whether the component is healthy. Any unhealthy component makes the
whole report unhealthy. Numbers that only describe load (a queue's depth) are reported
healthy: a full queue still answers "retry later", which is the component working.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """``state`` is any JSON-serialisable value (a status word, a mapping of numbers)."""

    state: Any
    healthy: bool = True


HealthProvider = Callable[[], ComponentHealth]


@dataclass(frozen=True, slots=True)
class HealthReport:
    healthy: bool
    components: Mapping[str, Any]
    """Each registered name and its provider's ``state``, in registration order."""


class HealthRegistry:
    """Named providers, registered and read from any thread.

    ``report`` calls every provider outside the registry's lock; a provider that raises
    makes ``report`` raise (a provider reports failure through ``healthy``, not by raising).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: dict[str, HealthProvider] = {}

    def register(self, name: str, provider: HealthProvider) -> None:
        """Add ``provider`` under ``name``; raises ValueError when the name is taken."""
        with self._lock:
            if name in self._providers:
                raise ValueError(f"a health provider named {name!r} is already registered")
            self._providers[name] = provider

    def unregister(self, name: str) -> None:
        """Remove the provider under ``name``; raises KeyError when there is none."""
        with self._lock:
            del self._providers[name]

    def report(self) -> HealthReport:
        with self._lock:
            providers = list(self._providers.items())
        results = {name: provider() for name, provider in providers}
        return HealthReport(
            healthy=all(result.healthy for result in results.values()),
            components={name: result.state for name, result in results.items()},
        )

"""The resource that names a service in every span it sends."""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import AttributeValue

SERVICE_NAME = "service.name"
SERVICE_VERSION = "service.version"
DEPLOYMENT_ENVIRONMENT = "deployment.environment.name"


def build_resource(
    service_name: str | None = None,
    service_version: str | None = None,
    environment: str | None = None,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Resource:
    """Code-given values over ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` over SDK
    defaults: the precedence the OpenTelemetry spec gives programmatic configuration, which
    ``Resource.create`` implements; only values actually given here are passed to it, so an
    unset argument leaves the env var in force."""
    given: dict[str, AttributeValue] = dict(attributes or {})
    for key, value in (
        (SERVICE_NAME, service_name),
        (SERVICE_VERSION, service_version),
        (DEPLOYMENT_ENVIRONMENT, environment),
    ):
        if value:
            given[key] = value
    return Resource.create(given)

"""docker-compose.yml, the Dockerfile and the provisioning files agree with each other and
with otelhouse's settings and CLI -- checked without Docker."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from otelhouse.cli import build_parser
from otelhouse.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
_DEFAULTED = re.compile(r"\$\{(\w+)(?::?-([^}]*))?\}")


def resolve(text: str) -> str:
    """Compose interpolation with an empty environment: ``${X:-default}`` → default."""
    return _DEFAULTED.sub(lambda m: m.group(2) or "", text)


def environment(service: str) -> dict[str, str]:
    return {k: resolve(str(v)) for k, v in SERVICES[service].get("environment", {}).items()}


def _pinned(image: str) -> bool:
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest" and any(c.isdigit() for c in tag)


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_every_image_is_pinned(name: str) -> None:
    image = SERVICES[name]["image"]
    assert _pinned(image), f"{name}: {image} is not pinned to a version"


def test_dockerfile_base_image_is_pinned_and_runs_otelhouse() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text(encoding="utf-8")
    (base,) = re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.M)
    assert _pinned(base), base
    assert 'ENTRYPOINT ["otelhouse"]' in dockerfile


def test_services_others_depend_on_are_healthchecked() -> None:
    for name, service in SERVICES.items():
        for dependency, rule in service.get("depends_on", {}).items():
            assert rule == {"condition": "service_healthy"}, f"{name} -> {dependency}"
            assert "test" in SERVICES[dependency].get("healthcheck", {}), dependency


def test_otelhouse_settings_from_compose_are_valid_server_mode() -> None:
    env = environment("otelhouse")
    settings = Settings(**{k.removeprefix("OTELHOUSE_").lower(): v for k, v in env.items()})
    assert not settings.embedded and settings.effective_database == "otel"
    assert settings.clickhouse_url and "@clickhouse:8123/" in settings.clickhouse_url
    assert settings.otlp_grpc_addr.startswith("0.0.0.0:") and settings.api_addr.startswith("0.0.0.0:")
    ports = {p.split(":")[-1] for p in SERVICES["otelhouse"]["ports"]}
    assert {settings.otlp_grpc_addr.split(":")[1], settings.api_addr.split(":")[1]} <= ports


@pytest.mark.parametrize("name", ["otelhouse", "demo"])
def test_commands_parse_with_the_otelhouse_cli(name: str) -> None:
    command = SERVICES[name]["command"]
    parser = build_parser()
    subcommands = parser._subparsers._group_actions[0].choices  # noqa: SLF001 - argparse has no public accessor
    if command[0] not in subcommands:
        pytest.skip(f"`otelhouse {command[0]}` is not registered in this checkout yet")
    parser.parse_args(command)


def test_grafana_installs_a_pinned_plugin_and_gets_every_provisioning_variable() -> None:
    env = environment("grafana")
    plugin, version = env["GF_INSTALL_PLUGINS"].split()
    assert plugin == "grafana-clickhouse-datasource" and re.fullmatch(r"\d+\.\d+\.\d+", version)
    assert env["GF_SECURITY_ADMIN_PASSWORD"], "admin password needs a default"
    assert "GRAFANA_ADMIN_PASSWORD" in str(SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"])
    for path in (ROOT / "grafana" / "provisioning").rglob("*.yaml"):
        needed = set(re.findall(r"\$\{(\w+)\}", path.read_text(encoding="utf-8")))
        assert needed <= set(env), f"{path.name} needs {needed - set(env)}"


def test_grafana_reaches_clickhouse_and_otelhouse_by_service_name() -> None:
    env = environment("grafana")
    assert env["CLICKHOUSE_HOST"] in SERVICES
    assert env["OTELHOUSE_JAEGER_URL"] == f"http://otelhouse:{Settings(**{'api_addr': environment('otelhouse')['OTELHOUSE_API_ADDR']}).api_addr.split(':')[1]}/jaeger"
    assert env["CLICKHOUSE_DB"] == environment("clickhouse")["CLICKHOUSE_DB"] == "otel"


def test_clickhouse_keeps_its_data_in_a_volume() -> None:
    volumes = SERVICES["clickhouse"]["volumes"]
    assert any(v.split(":")[0] in COMPOSE["volumes"] and v.endswith("/var/lib/clickhouse") for v in volumes)

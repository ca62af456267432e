"""The ``otelhouse`` command.

Each subcommand registers itself through a ``register(subparsers)`` function in its own
module; flags that mirror a setting are generated from ``Settings`` so ``--help``, the env
vars and the defaults can never disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from otelhouse.demo import command as demo_command
from otelhouse.version import __version__
from otelhouse.settings import Settings, env_var, flag, unknown_env_vars
from otelhouse import query_cli as query_command


_METAVAR_BY_SUFFIX = (
    ("_addr", "HOST:PORT"),
    ("_url", "URL"),
    ("_tokens", "TOKEN[,TOKEN...]"),
    ("_dir", "DIR"),
    ("_file", "FILE"),
    ("_ms", "MS"),
    ("_s", "SECONDS"),
    ("_bytes", "BYTES"),
    ("_days", "DAYS"),
)


def metavar(name: str, field: FieldInfo) -> str:
    """The placeholder ``--help`` shows for a setting: what kind of value it takes, from its
    unit suffix or its type (``--stats-interval-s SECONDS``, ``--max-events-per-span N``)."""
    for suffix, placeholder in _METAVAR_BY_SUFFIX:
        if name.endswith(suffix):
            return placeholder
    if field.annotation is bool:
        return "true|false"
    if field.annotation in (int, float):
        return "N"
    return "NAME"


def add_settings_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """One ``--flag`` per named setting, documented with its env var and default; a flag
    that is not given leaves the env var (or default) in force."""
    for name in names:
        field = Settings.model_fields[name]
        parser.add_argument(
            flag(name),
            dest=name,
            default=argparse.SUPPRESS,
            metavar=metavar(name, field),
            help=f"{field.description} [env {env_var(name)}; default {field.default}]",
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """The settings from flags over env vars; a bad value exits naming the flag or the env
    var it came from, and the value."""
    overrides = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(_problem(error, overrides) for error in exc.errors())
        raise SystemExit(f"otelhouse: invalid setting: {problems}") from None


def _problem(error: Any, overrides: dict[str, Any]) -> str:
    name = str(error["loc"][0]) if error["loc"] else ""
    if name not in Settings.model_fields:
        return f"{name or 'settings'}: {error['msg']}"
    value = error.get("input")
    source = f"{flag(name)} {value!r}" if name in overrides else f"{env_var(name)}={value!r}"
    return f"{source}: {error['msg']}"


SERVE_SETTINGS: tuple[str, ...] = tuple(Settings.model_fields)


def _register_serve(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the OTLP receiver and the query API",
        description=(
            "Receive OpenTelemetry traces and logs over OTLP (gRPC and HTTP) and store them in "
            "ClickHouse tables (the Collector exporter's schema). Without --clickhouse-url the store is an "
            "embedded ClickHouse (chdb) in --data-dir: no server to install. Every flag can "
            "also be set with the OTELHOUSE_* env var named in its help; flags win."
        ),
    )
    add_settings_flags(parser, SERVE_SETTINGS)
    parser.set_defaults(handler=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    from otelhouse.serve import StartupError, serve

    settings = settings_from_args(args)
    try:
        asyncio.run(serve(settings))
    except KeyboardInterrupt:
        pass
    except StartupError as exc:
        print(f"otelhouse: {exc}", file=sys.stderr)
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otelhouse",
        description="OpenTelemetry backend on ClickHouse: embedded by default, a server later.",
    )
    parser.add_argument("--version", action="version", version=f"otelhouse {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    _register_serve(subparsers)
    demo_command.register(subparsers)
    query_command.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for warning in unknown_env_vars(os.environ):
        logging.getLogger("otelhouse").warning("%s", warning)
    return args.handler(args) or 0


if __name__ == "__main__":
    sys.exit(main())

"""The ``otelhouse`` command.

Each subcommand registers itself through a ``register(subparsers)`` function in its own
module; flags that mirror a setting are generated from ``Settings`` so ``--help``, the env
vars and the defaults can never disagree.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

from otelhouse.demo import command as demo_command
from otelhouse.version import __version__
from otelhouse.settings import Settings
from otelhouse import query_cli as query_command


def add_settings_flags(parser: argparse.ArgumentParser, names: Iterable[str]) -> None:
    """One ``--flag`` per named setting, documented with its env var and default; a flag
    that is not given leaves the env var (or default) in force."""
    for name in names:
        field = Settings.model_fields[name]
        env = f"OTELHOUSE_{name.upper()}"
        default = field.default
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=argparse.SUPPRESS,
            metavar=name.split("_")[-1].upper(),
            help=f"{field.description} [env {env}; default {default}]",
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in Settings.model_fields if hasattr(args, name)}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise SystemExit(f"otelhouse: invalid setting: {problems}") from None


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
    return args.handler(args) or 0


if __name__ == "__main__":
    sys.exit(main())

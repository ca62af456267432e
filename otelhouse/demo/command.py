"""``otelhouse demo``: the subcommand's flags and handler (the heavy imports wait for use)."""

from __future__ import annotations

import argparse
import asyncio
import logging
from typing import Any

CHATTY_LOGGERS = ("httpx",)
"""A line per request from these would bury the progress lines; ``-v`` lets them through."""
SERVICES_LOGGER = "otelhouse.demo.services"
"""The services' lines go to otelhouse as logs, and to the console only with ``-v``."""


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _not_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text}")
    return int(text)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run two instrumented demo services and a load generator against otelhouse",
        description=(
            "Start two small instrumented FastAPI services, 'shop' and 'inventory' (shop calls "
            "inventory over HTTP, so traces cross services), and send them a steady mix of "
            "fast, slow, failing (5xx), raising and not-found (404) requests. Spans go over "
            "OTLP/gRPC to a running `otelhouse serve`: start that first. Prints progress every "
            "few seconds; Ctrl-C stops the load, the services, and flushes the last spans."
        ),
    )
    parser.add_argument(
        "--otlp-endpoint",
        default="127.0.0.1:4317",
        metavar="HOST:PORT",
        help="where `otelhouse serve` receives OTLP/gRPC [default 127.0.0.1:4317]",
    )
    parser.add_argument(
        "--rate", type=_positive, default=20.0, help="requests per second to shop [default 20]"
    )
    parser.add_argument(
        "--duration",
        type=_not_negative,
        default=0.0,
        metavar="SECONDS",
        help="stop after this many seconds; 0 runs until Ctrl-C [default 0]",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address the services listen on")
    parser.add_argument(
        "--shop-port", type=_port, default=0, help="0 picks a free port [default 0]"
    )
    parser.add_argument(
        "--inventory-port", type=_port, default=0, help="0 picks a free port [default 0]"
    )
    parser.add_argument(
        "--progress-interval",
        type=_positive,
        default=5.0,
        metavar="SECONDS",
        help="seconds between progress lines [default 5]",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed for a repeatable mix")
    parser.set_defaults(handler=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    from otelhouse.demo.load import Tally
    from otelhouse.demo.runner import DemoError, DemoOptions, run_demo

    options = DemoOptions(
        otlp_endpoint=args.otlp_endpoint,
        rate=args.rate,
        duration_s=args.duration or None,
        host=args.host,
        shop_port=args.shop_port,
        inventory_port=args.inventory_port,
        progress_interval_s=args.progress_interval,
        seed=args.seed,
    )
    if not getattr(args, "verbose", False):
        for name in CHATTY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        services = logging.getLogger(SERVICES_LOGGER)
        services.propagate = False
        services.addHandler(logging.NullHandler())
    tally = Tally()
    try:
        asyncio.run(run_demo(options, tally))
    except DemoError as exc:
        raise SystemExit(f"otelhouse demo: {exc}") from None
    except KeyboardInterrupt:
        pass
    print(f"done: {tally.summary()}", flush=True)
    print(NEXT_STEP, flush=True)
    return 0


NEXT_STEP = (
    "next: `otelhouse query services --since 15m` shows shop's and inventory's requests, "
    "errors and latency (`otelhouse query --help` lists the other views)"
)

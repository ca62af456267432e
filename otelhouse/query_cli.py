"""``otelhouse query``: the query API in a terminal, as aligned tables or ``--json``.

It talks HTTP to a running ``otelhouse serve`` (in embedded mode only that process may open
the data directory), at ``--url`` or the address in ``OTELHOUSE_API_ADDR``, with the bearer
token from ``--token`` or ``OTELHOUSE_API_TOKEN``. A server with ``--tls-cert-file`` answers
only https; ``--ca-file`` names the CA to trust when the system's do not (a self-signed
certificate is its own CA).

Each subcommand is a :class:`View`: which endpoint it asks, with which query parameters, and
which columns it shows. ``logs --follow`` keeps asking for newer records (:func:`follow`).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import ssl
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from otelhouse.core.addresses import split_host_port
from otelhouse.settings import Settings

TOKEN_ENV = "OTELHOUSE_API_TOKEN"
ADDR_ENV = "OTELHOUSE_API_ADDR"
TLS_ENV = "OTELHOUSE_TLS_CERT_FILE"


def default_url() -> str:
    """The API address ``otelhouse serve`` would listen on with the same environment (https
    when that environment gives it a certificate); a wildcard listen address is reached on
    loopback."""
    addr = os.environ.get(ADDR_ENV) or Settings.model_fields["api_addr"].default
    try:
        host, port = split_host_port(addr)
    except ValueError:
        raise SystemExit(f"otelhouse query: {ADDR_ENV}={addr!r} is not host:port") from None
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    scheme = "https" if os.environ.get(TLS_ENV) else "http"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class Column:
    header: str
    value: Callable[[dict[str, Any]], Any]
    numeric: bool = False


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def percent(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Columns padded to their widest cell; numbers right-aligned, text left-aligned."""
    cells = [[c.header for c in columns]] + [[str(c.value(row)) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            text.rjust(width) if column.numeric else text.ljust(width)
            for text, width, column in zip(line, widths, columns, strict=True)
        ).rstrip()
        for line in cells
    ]
    return "\n".join(lines)


RATE_COLUMNS = (
    Column("ERRORS", lambda r: r["errors"], numeric=True),
    Column("ERR%", lambda r: percent(r["error_rate"]), numeric=True),
    Column("RATE/S", lambda r: f"{r['rate_per_s']:.2f}", numeric=True),
    Column("P50 MS", lambda r: ms(r["p50_ms"]), numeric=True),
    Column("P90 MS", lambda r: ms(r["p90_ms"]), numeric=True),
    Column("P95 MS", lambda r: ms(r["p95_ms"]), numeric=True),
    Column("P99 MS", lambda r: ms(r["p99_ms"]), numeric=True),
)
REQUEST_COLUMNS = (Column("REQUESTS", lambda r: r["requests"], numeric=True), *RATE_COLUMNS)
SPAN_COLUMNS = (Column("SPANS", lambda r: r["spans"], numeric=True), *RATE_COLUMNS)
ENDPOINT_COLUMNS = (
    Column("REQUESTS", lambda r: r["requests"], numeric=True),
    Column("ERRORS", lambda r: r["errors"], numeric=True),
    Column("ERR%", lambda r: percent(r["error_rate"]), numeric=True),
    Column("RATE/S", lambda r: f"{r['rate_per_s']:.2f}", numeric=True),
    Column("AVG MS", lambda r: ms(r["avg_ms"]), numeric=True),
    Column("P95 MS", lambda r: ms(r["p95_ms"]), numeric=True),
)


@dataclass(frozen=True, slots=True)
class View:
    """One subcommand: the endpoint, its query parameters and the table of its answer."""

    help: str
    path: Callable[[argparse.Namespace], str]
    rows: Callable[[dict[str, Any]], list[dict[str, Any]]]
    columns: tuple[Column, ...]
    options: Callable[[argparse.ArgumentParser], None] = lambda parser: None
    params: Callable[[argparse.Namespace], dict[str, Any]] = lambda args: {}


def _service_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--service", help="only this service (exact name)")


def _limit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, help="at most this many rows (server default)")


def _traces_options(parser: argparse.ArgumentParser) -> None:
    _service_option(parser)
    parser.add_argument("--operation", help="only traces with a span of this name")
    parser.add_argument("--min-duration-ms", type=float, help="whole-trace duration at least")
    parser.add_argument("--max-duration-ms", type=float, help="whole-trace duration at most")
    parser.add_argument("--status", choices=("error", "ok"), help="failed or clean traces")
    _attr_option(parser, "http.route:/users/{id}")
    parser.add_argument("--order", help="newest, oldest, slowest or fastest first")
    _limit_option(parser)


def _exceptions_options(parser: argparse.ArgumentParser) -> None:
    _service_option(parser)
    _limit_option(parser)


def _operations_kind_options(parser: argparse.ArgumentParser) -> None:
    _service_option(parser)
    parser.add_argument(
        "--kind",
        choices=("Server", "Client", "Internal", "Producer", "Consumer", "Unspecified"),
        help="only spans of this kind (Client: the service's outgoing calls)",
    )
    parser.add_argument("--sort", choices=("count", "p99", "error_rate"), help="row order")
    _limit_option(parser)


def _latency_options(parser: argparse.ArgumentParser) -> None:
    _service_option(parser)
    parser.add_argument("--operation", help="only requests with this span name")
    parser.add_argument("--step", help="bucket width: 30s, 5m, 1h [about 60 buckets]")


def _errors_options(parser: argparse.ArgumentParser) -> None:
    _service_option(parser)
    parser.add_argument(
        "--group-by",
        choices=("operation", "status_code"),
        help="group failed requests by span name or HTTP status [operation]",
    )
    _limit_option(parser)


def _service_limit_options(parser: argparse.ArgumentParser) -> None:
    _service_option(parser)
    _limit_option(parser)


def _summary_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [body]


def _errors_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    total = {"service": "(all)", "operation": "", "status_code": None, **body}
    return [total, *body["groups"]]


def _exception_of(span: dict[str, Any]) -> str:
    """The first exception event of a span, as ``Type: message``; empty without one."""
    for event in span["events"]:
        if event["name"] == "exception":
            attributes = event["attributes"]
            kind = attributes.get("exception.type", "")
            message = attributes.get("exception.message", "")
            return f"{kind}: {message}" if kind and message else kind or message
    return ""


def _http_status(span: dict[str, Any]) -> str:
    attributes = span["attributes"]
    return attributes.get("http.response.status_code") or attributes.get("http.status_code", "")


def _trace_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("trace_id", metavar="ID", help="32 hex characters")


def _attr_option(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument(
        "--attr",
        action="append",
        default=[],
        metavar="KEY:VALUE",
        help=f"attribute filter, repeatable (e.g. {example})",
    )


def _logs_options(parser: argparse.ArgumentParser) -> None:
    _service_option(parser)
    parser.add_argument(
        "--severity", help="this level and above: trace|debug|info|warn|error|fatal"
    )
    parser.add_argument(
        "--grep", metavar="TEXT", help="body contains TEXT (case-insensitive substring)"
    )
    parser.add_argument("--trace-id", help="only records of this trace")
    _attr_option(parser, "user.id:42")
    _limit_option(parser)
    parser.add_argument(
        "--follow",
        "-f",
        action="store_true",
        help="keep printing records as they arrive, oldest first, until Ctrl-C",
    )
    parser.add_argument(
        "--interval", type=float, default=2.0, help="--follow: seconds between polls [2]"
    )


def _logs_params(args: argparse.Namespace) -> dict[str, Any]:
    grep = {"q": args.grep} if args.grep is not None else {}
    return {**_given(args, "service", "severity", "trace_id", "attr", "limit"), **grep}


def _metric_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="metric name (exact)")
    _service_option(parser)
    parser.add_argument(
        "--agg",
        help="gauges avg|min|max|last, sums rate|increase, histograms p50|p90|p95|p99|avg|rate "
        "[the type's first]",
    )
    parser.add_argument(
        "--group-by", action="append", default=[], metavar="KEY",
        help="point attribute to group by, repeatable",
    )
    parser.add_argument(
        "--where", action="append", default=[], metavar="KEY:VALUE",
        help="point attribute filter, repeatable (e.g. http.route:/users/{id})",
    )
    parser.add_argument("--step", help="bucket width: 30s, 5m, 1h [up to 60 buckets]")


def _metric_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per series and bucket; a series is named by its labels."""
    return [
        {
            "labels": ",".join(f"{k}={v}" for k, v in series["labels"].items()) or "(all)",
            "time": datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z"),
            "value": value,
        }
        for series in body["series"]
        for t, value in series["points"]
    ]


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The named options the user gave; the rest keep the server's defaults."""
    return {name: getattr(args, name) for name in names if getattr(args, name) not in (None, [])}


def _span_depths(spans: list[dict[str, Any]]) -> dict[str, int]:
    """Depth of each span below its trace's roots, to indent the span tree."""
    parents = {span["span_id"]: span["parent_span_id"] for span in spans}
    depths: dict[str, int] = {}
    for span_id in parents:
        chain, current = [], span_id
        while current in parents and current not in depths and current not in chain:
            chain.append(current)
            current = parents[current]
        base = depths.get(current, -1)
        for offset, seen in enumerate(reversed(chain), start=1):
            depths[seen] = base + offset
    return depths


def _trace_rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    spans = body["spans"]
    depths = _span_depths(spans)
    return [{**span, "depth": depths[span["span_id"]]} for span in spans]


LOG_COLUMNS = (
    Column("TIME", lambda r: r["timestamp"]),
    Column("SEVERITY", lambda r: r["severity_text"] or r["severity_number"]),
    Column("SERVICE", lambda r: r["service"]),
    Column("TRACE ID", lambda r: r["trace_id"] or "-"),
    Column("BODY", lambda r: r["body"].replace("\n", "\\n")),
)


VIEWS: dict[str, View] = {
    "services": View(
        help="per service: its requests (entry spans), failed requests, rate and latency",
        path=lambda args: "/api/v1/services",
        rows=lambda body: body["services"],
        columns=(
            Column("SERVICE", lambda r: r["service"]),
            *REQUEST_COLUMNS,
            Column("ALL SPANS", lambda r: r["spans"], numeric=True),
        ),
    ),
    "operations": View(
        help="every span per service, span name and kind (outgoing calls included)",
        path=lambda args: "/api/v1/operations",
        rows=lambda body: body["operations"],
        columns=(
            Column("SERVICE", lambda r: r["service"]),
            Column("OPERATION", lambda r: r["operation"]),
            Column("KIND", lambda r: r["kind"]),
            *SPAN_COLUMNS,
        ),
        options=_operations_kind_options,
        params=lambda args: _given(args, "service", "kind", "sort", "limit"),
    ),
    "latency": View(
        help="requests, errors, rate and latency per time bucket",
        path=lambda args: "/api/v1/latency",
        rows=lambda body: body["buckets"],
        columns=(Column("START", lambda r: r["start"]), *REQUEST_COLUMNS),
        options=_latency_options,
        params=lambda args: _given(args, "service", "operation", "step"),
    ),
    "errors": View(
        help="failed requests per operation or HTTP status, with the total first",
        path=lambda args: "/api/v1/errors",
        rows=_errors_rows,
        columns=(
            Column("SERVICE", lambda r: r["service"]),
            Column(
                "GROUP",
                lambda r: r["operation"] if r.get("status_code") is None else r["status_code"],
            ),
            Column("REQUESTS", lambda r: r["requests"], numeric=True),
            Column("ERRORS", lambda r: r["errors"], numeric=True),
            Column("ERR%", lambda r: percent(r["error_rate"]), numeric=True),
        ),
        options=_errors_options,
        params=lambda args: _given(args, "service", "group_by", "limit"),
    ),
    "summary": View(
        help="all requests in the range: count, errors, rate, latency, endpoints",
        path=lambda args: "/api/v1/summary",
        rows=_summary_rows,
        columns=(*ENDPOINT_COLUMNS, Column("ENDPOINTS", lambda r: r["endpoints"], numeric=True)),
        options=_service_option,
        params=lambda args: _given(args, "service"),
    ),
    "endpoints": View(
        help="the busiest endpoints (service, method, route)",
        path=lambda args: "/api/v1/endpoints/top",
        rows=lambda body: body["endpoints"],
        columns=(
            Column("SERVICE", lambda r: r["service"]),
            Column("METHOD", lambda r: r["method"] or "-"),
            Column("ROUTE", lambda r: r["route"]),
            *ENDPOINT_COLUMNS,
        ),
        options=_service_limit_options,
        params=lambda args: _given(args, "service", "limit"),
    ),
    "requests": View(
        help="the newest requests, newest first",
        path=lambda args: "/api/v1/requests/recent",
        rows=lambda body: body["requests"],
        columns=(
            Column("TIME", lambda r: r["time"]),
            Column("SERVICE", lambda r: r["service"]),
            Column("METHOD", lambda r: r["method"] or "-"),
            Column("ROUTE", lambda r: r["route"]),
            Column("STATUS", lambda r: r["status_code"] or "-", numeric=True),
            Column("ERROR", lambda r: "error" if r["error"] else ""),
            Column("DURATION MS", lambda r: ms(r["duration_ms"]), numeric=True),
            Column("TRACE ID", lambda r: r["trace_id"]),
        ),
        options=_service_limit_options,
        params=lambda args: _given(args, "service", "limit"),
    ),
    "map": View(
        help="the service map: calls, errors and p95 per caller -> callee",
        path=lambda args: "/api/v1/service-map",
        rows=lambda body: body["edges"],
        columns=(
            Column("CALLER", lambda r: r["caller"]),
            Column("CALLEE", lambda r: r["callee"]),
            Column("CALLS", lambda r: r["calls"], numeric=True),
            Column("ERRORS", lambda r: r["errors"], numeric=True),
            Column("ERR%", lambda r: percent(r["error_rate"]), numeric=True),
            Column("P95 MS", lambda r: ms(r["p95_ms"]), numeric=True),
        ),
    ),
    "traces": View(
        help="search traces: one summary line per trace",
        path=lambda args: "/api/v1/traces",
        rows=lambda body: body["traces"],
        columns=(
            Column("TRACE ID", lambda r: r["trace_id"]),
            Column("START", lambda r: r["start"]),
            Column("DURATION MS", lambda r: ms(r["duration_ms"]), numeric=True),
            Column("SPANS", lambda r: r["span_count"], numeric=True),
            Column("ERROR", lambda r: "error" if r["error"] else ""),
            Column("ROOT", lambda r: f"{r['root_service']}: {r['root_operation']}"),
            Column("SERVICES", lambda r: ",".join(r["services"])),
        ),
        options=_traces_options,
        params=lambda args: _given(
            args,
            "service",
            "operation",
            "min_duration_ms",
            "max_duration_ms",
            "status",
            "attr",
            "order",
            "limit",
        ),
    ),
    "trace": View(
        help="every span of one trace, as an indented tree in start order",
        path=lambda args: f"/api/v1/traces/{quote(args.trace_id, safe='')}",
        rows=_trace_rows,
        columns=(
            Column("START", lambda r: r["start"]),
            Column("DURATION MS", lambda r: ms(r["duration_ms"]), numeric=True),
            Column("SERVICE", lambda r: r["service"]),
            Column("SPAN", lambda r: "  " * r["depth"] + r["name"]),
            Column("KIND", lambda r: r["kind"]),
            Column("STATUS", lambda r: "error" if r["error"] else r["status_code"]),
            Column("HTTP", lambda r: _http_status(r) or "-"),
            Column("SPAN ID", lambda r: r["span_id"]),
            Column("MESSAGE", lambda r: r["status_message"].replace("\n", "\\n")),
            Column("EXCEPTION", lambda r: _exception_of(r).replace("\n", "\\n")),
        ),
        options=_trace_options,
    ),
    "exceptions": View(
        help="exceptions grouped by service, type and normalised message",
        path=lambda args: "/api/v1/exceptions",
        rows=lambda body: body["exceptions"],
        columns=(
            Column("COUNT", lambda r: r["count"], numeric=True),
            Column("SERVICE", lambda r: r["service"]),
            Column("TYPE", lambda r: r["type"]),
            Column("MESSAGE", lambda r: r["message"]),
            Column("LAST SEEN", lambda r: r["last_seen"]),
            Column("SAMPLE TRACE", lambda r: (r["sample_trace_ids"] or [""])[0]),
        ),
        options=_exceptions_options,
        params=lambda args: _given(args, "service", "limit"),
    ),
    "metrics": View(
        help="metrics with points in the range: type, unit, services, attribute keys",
        path=lambda args: "/api/v1/metrics",
        rows=lambda body: body["metrics"],
        columns=(
            Column("METRIC", lambda r: r["name"]),
            Column("TYPE", lambda r: r["type"]),
            Column("UNIT", lambda r: r["unit"]),
            Column("SERVICES", lambda r: ",".join(r["services"])),
            Column("ATTRIBUTES", lambda r: ",".join(r["attribute_keys"])),
            Column("DESCRIPTION", lambda r: r["description"]),
        ),
        options=_service_option,
        params=lambda args: _given(args, "service"),
    ),
    "metric": View(
        help="one metric over time, aggregated per step (and per --group-by attributes)",
        path=lambda args: "/api/v1/metrics/query",
        rows=_metric_rows,
        columns=(
            Column("SERIES", lambda r: r["labels"]),
            Column("TIME", lambda r: r["time"]),
            Column("VALUE", lambda r: f"{r['value']:.6g}", numeric=True),
        ),
        options=_metric_options,
        params=lambda args: {
            "name": args.name, **_given(args, "service", "agg", "group_by", "where", "step")
        },
    ),
    "logs": View(
        help="log records, newest first (or --follow: new ones as they arrive)",
        path=lambda args: "/api/v1/logs",
        rows=lambda body: body["logs"],
        columns=LOG_COLUMNS,
        options=_logs_options,
        params=_logs_params,
    ),
}


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("connection and range")
    group.add_argument(
        "--url",
        help=f"API base URL, http:// or https:// [default http://${ADDR_ENV} (https:// when "
        f"{TLS_ENV} is set, as serve would), else http://127.0.0.1:8080]",
    )
    group.add_argument(
        "--ca-file",
        metavar="PEM",
        help="CA certificate(s) to trust for an https:// API instead of the system's; for a "
        "self-signed serve --tls-cert-file, that file itself",
    )
    group.add_argument("--token", help=f"bearer token [env {TOKEN_ENV}]")
    group.add_argument("--json", action="store_true", help="print the API's JSON answer")
    group.add_argument("--since", help="range ending now (or at --end): 15m, 1h, 24h, 7d [1h]")
    group.add_argument("--start", help="range start: RFC 3339 or epoch milliseconds")
    group.add_argument("--end", help="range end: RFC 3339 or epoch milliseconds [now]")
    group.add_argument("--timeout", type=float, default=30.0, help="seconds to wait [30]")
    return common


def register(subparsers: Any) -> None:
    """Add ``otelhouse query`` and its subcommands."""
    parser = subparsers.add_parser(
        "query",
        help="ask a running otelhouse for services, latency, errors, endpoints, requests, "
        "the service map, traces, exceptions, logs and metrics",
        description=(
            "Query a running `otelhouse serve` over its HTTP API and print tables (or --json). "
            f"The server is found at --url or {ADDR_ENV}; a token comes from --token or "
            f"{TOKEN_ENV} when the server has OTELHOUSE_API_TOKENS set."
        ),
    )
    views = parser.add_subparsers(title="what to show", metavar="VIEW", required=True)
    common = _common_options()
    for name, view in VIEWS.items():
        sub = views.add_parser(name, help=view.help, description=view.help, parents=[common])
        view.options(sub)
        sub.set_defaults(handler=run, view=name)


def _base_url(args: argparse.Namespace) -> str:
    url = (args.url or default_url()).rstrip("/")
    return url if "://" in url else f"http://{url}"


def fetch(
    args: argparse.Namespace, view: View, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """GET the view's endpoint with its parameters, ``overrides`` replacing them (None
    removing one); every failure becomes a message saying what to do."""
    base = _base_url(args)
    token = args.token or os.environ.get(TOKEN_ENV)
    params = {**_given(args, "since", "start", "end"), **view.params(args), **(overrides or {})}
    params = {name: value for name, value in params.items() if value is not None}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("httpx").setLevel(logging.WARNING)
    verify = _trust(args.ca_file)
    try:
        response = httpx.get(
            base + view.path(args),
            params=params,
            headers=headers,
            timeout=args.timeout,
            verify=verify,
        )
    except httpx.TransportError as exc:
        raise SystemExit(f"otelhouse query: {_unreachable(base, exc)}") from None
    if response.status_code == 401:
        raise SystemExit(
            f"otelhouse query: {base} wants a bearer token: pass --token or set {TOKEN_ENV}."
        )
    if response.status_code >= 400:
        raise SystemExit(f"otelhouse query: {response.status_code}: {_problem(response)}")
    return response.json()


def _trust(ca_file: str | None) -> ssl.SSLContext | bool:
    if ca_file is None:
        return True
    try:
        return ssl.create_default_context(cafile=ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(
            f"otelhouse query: cannot use --ca-file {ca_file} ({exc}); it must be a PEM "
            "certificate file"
        ) from None


def _unreachable(base: str, exc: httpx.TransportError) -> str:
    """Why no answer came, worded as what to change: an untrusted certificate and plain
    http to a TLS port look like any other connection failure otherwise."""
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, ssl.SSLCertVerificationError):
        cause = cause.__cause__ or cause.__context__
    if cause is not None:
        return (
            f"{base} presented a certificate this machine does not trust ({cause.verify_message})."
            " Pass --ca-file with the CA that signed it (for a self-signed --tls-cert-file, "
            "that file)."
        )
    if isinstance(exc, httpx.RemoteProtocolError) and base.startswith("http://"):
        return (
            f"{base} closed the connection without answering. If `otelhouse serve` runs with "
            "--tls-cert-file, use an https:// --url."
        )
    return (
        f"cannot reach the otelhouse API at {base} ({exc}). "
        f"Is `otelhouse serve` running? Point --url or {ADDR_ENV} at it."
    )


def _problem(response: httpx.Response) -> str:
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        return response.text[:500]
    if isinstance(detail, list):
        return "; ".join(f"{d['loc'][-1]}: {d['msg']}" for d in detail)
    return str(detail)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
FOLLOW_PAGE = 1000


def _epoch_ns(text: str) -> int:
    delta = datetime.fromisoformat(text) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _rfc3339(ns: int) -> str:
    """``ns`` rounded down to the microsecond, which is as fine as the API's ``start`` goes."""
    moment = _EPOCH + timedelta(microseconds=ns // 1_000)
    return moment.isoformat().replace("+00:00", "Z")


def _record_key(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True)


@dataclass(slots=True)
class Tail:
    """How far ``--follow`` has printed: records stamped after ``ns``, or at ``ns`` and not
    in ``printed_at_ns``, are new."""

    ns: int
    printed_at_ns: set[str] = field(default_factory=set)

    def admit(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The new ones among ``records``, oldest first, now counted as printed."""
        fresh: dict[str, dict[str, Any]] = {}
        for record in records:
            ns, key = record["timestamp_unix_nano"], _record_key(record)
            if ns > self.ns or (ns == self.ns and key not in self.printed_at_ns):
                fresh[key] = record
        ordered = sorted(fresh.values(), key=lambda r: r["timestamp_unix_nano"])
        if ordered:
            newest = ordered[-1]["timestamp_unix_nano"]
            at_newest = {k for k, r in fresh.items() if r["timestamp_unix_nano"] == newest}
            self.printed_at_ns = at_newest | (self.printed_at_ns if newest == self.ns else set())
            self.ns = newest
        return ordered


def _print_records(args: argparse.Namespace, records: list[dict[str, Any]]) -> None:
    for record in records:
        if args.json:
            print(json.dumps(record, ensure_ascii=False), flush=True)
        else:
            print("  ".join(str(c.value(record)) for c in LOG_COLUMNS), flush=True)


def follow(args: argparse.Namespace, view: View) -> int:
    """Print the newest page oldest first, then, every ``--interval`` seconds, the records
    stamped since the newest printed one (each once), like ``tail -f``; Ctrl-C ends it with
    status 0. Records stored late with a timestamp before the newest printed one are not
    shown. ``--json`` prints one JSON record per line."""
    if args.end:
        raise SystemExit("otelhouse query logs: --follow reads up to now; drop --end")
    try:
        first = fetch(args, view)
        tail = Tail(_epoch_ns(first["start"]))
        _print_records(args, tail.admit(first["logs"]))
        while True:
            time.sleep(args.interval)
            records, cursor = [], None
            since = {"since": None, "start": _rfc3339(tail.ns), "limit": FOLLOW_PAGE}
            while True:
                page = fetch(args, view, {**since, "cursor": cursor})
                records.extend(page["logs"])
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            _print_records(args, tail.admit(records))
    except KeyboardInterrupt:
        return 0


def run(args: argparse.Namespace) -> int:
    view = VIEWS[args.view]
    if getattr(args, "follow", False):
        return follow(args, view)
    body = fetch(args, view)
    if args.json:
        json.dump(body, sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    rows = view.rows(body)
    print(format_table(rows, view.columns))
    if not rows:
        print(f"(no {args.view} in the range)")
    return 0

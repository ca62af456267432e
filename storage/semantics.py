"""What otelhouse means by "request", "error" and "the same exception": the one place the
Python that builds SQL (query API, Grafana dashboards) finds these rules.

Each rule is a MATERIALIZED column computed by ClickHouse on insert, whoever the writer is, so
every endpoint and dashboard counts and groups the same way; this module names the columns:

- **error**: ``StatusCode = 'Error'`` or an HTTP response status >= 500
  (``http.response.status_code``, or the older ``http.status_code``) → ``otel_traces.IsError``
  (``storage/schema/0002_hot_columns.sql``). 4xx answers are the client's mistake, not the
  service's, so they are not errors.
- **request**: a service's entry spans, where work enters the service: a span of kind
  ``Server`` or ``Consumer``, or a root span (no parent) → ``otel_traces.IsRequest``
  (``storage/schema/0008_entry_spans.sql``). A span whose parent belongs to another service
  is an entry too; a column cannot see the parent, and instrumentation that follows the
  semantic conventions makes that span a Server or Consumer span (docs/architecture.md).
  Everything a service says about itself (requests, errors, error rate, latency, rate)
  is computed over these spans; outgoing calls (Client, Producer) and internal work count
  only in the per-operation view.
- **a request's error**: a request that is an error by the rule above
  (:data:`REQUEST_ERROR`); a 404 an outgoing call received is neither.
- **peer**: the callee a Client or Producer span names (``peer.service``, else
  ``server.address``) → ``otel_traces.PeerService`` (migration 0008), for service-map edges
  to callees that report no spans.
- **error, in HTTP server metrics**: a point of ``http.server.request.duration`` whose
  ``error.type`` attribute is set or whose ``http.response.status_code`` is >= 500 (the
  same 5xx rule; metrics have no span status) → ``HTTP_METRIC_ERROR``, a condition on the
  metrics tables' ``Attributes``.
- **same exception**: same ``Type`` and same ``NormalizedMessage`` of ``otelhouse_exceptions``
  (``storage/schema/0005_exception_groups.sql``, where the masking of quoted strings, UUIDs,
  hex ids and numbers is written and explained).
"""

ERROR = "IsError = 1"
REQUEST = "IsRequest = 1"
REQUEST_ERROR = f"{REQUEST} AND {ERROR}"
PEER = "PeerService"
EXCEPTION_MESSAGE = "NormalizedMessage"
"""The exception message with what varies between occurrences masked."""

HTTP_SERVER_DURATION = "http.server.request.duration"
"""The semantic conventions' histogram of HTTP server request durations (seconds)."""
HTTP_METRIC_ERROR = (
    "(Attributes['error.type'] != '' "
    "OR toUInt16OrZero(Attributes['http.response.status_code']) >= 500)"
)

LEVELS: tuple[str, ...] = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL")
"""OTel's six log levels; each is a range of four SeverityNumbers (TRACE 1-4 ... FATAL 21-24)."""
MAX_SEVERITY_NUMBER = 24


def severity_floor(level: str) -> int | None:
    """The lowest SeverityNumber of ``level`` (any case); None when it is no OTel level."""
    upper = level.strip().upper()
    return LEVELS.index(upper) * 4 + 1 if upper in LEVELS else None

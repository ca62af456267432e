"""What otelhouse means by "request" and "error": the one place these rules live.

Both are MATERIALIZED columns of ``otel_traces`` (``storage/schema/0002_hot_columns.sql``),
computed by ClickHouse on insert, so every endpoint and dashboard counts the same way:

- **error**: ``StatusCode = 'Error'`` or an HTTP response status >= 500
  (``http.response.status_code``, or the older ``http.status_code``) → column ``IsError``.
  4xx answers are the client's mistake, not the service's, so they are not errors.
- **request**: a span of kind ``Server``, or a root span (no parent) → column ``IsRequest``.
"""

ERROR = "IsError = 1"
REQUEST = "IsRequest = 1"

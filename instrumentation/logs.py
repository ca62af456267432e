"""Python ``logging`` records that carry the active span's ids.

Every record gets ``trace_id`` and ``span_id`` attributes (lower-case hex, as stored in
``otel_traces``; empty strings outside a span), so a format such as
``"%(levelname)s [%(trace_id)s/%(span_id)s] %(message)s"`` links a log line to its trace.
A record factory is the one hook that reaches records from every logger; ``logging`` keeps it
process-wide, so the factory counts its users itself and leaves when the last one goes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import format_span_id, format_trace_id

RecordFactory = Callable[..., logging.LogRecord]


class SpanContextRecordFactory:
    """Wraps the previous record factory and stamps the current span's ids on its records."""

    def __init__(self, wrapped: RecordFactory) -> None:
        self.wrapped = wrapped
        self.users = 0

    def __call__(self, *args: Any, **kwargs: Any) -> logging.LogRecord:
        record = self.wrapped(*args, **kwargs)
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.trace_id = format_trace_id(context.trace_id)
            record.span_id = format_span_id(context.span_id)
        else:
            record.trace_id = record.span_id = ""
        return record


def enable_log_correlation() -> None:
    """Install the factory, or count one more user of the installed one."""
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, SpanContextRecordFactory):
        factory = SpanContextRecordFactory(factory)
        logging.setLogRecordFactory(factory)
    factory.users += 1


def disable_log_correlation() -> None:
    """Count one user less; the last one restores the factory that was there before.

    If someone installed another factory on top of ours since, ours stays in their chain.
    """
    factory = logging.getLogRecordFactory()
    if not isinstance(factory, SpanContextRecordFactory):
        return
    factory.users -= 1
    if factory.users <= 0:
        logging.setLogRecordFactory(factory.wrapped)

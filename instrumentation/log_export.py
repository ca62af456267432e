"""Python ``logging`` records exported as OpenTelemetry logs over OTLP.

A :class:`LogExport` puts one :class:`ExportingHandler` on a logger (the root logger unless
another is named) and feeds it to a ``LoggerProvider`` of its own with a
``BatchLogRecordProcessor``: a record costs nothing until it is logged, and its export happens
on the processor's thread. Each record carries the active span's context, so it lands in
``otel_logs`` with the ``TraceId``/``SpanId`` of the span that was current when it was logged.

The handler never exports the records of OpenTelemetry's own loggers, nor anything logged
while the SDK exports (it suppresses instrumentation then): a failing export logs its error,
and exporting that error would fail and log again. Those records, like every other, still
reach whatever would have printed them without this handler, ``logging.lastResort`` (stderr,
``WARNING`` and up) included, so an export failure is shown once and never fed back.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY, get_value
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.util.types import Attributes

from otelhouse.instrumentation.exporter import export_wanted

OWN_LOGGER = "opentelemetry"
"""The SDK's, the exporters' and the instrumentations' loggers all sit below this one."""
CORRELATION_FIELDS = ("trace_id", "span_id")
"""Set on records by :mod:`otelhouse.instrumentation.logs`; a log row has them as columns."""
LOGS_EXPORTER_ENV = "OTEL_LOGS_EXPORTER"


def logs_export_wanted(export_logs: bool | None, env: Mapping[str, str] = os.environ) -> bool:
    """The argument, else ``OTEL_LOGS_EXPORTER`` (unset or ``otlp``: on; ``none``: off), the
    standard variable whose default is ``otlp``. Other exporters are a ``ValueError``: the
    helper exports over OTLP only."""
    return export_wanted(export_logs, LOGS_EXPORTER_ENV, env)


def level_number(level: int | str) -> int:
    """A ``logging`` level as a number: an int as it is, or a level name such as ``"info"``."""
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.strip().upper())
    if not isinstance(number, int):
        raise ValueError(
            f"unknown log level {level!r}: use DEBUG, INFO, WARNING, ERROR or CRITICAL"
        )
    return number


def logger_named(name: str | None) -> logging.Logger:
    """The logger called ``name``; None, ``""`` and ``"root"`` (a record's name for it) are
    the root logger."""
    return logging.getLogger(None if name in (None, "", "root") else name)


class ExportingHandler(LoggingHandler):
    """The SDK's ``LoggingHandler`` (severity, body with ``%`` formatting applied,
    ``code.*`` and ``exception.*`` attributes, the active span's context) minus the records it
    must not export, and invisible to ``logging.lastResort``.

    The SDK deprecates its handler in favour of ``opentelemetry-instrumentation-logging``'s,
    but that package, once installed, installs its own handler under
    ``opentelemetry-instrument``; the SDK's is the one ``OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION
    _ENABLED`` installs, so the deprecation notice, about a choice made here, is not passed on.
    """

    def __init__(self, provider: LoggerProvider, level: int) -> None:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`LoggingHandler` in `opentelemetry-sdk` is deprecated"
            )
            super().__init__(level=level, logger_provider=provider)

    @staticmethod
    def _get_attributes(record: logging.LogRecord) -> Attributes:
        attributes = LoggingHandler._get_attributes(record) or {}
        return {k: v for k, v in attributes.items() if k not in CORRELATION_FIELDS}

    def emit(self, record: logging.LogRecord) -> None:
        """Export the record unless it is OpenTelemetry's own or logged during an export;
        then hand it to ``logging.lastResort`` when that is where logging would have sent it."""
        name = record.name
        own = name == OWN_LOGGER or name.startswith(OWN_LOGGER + ".")
        if not own and not get_value(_SUPPRESS_INSTRUMENTATION_KEY):
            super().emit(record)
        last_resort = logging.lastResort
        if last_resort is not None and record.levelno >= last_resort.level:
            if self.stands_in_for_last_resort(record):
                last_resort.handle(record)

    def stands_in_for_last_resort(self, record: logging.LogRecord) -> bool:
        """True when every handler logging finds for the record is an ``ExportingHandler``
        (so without them it would have used ``lastResort``) and this is the first of them to
        receive it: the record is printed once however many apps export it."""
        first: logging.Handler | None = None
        current: logging.Logger | None = logger_named(record.name)
        while current is not None:
            for handler in current.handlers:
                if not isinstance(handler, ExportingHandler):
                    return False
                if first is None and record.levelno >= handler.level:
                    first = handler
            current = current.parent if current.propagate else None
        return first is self


@dataclass(eq=False)
class LogExport:
    """One handler on one logger feeding one provider; :meth:`close` undoes it all."""

    provider: LoggerProvider
    handler: ExportingHandler
    logger: logging.Logger
    level_before: int | None
    """The logger's own level when :meth:`attach` lowered it, else None."""
    _closed: bool = field(default=False, repr=False)

    @classmethod
    def attach(
        cls,
        resource: Resource,
        exporter: Callable[[], LogRecordExporter],
        level: int,
        logger_name: str | None = None,
    ) -> LogExport:
        """Export the records of ``logger_name`` (and its children) at ``level`` and above.

        The logger's level is lowered to ``level`` when it is higher (the root logger's is
        ``WARNING`` until configured), or the threshold would not be the handler's; it is
        restored by :meth:`close`. ``exporter`` is called once the logger is known to be free:
        one that already has an SDK ``LoggingHandler`` is a ``ValueError`` (every record would
        be exported twice)."""
        logger = logger_named(logger_name)
        if any(isinstance(h, LoggingHandler) for h in logger.handlers):
            raise ValueError(
                f"logger {logger.name!r} already exports its records as OpenTelemetry logs "
                "(another instrument_app, or opentelemetry-instrument); pass logger_name= for "
                "this app's own logger, or export_logs=False"
            )
        provider = LoggerProvider(resource=resource)
        provider.add_log_record_processor(BatchLogRecordProcessor(exporter()))
        handler = ExportingHandler(provider, level)
        level_before = logger.level if logger.getEffectiveLevel() > level else None
        if level_before is not None:
            logger.setLevel(level)
        logger.addHandler(handler)
        return cls(provider, handler, logger, level_before)

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Export the records logged so far; True when they all went out in time."""
        return True if self._closed else self.provider.force_flush(timeout_millis)

    def close(self, timeout_millis: int = 30_000) -> bool:
        """Detach the handler, restore the logger's level, flush and shut the provider down.
        True when every record went out; later calls do nothing and return True."""
        if self._closed:
            return True
        self.logger.removeHandler(self.handler)
        if self.level_before is not None and self.logger.level == self.handler.level:
            self.logger.setLevel(self.level_before)
        flushed = self.provider.force_flush(timeout_millis)
        self._closed = True
        self.provider.shutdown()
        return flushed

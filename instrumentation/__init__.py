"""Instrument a FastAPI app in one call: ``instrument_app(app, service_name="shop")``.

See :mod:`otelhouse.instrumentation.instrument` for the helper and :mod:`otelhouse.demo` for
``otelhouse demo``.
"""

from otelhouse.instrumentation.instrument import (
    Instrumentation,
    instrument_app,
    instrumentation_of,
    uninstrument_app,
)

__all__ = ["Instrumentation", "instrument_app", "instrumentation_of", "uninstrument_app"]

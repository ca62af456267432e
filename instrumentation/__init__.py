"""Instrument a FastAPI app in one call: ``instrument_app(app, service_name="shop")``.

See :mod:`instrumentation.instrument` for the helper and :mod:`instrumentation.demo` for
``otelhouse demo``.
"""

from instrumentation.instrument import (
    Instrumentation,
    instrument_app,
    instrumentation_of,
    uninstrument_app,
)

__all__ = ["Instrumentation", "instrument_app", "instrumentation_of", "uninstrument_app"]

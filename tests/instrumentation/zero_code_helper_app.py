"""The same app, also calling the helper: under ``opentelemetry-instrument`` it must add the
trace-id header without tracing a second time."""

from __future__ import annotations

from otelhouse.instrumentation import instrument_app
from tests.instrumentation.zero_code_app import app

instrument_app(app)

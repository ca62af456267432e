"""otelhouse: an OpenTelemetry backend on ClickHouse."""

__version__ = "0.1.0"

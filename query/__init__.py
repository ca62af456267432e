"""HTTP query API over the otelhouse tables (FastAPI)."""

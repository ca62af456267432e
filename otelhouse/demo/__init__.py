"""``otelhouse demo``: two instrumented services and a load generator that fill otelhouse
with realistic traces (fast, slow, failing and crashing requests across two services)."""

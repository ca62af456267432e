"""Caps on what one span may carry, so a hostile or broken client cannot blow up storage.

The defaults equal the OpenTelemetry SDKs' own span limits (128 attributes, events and links)
or sit far above what instrumentation writes (values up to 64 KiB: a long Java stack trace
with its "Caused by" chain stays under ~40 KiB), so normal traffic is never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

UTF8_MAX_BYTES_PER_CHAR = 4
MIN_VALUE_BYTES = 32
"""Every int, bool and double renders within this, so only strings, bytes, arrays and maps
need the length check."""


@dataclass(frozen=True, slots=True)
class ConvertLimits:
    """What ``convert_request`` keeps of a span; everything beyond is cut and counted.

    ``max_attributes`` applies to each attribute set on its own (resource, span, event,
    link); ``max_value_bytes`` to each rendered attribute value (UTF-8 bytes; keys are not
    capped, as in the SDKs' limits: a per-key check costs 3% of conversion throughput);
    ``max_value_depth`` to nested arrays and maps, whose deeper levels become a marker string.
    """

    max_attributes: int = 128
    max_value_bytes: int = 64 * 1024
    max_events: int = 128
    max_links: int = 128
    max_value_depth: int = 32

    def __post_init__(self) -> None:
        for name in ("max_attributes", "max_events", "max_links"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.max_value_bytes < MIN_VALUE_BYTES:
            raise ValueError(f"max_value_bytes must be >= {MIN_VALUE_BYTES}")
        if self.max_value_depth < 1:
            raise ValueError("max_value_depth must be >= 1")

    @property
    def safe_chars(self) -> int:
        """Strings up to this many characters fit ``max_value_bytes`` whatever they hold,
        so only longer ones need encoding to be measured."""
        return self.max_value_bytes // UTF8_MAX_BYTES_PER_CHAR


DEFAULT_LIMITS = ConvertLimits()

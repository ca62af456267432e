"""Attributes the middleware has already made valid, put on an SDK span without re-checking.

The SDK checks every attribute it is given (``BoundedAttributes``: type checks, a recursive
clean of the value, a lock per key). For a server span's dozen attributes that was the largest
single step in tracing's cost per request: measured with ``bench/overhead.py``, about 10 µs of
CPU out of ~55. The middleware builds those attributes itself, only as ``str`` and ``int``
taken from the ASGI scope, so the checks can only ever pass, and writing them straight into
the span's attribute dict gives the same stored span.

Two things the SDK's path does are kept by falling back to it:

- span limits: when ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT`` or an attribute length limit could
  change what is stored, the attributes go through ``Span.set_attributes``;
- sampling on attributes: the SDK hands a new span's attributes to the sampler. Attributes
  set after the span starts are only safe when the sampler ignores them, which the SDK's own
  samplers (always on/off, trace-id ratio, parent-based over those) do; any other sampler
  gets them at start as usual (:func:`sampler_ignores_attributes`).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import Span as SdkSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.sampling import (
    ParentBased,
    Sampler,
    StaticSampler,
    TraceIdRatioBased,
)

SAMPLING_MODULE = Sampler.__module__

CleanValue = str | int
"""What the middleware's attributes hold; both are valid attribute values as they are."""

_ATTRIBUTE_BLIND = (StaticSampler, TraceIdRatioBased, ParentBased)


def _ignores_attributes(sampler: Sampler) -> bool:
    """The SDK's own samplers (not subclasses from elsewhere, which may override
    ``should_sample``); a parent-based one only if every sampler it delegates to is too."""
    if not isinstance(sampler, _ATTRIBUTE_BLIND) or type(sampler).__module__ != SAMPLING_MODULE:
        return False
    if isinstance(sampler, ParentBased):
        delegates = [value for value in vars(sampler).values() if isinstance(value, Sampler)]
        return bool(delegates) and all(_ignores_attributes(d) for d in delegates)
    return True


def sampler_ignores_attributes(tracer: trace.Tracer) -> bool:
    """True when ``tracer`` is the SDK's and its sampler decides without looking at a span's
    attributes, so they may be set right after the span starts instead of passed to it."""
    return isinstance(tracer, SdkTracer) and _ignores_attributes(tracer.sampler)


def _sdk_internals_known() -> bool:
    """Whether ``BoundedAttributes`` still keeps what the shortcut writes to; an SDK release
    that renames them makes every span take ``set_attributes`` instead of failing."""
    probe = BoundedAttributes(immutable=False)
    return all(
        hasattr(probe, name) for name in ("_dict", "_lock", "_immutable", "maxlen", "max_value_len")
    )


SDK_INTERNALS_KNOWN = _sdk_internals_known()


def set_clean_attributes(span: trace.Span, attributes: Mapping[str, CleanValue]) -> None:
    """Add ``attributes`` (``str`` and ``int`` values only) to a recording span.

    Straight into an SDK span's attribute dict when no limit applies to them, otherwise (a
    limit that could drop or cut one, another kind of span, an SDK whose internals differ)
    through ``set_attributes``."""
    held = getattr(span, "_attributes", None) if isinstance(span, SdkSpan) else None
    if (
        not SDK_INTERNALS_KNOWN
        or not isinstance(held, BoundedAttributes)
        or held.max_value_len is not None
        or (held.maxlen is not None and len(held) + len(attributes) > held.maxlen)
    ):
        span.set_attributes(attributes)
        return
    with held._lock:
        if held._immutable:
            return
        held._dict.update(attributes)

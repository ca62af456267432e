"""The direct ``traceparent`` read gives what the SDK's propagator gives, or steps aside."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from otelhouse.instrumentation.traceparent import is_w3c_default, remote_parent

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"
SDK_DEFAULT = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])


def sdk_parent(traceparent: str) -> trace.SpanContext:
    context = SDK_DEFAULT.extract({"traceparent": traceparent})
    return trace.get_current_span(context).get_span_context()


def direct_parent(traceparent: str) -> trace.SpanContext | None:
    context = remote_parent(traceparent, Context())
    return None if context is None else trace.get_current_span(context).get_span_context()


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-00",
        f"00-{TRACE}-{SPAN}-03",
        f"00-{'f' * 32}-{'f' * 16}-ff",
    ],
)
def test_canonical_headers_give_the_sdks_remote_parent(traceparent: str) -> None:
    direct = direct_parent(traceparent)
    assert direct is not None and direct.is_valid and direct.is_remote
    assert direct == sdk_parent(traceparent)
    assert (direct.trace_flags, direct.trace_state) == (
        sdk_parent(traceparent).trace_flags,
        sdk_parent(traceparent).trace_state,
    )


@pytest.mark.parametrize(
    "traceparent",
    [
        f"01-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01-extra",
        f"01-{TRACE}-{SPAN}-01-future-fields",
        f" 00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-01\t",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"ff-{TRACE}-{SPAN}-01",
        "",
    ],
    ids=[
        "version-01", "extra-field", "future-version", "leading-space", "trailing-tab",
        "upper-case", "zero-trace", "zero-span", "short-trace", "version-ff", "empty",
    ],
)
def test_anything_else_is_left_to_the_propagator(traceparent: str) -> None:
    assert remote_parent(traceparent, Context()) is None


HEADERISH = st.text(alphabet="0123456789abcdefABCDEF- \t", max_size=70)
NEAR_CANONICAL = st.builds(
    lambda version, trace_id, span_id, flags: f"{version}-{trace_id}-{span_id}-{flags}",
    st.text(alphabet="0f1", min_size=2, max_size=2),
    st.text(alphabet="0123456789abcdef", min_size=31, max_size=33),
    st.text(alphabet="0123456789abcdef", min_size=15, max_size=17),
    st.text(alphabet="0123456789abcdef", min_size=2, max_size=2),
)


@given(st.one_of(HEADERISH, NEAR_CANONICAL))
def test_whenever_it_answers_it_agrees_with_the_sdk(traceparent: str) -> None:
    direct = direct_parent(traceparent)
    if direct is not None:
        expected = sdk_parent(traceparent)
        assert expected.is_valid
        assert (direct, direct.trace_flags, direct.is_remote) == (
            expected,
            expected.trace_flags,
            expected.is_remote,
        )


class Custom(TextMapPropagator):
    """A propagator of its own that happens to read a header named like W3C's."""

    def extract(self, carrier, context=None, getter=None):  # type: ignore[no-untyped-def]
        return context or Context()

    def inject(self, carrier, context=None, setter=None):  # type: ignore[no-untyped-def]
        pass

    @property
    def fields(self) -> set[str]:
        return {"traceparent"}


@pytest.mark.parametrize(
    ("textmap", "expected"),
    [
        (SDK_DEFAULT, True),
        (TraceContextTextMapPropagator(), True),
        (CompositePropagator([TraceContextTextMapPropagator()]), True),
        (CompositePropagator([TraceContextTextMapPropagator(), Custom()]), False),
        (CompositePropagator([]), False),
        (Custom(), False),
        (W3CBaggagePropagator(), False),
    ],
    ids=["sdk-default", "tracecontext", "composite-tracecontext", "with-custom", "empty",
         "custom", "baggage-only"],
)
def test_only_the_w3c_propagators_allow_the_shortcut(
    textmap: TextMapPropagator, expected: bool
) -> None:
    assert is_w3c_default(textmap) is expected


def test_the_processs_default_propagation_allows_it() -> None:
    assert is_w3c_default(propagate.get_global_textmap())

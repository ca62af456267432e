"""The in-flight budget: against stalled storage, requests whose bodies would pass
``max_inflight_bytes`` get a retryable answer on either transport, nothing of them is stored
twice or lost once storage recovers, and memory stays bounded while many large requests are
offered at once."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import httpx
import pytest
from clickhouse_connect.driver.client import Client
from google.rpc import code_pb2, status_pb2
from google.rpc.error_details_pb2 import RetryInfo

from otelhouse.settings import Settings
from otelhouse.receiver.traces import TRACE_SERVICE
from otelhouse.storage import open_client
from otelhouse.storage.traces import SpanColumns, insert_spans
from otelhouse.demo.payloads import realistic_request
from tests.receiver.http_harness import HttpReceiver, StartHttpReceiver, stored_count
from tests.receiver.test_http_overload import rss_mib

PROTOBUF = {"content-type": "application/x-protobuf"}
SPANS_PER_REQUEST = 40
WAIT_S = 30


@dataclass
class Answer:
    """A transport's answer reduced to what the budget decides: taken, or told to retry."""

    taken: bool
    retry_after_s: float | None = None
    message: str = ""


Send = Callable[[bytes], Answer]


def send_grpc(receiver: HttpReceiver) -> Iterator[Send]:
    with grpc.insecure_channel(receiver.thread.endpoint) as channel:
        export = channel.unary_unary(f"/{TRACE_SERVICE}/Export", request_serializer=None)

        def send(body: bytes) -> Answer:
            try:
                export(body, timeout=WAIT_S)
            except grpc.RpcError as error:
                assert error.code() is grpc.StatusCode.UNAVAILABLE, error
                trailers = dict(error.trailing_metadata())
                info = RetryInfo.FromString(trailers["google.rpc.retryinfo-bin"])
                return Answer(False, info.retry_delay.ToTimedelta().total_seconds(),
                              error.details())
            return Answer(True)

        yield send


def pieces(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body sent chunked, a piece at a time, as a streaming client sends it."""
    view = memoryview(body)
    for start in range(0, len(body), size):
        yield bytes(view[start : start + size])


def send_http(receiver: HttpReceiver, chunked: bool) -> Iterator[Send]:
    with httpx.Client(timeout=WAIT_S) as client:

        def send(body: bytes) -> Answer:
            content = pieces(body) if chunked else body
            reply = client.post(receiver.traces_url, headers=PROTOBUF, content=content)
            if reply.status_code == 200:
                return Answer(True)
            assert reply.status_code == 503, reply.text
            status = status_pb2.Status.FromString(reply.content)
            assert status.code == code_pb2.UNAVAILABLE
            assert status.details[0].Is(RetryInfo.DESCRIPTOR)
            return Answer(False, float(reply.headers["retry-after"]), status.message)

        yield send


TRANSPORTS: dict[str, Callable[[HttpReceiver], Iterator[Send]]] = {
    "grpc": send_grpc,
    "http": lambda receiver: send_http(receiver, chunked=False),
    "http-chunked": lambda receiver: send_http(receiver, chunked=True),
}


@dataclass
class Stalled:
    """A receiver whose storage writes wait for ``release``."""

    receiver: HttpReceiver
    gate: threading.Event

    @property
    def held(self) -> int:
        return self.receiver.thread.receiver.inflight.held

    def wait_until_held(self, size: int) -> None:
        deadline = threading.Event()
        for _ in range(WAIT_S * 100):
            if self.held >= size:
                return
            deadline.wait(0.01)
        raise AssertionError(f"only {self.held} of {size} bytes ever in flight")


@pytest.fixture
def stalled(
    settings: Settings, storage: Client
) -> Iterator[Callable[..., Stalled]]:
    gates: list[threading.Event] = []
    writer = open_client(settings.storage_config())

    def start(start_http_receiver: StartHttpReceiver, **changes: object) -> Stalled:
        gate = threading.Event()
        gates.append(gate)

        def stalled_storage(spans: SpanColumns) -> None:
            gate.wait(WAIT_S * 2)
            insert_spans(writer, spans)

        return Stalled(start_http_receiver(sink=stalled_storage, **changes), gate)

    yield start
    for gate in gates:
        gate.set()
    writer.close()


def body(seed: int, spans: int = SPANS_PER_REQUEST) -> bytes:
    return realistic_request(spans, seed=seed).SerializeToString()


@pytest.mark.parametrize("transport", list(TRANSPORTS))
def test_requests_past_the_budget_are_told_to_retry_and_the_rest_stored_once(
    transport: str,
    stalled: Callable[..., Stalled],
    start_http_receiver: StartHttpReceiver,
    storage: Client,
) -> None:
    first, second, third, later = (body(seed) for seed in range(4))
    budget = len(first) + len(second) + len(third) // 2
    stall = stalled(start_http_receiver, max_inflight_bytes=budget, batch_max_delay_ms=0)
    sends = TRANSPORTS[transport](stall.receiver)
    send = next(sends)
    with ThreadPoolExecutor(2) as pool:
        waiting: list[Future[Answer]] = [pool.submit(send, first)]
        stall.wait_until_held(len(first))
        waiting.append(pool.submit(send, second))
        stall.wait_until_held(len(first) + len(second))

        refused = send(third)
        held_while_refusing = stall.held
        stall.gate.set()
        assert [future.result(WAIT_S) for future in waiting] == [Answer(True), Answer(True)]

    assert not refused.taken
    assert refused.retry_after_s == 1.0
    assert "in flight" in refused.message and f"bound {budget}" in refused.message
    assert held_while_refusing == len(first) + len(second)
    assert send(later) == Answer(True)
    assert stall.held == 0
    assert stored_count(storage) == 3 * SPANS_PER_REQUEST
    stats = stall.receiver.thread.receiver.stats
    assert (stats.requests, stats.retry_later_requests) == (4, 1)
    sends.close()


def test_a_request_larger_than_the_whole_budget_is_taken_when_nothing_else_is(
    start_http_receiver: StartHttpReceiver, storage: Client
) -> None:
    large = body(7, spans=200)
    receiver = start_http_receiver(max_inflight_bytes=len(large) // 10)
    reply = httpx.post(receiver.traces_url, headers=PROTOBUF, content=large, timeout=WAIT_S)
    assert reply.status_code == 200
    assert stored_count(storage) == 200


def one_span_with_a_large_attribute(seed: int, value_bytes: int) -> bytes:
    request = realistic_request(1, seed=seed)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    attribute = span.attributes.add()
    attribute.key = "http.request.body"
    attribute.value.string_value = "x" * value_bytes
    return request.SerializeToString()


CONCURRENT_CLIENTS = 24
LARGE_REQUESTS = 96
LARGE_BODY_BYTES = 3 * 2**20
BUDGET_BYTES = 4 * LARGE_BODY_BYTES
RSS_GROWTH_BOUND_MIB = 64


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_many_large_requests_against_stalled_storage_keep_memory_bounded(
    chunked: bool, stalled: Callable[..., Stalled], start_http_receiver: StartHttpReceiver
) -> None:
    large = one_span_with_a_large_attribute(11, LARGE_BODY_BYTES)
    stall = stalled(start_http_receiver, max_inflight_bytes=BUDGET_BYTES)
    offered_mib = LARGE_REQUESTS * len(large) / 2**20
    sends = send_http(stall.receiver, chunked=chunked)
    send = next(sends)
    most_taken = BUDGET_BYTES // len(large)
    rss_before = rss_mib()
    with ThreadPoolExecutor(CONCURRENT_CLIENTS) as pool:
        futures = [pool.submit(send, large) for _ in range(LARGE_REQUESTS)]
        for _ in range(WAIT_S * 10):
            if sum(future.done() for future in futures) >= LARGE_REQUESTS - most_taken:
                break
            threading.Event().wait(0.1)
        rss_growth = rss_mib() - rss_before
        held = stall.held
        stall.gate.set()
        answers = [future.result(WAIT_S) for future in futures]
    sends.close()

    taken = [answer for answer in answers if answer.taken]
    assert offered_mib > 4 * RSS_GROWTH_BOUND_MIB
    assert rss_growth < RSS_GROWTH_BOUND_MIB, f"RSS grew {rss_growth:.0f} MiB"
    assert held <= BUDGET_BYTES
    assert 1 <= len(taken) <= most_taken

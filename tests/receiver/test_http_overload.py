"""Overload on OTLP/HTTP against stalled storage: the queue bound holds, every refused client
gets 503 + Retry-After (a code the SDKs retry), the process's memory stays bounded while far
more than the bound is offered, and ingest recovers once storage does."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from clickhouse_connect.driver.client import Client
from google.rpc import code_pb2, status_pb2
from google.rpc.error_details_pb2 import RetryInfo

from otelhouse.settings import Settings
from otelhouse.storage import open_client
from otelhouse.storage.traces import SpanColumns, insert_spans
from otelhouse.demo.payloads import realistic_request
from tests.receiver.http_harness import StartHttpReceiver, stored_count

QUEUE_BOUND = 1000
REFUSED_REQUESTS = 200
SPANS_PER_REFUSED = 1000
RSS_GROWTH_BOUND_MIB = 24
PROTOBUF = {"content-type": "application/x-protobuf"}


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc/self/status")


def test_stalled_storage_gets_503_retry_after_and_bounded_memory(
    settings: Settings, start_http_receiver: StartHttpReceiver, storage: Client
) -> None:
    gate = threading.Event()
    writer = open_client(settings.storage_config())

    def stalled_storage(spans: SpanColumns) -> None:
        gate.wait(60)
        insert_spans(writer, spans)

    receiver = start_http_receiver(
        sink=stalled_storage, queue_max_rows=QUEUE_BOUND, batch_max_rows=100
    )
    batcher = receiver.thread.traces.batcher
    refused_bodies = [
        realistic_request(SPANS_PER_REFUSED, seed=100 + i).SerializeToString() for i in range(8)
    ]
    offered_mib = REFUSED_REQUESTS * len(refused_bodies[0]) / 2**20
    try:
        with httpx.Client(timeout=60) as client, ThreadPoolExecutor(6) as pool:
            accepted = [
                pool.submit(client.post, receiver.traces_url, headers=PROTOBUF,
                            content=realistic_request(400, seed=i).SerializeToString())
                for i in range(2)
            ]
            while batcher.queued_rows < 800:
                threading.Event().wait(0.01)
            rss_before = rss_mib()
            replies = list(pool.map(
                lambda i: client.post(receiver.traces_url, headers=PROTOBUF,
                                      content=refused_bodies[i % len(refused_bodies)]),
                range(REFUSED_REQUESTS),
            ))
            rss_growth = rss_mib() - rss_before
            queued_during_stall = batcher.queued_rows
            gate.set()
            assert [future.result().status_code for future in accepted] == [200, 200]
        assert offered_mib > 2 * RSS_GROWTH_BOUND_MIB
        assert rss_growth < RSS_GROWTH_BOUND_MIB, f"RSS grew {rss_growth:.1f} MiB"
        assert queued_during_stall == 800
        assert {reply.status_code for reply in replies} == {503}
        for reply in replies[:5]:
            assert reply.headers["retry-after"] == "1"
            status = status_pb2.Status.FromString(reply.content)
            assert status.code == code_pb2.UNAVAILABLE and "overloaded" in status.message
            assert status.details[0].Is(RetryInfo.DESCRIPTOR)
        stats = receiver.thread.receiver.stats
        assert stats.refused == REFUSED_REQUESTS * SPANS_PER_REFUSED
        assert stats.retry_later_requests == REFUSED_REQUESTS
        assert stored_count(storage) == 800

        recovered = httpx.post(receiver.traces_url, headers=PROTOBUF, timeout=30,
                               content=realistic_request(50, seed=999).SerializeToString())
        assert recovered.status_code == 200
        assert stored_count(storage) == 850
    finally:
        gate.set()
        writer.close()

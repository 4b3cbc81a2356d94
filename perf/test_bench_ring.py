"""Benchmarks for the cross-worker rings (natsd.ipc.ring).

Run with ``.venv/bin/python -m pytest perf/test_bench_ring.py --benchmark-enable -q``.

Each round moves one batch of ``BATCH`` records, the shape natsd produces: records are
staged during one event-loop iteration, then published once (one memmove, one eventfd
write) and drained once (one copy-out, then a parse loop). Divide the mean by ``BATCH``
for ns per record; ``extra_info["ns_per_record"]`` holds that figure. Producer and
consumer run in one process here, so a round trip is the sum of both sides' CPU cost
without cross-core cache traffic; the two-process behaviour is covered by
``tests/ipc/test_ring.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from natsd.ipc.ring import AnyConsumer, AnyProducer, create_ring_spec, open_consumer, open_producer

BATCH = 256
SIZES = [16, 128, 1024]


@pytest.fixture(params=["shm", "socket"])
def pair(request: pytest.FixtureRequest) -> Iterator[tuple[AnyProducer, AnyConsumer]]:
    spec, a, b = create_ring_spec("bench", 1 << 20, transport=request.param)
    producer = open_producer(os.dup(a), os.dup(b), spec)
    consumer = open_consumer(a, b, spec)
    yield producer, consumer
    producer.close()
    consumer.close()


def per_record(benchmark: pytest.FixtureRequest) -> None:
    stats = benchmark.stats  # type: ignore[attr-defined]
    if stats is not None:
        benchmark.extra_info["ns_per_record"] = round(stats.stats.mean * 1e9 / BATCH, 1)  # type: ignore[attr-defined]


@pytest.mark.parametrize("size", SIZES)
def test_stage_only(benchmark, size: int) -> None:  # type: ignore[no-untyped-def]
    """The producer's per-record cost inside the event loop (no shared memory)."""
    spec, a, b = create_ring_spec("bench-stage", 1 << 20)
    producer = open_producer(a, b, spec)
    data = b"x" * size
    stage = producer.stage

    def run() -> None:
        for _ in range(BATCH):
            stage(1, data)
        producer._take()

    benchmark(run)
    per_record(benchmark)
    producer.close()


@pytest.mark.parametrize("size", SIZES)
def test_publish_and_drain(benchmark, pair: tuple[AnyProducer, AnyConsumer], size: int) -> None:  # type: ignore[no-untyped-def]
    """Stage a batch, publish it, drain it: both sides' CPU per record."""
    producer, consumer = pair
    data = b"x" * size
    stage, publish, drain = producer.stage, producer.publish, consumer.drain

    def run() -> int:
        for _ in range(BATCH):
            stage(1, data)
        publish()
        return len(drain())

    assert benchmark(run) == BATCH
    per_record(benchmark)
    assert producer.stats()["records_dropped"] == 0


@pytest.mark.parametrize("size", SIZES)
def test_drain_only(benchmark, pair: tuple[AnyProducer, AnyConsumer], size: int) -> None:  # type: ignore[no-untyped-def]
    """The consumer's side alone: reset the doorbell, copy out, parse ``BATCH`` records."""
    producer, consumer = pair
    data = b"x" * size

    def fill() -> None:
        for _ in range(BATCH):
            producer.stage(1, data)
        producer.publish()

    result = benchmark.pedantic(consumer.drain, setup=fill, rounds=2000, warmup_rounds=50)
    assert len(result) == BATCH
    per_record(benchmark)

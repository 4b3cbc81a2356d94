"""Conformance tests for the SPSC rings: one suite, both transports (STYLE.md rule 10).

Single-process tests drive a producer and a consumer attached to the same ring. The
two-process tests pass the descriptors to a child over SCM_RIGHTS and stream checksummed
records through while the parent drains from a uvloop reader callback.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import textwrap
import zlib
from collections import deque
from pathlib import Path

import msgspec
import pytest
import uvloop
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from natsd.ipc import ring
from natsd.ipc.ring import (
    AnyConsumer,
    AnyProducer,
    Consumer,
    Producer,
    RingCorrupt,
    RingError,
    RingSpec,
    create_ring,
    create_ring_spec,
    open_consumer,
    open_producer,
)

ROOT = Path(__file__).resolve().parents[2]
TRANSPORTS = ["shm", "socket"]


def make_pair(transport: str, size: int = 4096, **kw: object) -> tuple[AnyProducer, AnyConsumer]:
    spec, a, b = create_ring_spec("test", size, transport=transport)
    producer = open_producer(os.dup(a), os.dup(b), spec, **kw)  # type: ignore[arg-type]
    consumer = open_consumer(a, b, spec)
    return producer, consumer


def payload(seq: int, n: int) -> bytes:
    return (seq.to_bytes(4, "little") * (n // 4 + 1))[:n]


def record_bytes(n: int) -> int:
    """What a record of payload length n occupies: the unit of the byte counters."""
    return 8 + ((n + 7) & -8)


def readable(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# -- basics --------------------------------------------------------------------------------

def test_round_trip_kinds_and_payload_types(transport: str) -> None:
    p, c = make_pair(transport)
    with p, c:
        sent = [(0, b""), (1, b"a"), (7, b"x" * 8), (ring.MAX_KIND, b"y" * 13)]
        for kind, data in sent:
            assert p.stage(kind, data)
        assert p.stage(3, memoryview(b"from a view")) and p.stage(4, bytearray(b"ba"))
        assert p.staged == 6
        assert c.drain() == []  # nothing is visible before publish
        assert p.publish() == 6 and p.staged == 0
        got = [(k, bytes(v)) for k, v in c.drain()]
        assert got == [*sent, (3, b"from a view"), (4, b"ba")]
        assert c.drain() == [] and p.publish() == 0


def test_stats_add_up(transport: str) -> None:
    p, c = make_pair(transport)
    with p, c:
        for i in range(5):
            p.stage(i, payload(i, 10 * i))
        p.publish()
        c.drain()
        ps, cs = p.stats(), c.stats()
        assert ps["name"] == cs["name"] == "test" and ps["transport"] == transport
        assert ps["records_in"] == cs["records_out"] == 5
        assert ps["bytes_in"] == cs["bytes_out"] == sum(record_bytes(10 * i) for i in range(5))
        assert ps["records_dropped"] == 0 and ps["epoch"] == cs["epoch"]
        if transport == "shm":
            assert ps["used"] == cs["used"] == 0 and ps["producer_pid"] == os.getpid()


def test_eventfd_doorbell_once_per_batch() -> None:
    p, c = make_pair("shm")
    with p, c:
        assert not readable(c.fileno())
        for i in range(100):
            p.stage(1, payload(i, 20))
        p.publish()
        assert readable(c.fileno())
        assert os.eventfd_read(c.fileno()) == 1  # one write for 100 records
        os.eventfd_write(c.fileno(), 1)
        assert len(c.drain()) == 100
        assert not readable(c.fileno())  # reset before tail was loaded


def test_bounded_drain_rings_its_own_doorbell(transport: str) -> None:
    p, c = make_pair(transport, 1 << 16)
    with p, c:
        for i in range(50):  # five batches: the socket transport drains whole datagrams
            p.stage(i, payload(i, 100))
            if i % 10 == 9:
                p.publish()
        first = c.drain(max_bytes=1000)
        assert 0 < len(first) < 50
        assert readable(c.fileno())  # the loop will come back for the rest
        rest = c.drain()
        assert [k for k, _ in first + rest] == list(range(50))
        assert not readable(c.fileno())


def test_drain_limit_smaller_than_a_record() -> None:
    p, c = make_pair("shm")
    with p, c:
        p.stage(1, b"z" * 500)
        p.stage(2, b"w")
        p.publish()
        assert [(k, bytes(v)) for k, v in c.drain(max_bytes=16)] == [(1, b"z" * 500)]
        assert [k for k, _ in c.drain(max_bytes=16)] == [2]


# -- bounds and drops ---------------------------------------------------------------------

def test_full_ring_drops_are_counted_and_prefix_is_intact(transport: str) -> None:
    drops: list[tuple[int, int]] = []
    p, c = make_pair(transport, on_drop=lambda r, b: drops.append((r, b)))
    with p, c:
        sent = 0
        published_total = 0
        for round_ in range(20):  # keep publishing into a ring nobody drains
            for _ in range(10):
                assert p.stage(round_, payload(sent, 300))
                sent += 1
            published_total += p.publish()
        assert 0 < published_total < sent
        st_ = p.stats()
        assert st_["records_in"] == published_total
        assert st_["records_dropped"] == sent - published_total == sum(r for r, _ in drops)
        assert st_["bytes_dropped"] == record_bytes(300) * (sent - published_total)
        assert st_["bytes_dropped"] == sum(b for _, b in drops)
        got = c.drain()
        assert len(got) == published_total
        assert all(len(v) == 300 and bytes(v[:4]) == bytes(v[4:8]) for _, v in got)
        # once drained, the ring accepts batches again
        p.stage(99, b"after")
        assert p.publish() == 1
        assert [(k, bytes(v)) for k, v in c.drain()] == [(99, b"after")]


def test_max_records_outstanding() -> None:
    p, c = make_pair("shm", 1 << 16, max_records=10)
    with p, c:
        for i in range(8):
            p.stage(i, b"a")
        assert p.publish() == 8
        for i in range(8):
            p.stage(i, b"b")
        assert p.publish() == 2  # 10 outstanding: the other 6 are dropped
        assert p.stats()["records_dropped"] == 6
        assert len(c.drain()) == 10
        for i in range(8):
            p.stage(i, b"c")
        assert p.publish() == 8


def test_oversize_record_and_bad_kind(transport: str) -> None:
    p, c = make_pair(transport)
    with p, c:
        assert not p.stage(1, b"x" * (p.max_payload + 1))
        assert p.stage(1, b"x" * p.max_payload)
        assert p.stats()["records_dropped"] == 1
        assert p.stats()["bytes_dropped"] == record_bytes(p.max_payload + 1)
        for bad in (-1, 1 << 32):
            with pytest.raises(struct.error):
                p.stage(bad, b"")
        assert p.publish() == 1
        assert len(c.drain()[0][1]) == p.max_payload


def test_staging_is_bounded_by_the_ring_size(transport: str) -> None:
    p, c = make_pair(transport)  # 4096 bytes: 15 records of 256 B fit, with headers
    with p, c:
        accepted = [p.stage(0, b"q" * 256) for _ in range(17)]
        assert accepted == [True] * 15 + [False] * 2
        assert p.staged == 15 and p.stats()["records_dropped"] == 2
        assert p.publish() == 15 and len(c.drain()) == 15


# -- the shared header: epoch, sealing, re-attach ------------------------------------------

def test_epoch_checked_and_header_validated() -> None:
    spec, mem_fd, ev_fd = create_ring_spec("e", 4096, epoch=42)
    assert spec == RingSpec(name="e", size=4096, epoch=42)
    with pytest.raises(RingError, match="epoch"):
        Consumer(os.dup(mem_fd), os.dup(ev_fd), "e", epoch=43)
    with Consumer(os.dup(mem_fd), os.dup(ev_fd), "e", epoch=42) as c:
        assert c.epoch == 42 and c.size == 4096
    bogus = os.memfd_create("bogus")
    os.ftruncate(bogus, ring.HEADER_SIZE + 4096)
    with pytest.raises(RingError, match="bad header"):
        Producer(bogus, os.dup(ev_fd), "bogus")
    os.close(mem_fd)
    os.close(ev_fd)


def test_memfd_is_sealed_against_resizing() -> None:
    mem_fd, ev_fd = create_ring("sealed", 4096)
    try:
        with pytest.raises(PermissionError):
            os.ftruncate(mem_fd, 4096)
        assert fcntl.fcntl(mem_fd, fcntl.F_GET_SEALS) & fcntl.F_SEAL_SHRINK
    finally:
        os.close(mem_fd)
        os.close(ev_fd)


def test_replacement_producer_resumes_cursor_and_counters() -> None:
    spec, mem_fd, ev_fd = create_ring_spec("r", 4096)
    c = open_consumer(os.dup(mem_fd), os.dup(ev_fd), spec)
    p1 = open_producer(os.dup(mem_fd), os.dup(ev_fd), spec)
    p1.stage(1, b"one")
    p1.publish()
    p1.stage(2, b"lost with the process")  # staged, never published
    p1.close()
    p2 = open_producer(mem_fd, ev_fd, spec)
    p2.stage(3, b"three")
    p2.publish()
    assert [k for k, _ in c.drain()] == [1, 3]
    st_ = c.stats()
    assert st_["records_in"] == 2 and st_["producer_attaches"] == 2
    p2.beat()
    assert c.peer_heartbeat() == 1
    p2.close()
    c.close()


def test_corrupt_tail_is_detected() -> None:
    p, c = make_pair("shm")
    with p, c:
        assert isinstance(p, Producer)
        p._words[ring._TAIL] = 1 << 40
        with pytest.raises(RingCorrupt):
            c.drain()
        p._words[ring._TAIL] = 0


def test_create_ring_and_dispatch() -> None:
    a, b = create_ring("d", 8192)
    assert not ring._is_socket(a)
    spec = ring.describe(a)
    assert (spec.name, spec.size, spec.transport) == ("d", 8192, "shm")
    p, c = open_producer(os.dup(a), os.dup(b), spec), open_consumer(a, b, spec)
    assert isinstance(p, Producer) and isinstance(c, Consumer)
    p.close()
    c.close()
    with pytest.raises(ValueError):
        create_ring("bad", 5000)


# -- wrap-around with arbitrary sizes, against a model ------------------------------------

steps = st.lists(
    st.tuples(
        st.lists(st.integers(0, 1100), max_size=25),  # record sizes of one batch
        st.one_of(st.none(), st.integers(1, 3000)),  # drain bound
        st.booleans(),  # drain after this batch?
    ),
    max_size=40,
)


@pytest.mark.parametrize("transport", TRANSPORTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps)
def test_wraparound_matches_model(transport: str, steps: list[tuple[list[int], int | None, bool]]) -> None:
    p, c = make_pair(transport, 4096)
    expected: deque[tuple[int, bytes]] = deque()
    received = refused = seq = 0
    with p, c:
        for sizes, bound, drain in steps:
            batch = []
            for n in sizes:
                data = payload(seq, n)
                if p.stage(seq & 0xFFFF, data):
                    batch.append((seq & 0xFFFF, data))
                else:
                    refused += 1
                seq += 1
            expected.extend(batch[: p.publish()])  # published records are a prefix
            if drain:
                for kind, view in c.drain(bound):
                    assert (kind, bytes(view)) == expected.popleft()
                    received += 1
        while got := c.drain():
            for kind, view in got:
                assert (kind, bytes(view)) == expected.popleft()
                received += 1
        assert not expected
        ps, cs = p.stats(), c.stats()
        assert ps["records_in"] == cs["records_out"] == received
        assert ps["records_in"] + ps["records_dropped"] == seq
        assert ps["records_dropped"] >= refused
        assert ps["bytes_in"] == cs["bytes_out"]


# -- two processes, descriptors passed over SCM_RIGHTS --------------------------------------

CHILD = textwrap.dedent(
    """
    import json, random, socket, sys, time, zlib
    import msgspec
    from natsd.ipc.ring import RingSpec, open_producer

    ctl = socket.socket(fileno=int(sys.argv[1]))
    total = int(sys.argv[2])
    msg, fds, _, _ = socket.recv_fds(ctl, 4096, 2)
    spec = msgspec.msgpack.decode(msg, type=RingSpec)
    p = open_producer(fds[0], fds[1], spec)
    rng = random.Random(7)
    seq = 0
    while seq < total:
        batch = [rng.randbytes(rng.randint(0, 400)) for _ in range(min(rng.randint(1, 150), total - seq))]
        need = sum(12 + len(b) + 8 for b in batch) + 512  # records + worst WRAP waste
        if spec.transport == "shm":
            while p.free() < need:  # this test's producer waits; natsd's never does
                time.sleep(0.0002)
        for body in batch:
            data = seq.to_bytes(4, "little") + body
            p.stage(zlib.crc32(data) & 0x7FFFFFFF, data)
            seq += 1
        p.publish()
        p.beat()
    print(json.dumps(p.stats()), flush=True)
    ctl.recv(1)  # wait until the parent has drained before closing our end
    """
)


def run_two_process(transport: str, total: int) -> tuple[int, int, dict[str, int]]:
    spec, a, b = create_ring_spec("xproc", 1 << 16, transport=transport)
    parent_ctl, child_ctl = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(child_ctl.fileno()), str(total)],
        pass_fds=[child_ctl.fileno()], stdout=subprocess.PIPE, env=env,
    )
    child_ctl.close()
    # SCM_RIGHTS duplicates the descriptors into the child; then the parent attaches.
    socket.send_fds(parent_ctl, [msgspec.msgpack.encode(spec)], [os.dup(a), os.dup(b)])
    consumer = open_consumer(a, b, spec)
    received = corrupt = 0
    last_seq = -1
    loop = uvloop.new_event_loop()

    def on_ready() -> None:
        nonlocal received, corrupt, last_seq
        for kind, view in consumer.drain(max_bytes=256 * 1024):
            seq = int.from_bytes(view[:4], "little")
            if zlib.crc32(view) & 0x7FFFFFFF != kind or seq <= last_seq:
                corrupt += 1
            last_seq = seq
            received += 1

    async def main() -> None:
        loop.add_reader(consumer.fileno(), on_ready)
        while proc.poll() is None and received < total and last_seq < total - 1:
            await asyncio.sleep(0.01)
            if proc.stdout is not None and readable(proc.stdout.fileno()):
                break  # child finished producing
        for _ in range(200):
            await asyncio.sleep(0.005)
            if not readable(consumer.fileno()):
                break
        loop.remove_reader(consumer.fileno())

    try:
        loop.run_until_complete(asyncio.wait_for(main(), 60))
        on_ready()
        parent_ctl.send(b"x")
        out, _ = proc.communicate(timeout=30)
    finally:
        loop.close()
        consumer.close()
        parent_ctl.close()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    return received, corrupt, json.loads(out)


def test_two_processes_200k_records_through_shm() -> None:
    total = 200_000
    received, corrupt, child_stats = run_two_process("shm", total)
    assert corrupt == 0
    assert received == total == child_stats["records_in"]
    assert child_stats["records_dropped"] == 0
    assert child_stats["producer_heartbeat"] > 0


def test_two_processes_socket_fallback_counts_add_up() -> None:
    total = 30_000
    received, corrupt, child_stats = run_two_process("socket", total)
    assert corrupt == 0
    assert received == child_stats["records_in"]
    assert child_stats["records_in"] + child_stats["records_dropped"] == total

"""Cross-worker import traffic as ``/varz`` ``workers`` shows it.

natsd ``--workers 2 -m PORT`` with exporter EXP and importer IMP on different
workers, so every imported message crosses the shared-memory ring from the
exporter's worker to the importer's. The per-worker message counters must
follow the traffic; the router and ring counters the workers already report
(``Stats.router``, ``Stats.rings``) must be visible in ``/varz`` too and grow
with it, and records a full ring refuses must be counted as drops (forced
here by stopping the importer's worker with SIGSTOP while the exporter sends
more than the 1 MiB ring holds). Loads are bounded (a few thousand messages).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import psutil
import pytest
from crossaccount import CONF
from monitorhttp import get_json
from servers import Server, free_port, running

from natsd.sharding import worker_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

WORKERS = 2
E, I = worker_for("EXP", WORKERS), worker_for("IMP", WORKERS)  # noqa: E741
N = 1000


NOT_EXPOSED = (
    "/varz workers[*] must expose the worker's Stats.router and Stats.rings "
    "(supervisor/monitor_json.py _worker_section)"
)


def varz_workers(mport: int, timeout: float = 10.0) -> dict[int, dict[str, Any]]:
    return {w["index"]: w for w in get_json(mport, "/varz", timeout)["workers"]}


def router(w: dict[str, Any]) -> dict[str, int]:
    assert "router" in w, NOT_EXPOSED
    r: dict[str, int] = w["router"]
    return r


def ring(w: dict[str, Any], src: int, dst: int) -> dict[str, Any]:
    """The stats of the ring ``src -> dst`` as worker ``w`` reports them."""
    assert "rings" in w, NOT_EXPOSED
    found = [r for r in w["rings"] if r.get("name") == f"w{src}-w{dst}"]
    assert found, f"ring w{src}-w{dst} missing from worker {w['index']}: {w['rings']}"
    out: dict[str, Any] = found[0]
    return out


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    assert E != I, "EXP and IMP must live on different workers"
    conf = tmp_path / "imports-monitor.conf"
    conf.write_text(CONF)
    mport = free_port()
    with running("natsd", ["-m", str(mport)], str(conf), workers=WORKERS) as s:
        varz_workers(mport)
        yield s, mport


def url(server: Server, user: str) -> str:
    return f"nats://{user}:{user}@127.0.0.1:{server.port}"


async def connect(server: Server) -> tuple[Any, Any, Any]:
    """EXP and IMP connections, an IMP subscriber on the import and an EXP
    echo service, with the import proven to work (interest crossed)."""
    exp = await nats.connect(url(server, "exp"))
    imp = await nats.connect(url(server, "imp"))

    async def echo(msg: Any) -> None:
        await exp.publish(msg.reply, b"echo:" + msg.data)

    await exp.subscribe("svc.x", cb=echo)
    sub = await imp.subscribe("from.a.>")
    await exp.flush()
    await imp.flush()
    deadline = time.monotonic() + 15
    while True:
        await exp.publish("a.probe", b"p")
        try:
            await sub.next_msg(timeout=0.3)
            break
        except nats.errors.TimeoutError:
            assert time.monotonic() < deadline, "the stream import never started to work"
    return exp, imp, sub


async def send(exp: Any, count: int, payload: bytes = b"x") -> None:
    for i in range(count):
        await exp.publish(f"a.n.{i}", payload)
        if i % 100 == 99:
            await exp.flush()
    await exp.flush()


async def receive(sub: Any, count: int) -> None:
    for _ in range(count):
        await sub.next_msg(timeout=10)


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 90))


def test_worker_message_counters_follow_cross_worker_traffic(server: tuple[Server, int]) -> None:
    s, mport = server

    async def main() -> tuple[dict[int, Any], dict[int, Any]]:
        exp, imp, sub = await connect(s)
        before = await asyncio.to_thread(varz_workers, mport)
        await send(exp, N)
        await receive(sub, N)
        after = await asyncio.to_thread(varz_workers, mport)
        await exp.close()
        await imp.close()
        return before, after

    before, after = run(main())
    assert "EXP" in after[E]["accounts"] and "IMP" in after[I]["accounts"]
    assert after[E]["in_msgs"] - before[E]["in_msgs"] >= N
    assert after[I]["out_msgs"] - before[I]["out_msgs"] >= N
    # Nothing of EXP's stream is delivered by the exporter's worker itself.
    assert after[E]["out_msgs"] - before[E]["out_msgs"] < N
    assert after[I]["in_msgs"] - before[I]["in_msgs"] < N


def test_router_and_ring_counters_follow_cross_worker_traffic(server: tuple[Server, int]) -> None:
    s, mport = server
    requests = 20

    async def main() -> tuple[dict[int, Any], dict[int, Any]]:
        exp, imp, sub = await connect(s)
        assert (await imp.request("x", b"warm", timeout=5)).data == b"echo:warm"
        before = await asyncio.to_thread(varz_workers, mport)
        await send(exp, N)
        await receive(sub, N)
        for i in range(requests):
            assert (await imp.request("x", b"%d" % i, timeout=5)).data == b"echo:%d" % i
        after = await asyncio.to_thread(varz_workers, mport)
        await exp.close()
        await imp.close()
        return before, after

    before, after = run(main())

    def grew(w: int, key: str) -> int:
        return router(after[w])[key] - router(before[w]).get(key, 0)

    assert grew(E, "stream_remote") == N
    assert grew(I, "service_remote") == requests
    assert grew(E, "responses") == requests
    assert grew(I, "received") == N + requests  # stream copies + responses
    assert grew(E, "received") == requests  # service requests
    assert router(after[E])["dropped"] == router(after[I])["dropped"] == 0
    assert router(after[E])["shadows"] >= 1

    # Ring E -> I carries the stream copies and the responses, I -> E the
    # requests; both ends (producer in src, consumer in dst) see the records.
    for src, dst, n in ((E, I, N + requests), (I, E, requests)):
        for w in (src, dst):
            b, a = ring(before[w], src, dst), ring(after[w], src, dst)
            assert a["records_in"] - b["records_in"] >= n, (w, a, b)
            assert a["records_out"] - b["records_out"] >= n, (w, a, b)
            assert a["records_dropped"] == 0, a
        assert ring(after[src], src, dst)["bytes_in"] > ring(before[src], src, dst)["bytes_in"]


def _stop_and_flood(s: Server, mport: int, count: int, payload: bytes) -> tuple[int, dict[int, Any]]:
    """SIGSTOP the importer's worker, make EXP send ``count`` messages (more
    than the ring holds), SIGCONT it; returns how many IMP received and
    ``/varz`` workers taken after the flood."""
    async def main() -> tuple[int, dict[int, Any]]:
        exp, imp, sub = await connect(s)
        pid = (await asyncio.to_thread(varz_workers, mport))[I]["pid"]
        proc = psutil.Process(pid)
        os.kill(pid, signal.SIGSTOP)
        try:
            while proc.status() != psutil.STATUS_STOPPED:
                await asyncio.sleep(0.01)
            # The exporter's worker forwards every message (flush round trips
            # prove it read them) into a ring nobody drains.
            await send(exp, count, payload)
        finally:
            os.kill(pid, signal.SIGCONT)
        got = 0
        while True:
            try:
                await sub.next_msg(timeout=2)
                got += 1
            except nats.errors.TimeoutError:
                break
        workers = await asyncio.to_thread(varz_workers, mport)
        # The import recovers once the ring has been drained.
        await send(exp, 100)
        await receive(sub, 100)
        await exp.close()
        await imp.close()
        return got, workers

    result: tuple[int, dict[int, Any]] = run(main())
    return result


FLOOD = 1500
BIG = b"z" * 1024  # FLOOD * BIG is well over the 1 MiB ring


def test_full_ring_drops_and_recovers(server: tuple[Server, int]) -> None:
    s, mport = server
    got, workers = _stop_and_flood(s, mport, FLOOD, BIG)
    assert 0 < got < FLOOD, got  # the ring held some, refused the rest
    assert all(w["ready"] and w["responding"] and w["restarts"] == 0 for w in workers.values()), workers
    assert s.proc.poll() is None
    assert "Traceback" not in s.log()


def test_full_ring_drops_are_counted(server: tuple[Server, int]) -> None:
    s, mport = server
    got, workers = _stop_and_flood(s, mport, FLOOD, BIG)
    r = ring(workers[E], E, I)
    dropped = r["records_dropped"]
    assert dropped > 0 and r["bytes_dropped"] > 0, r
    assert got == FLOOD - dropped, (got, r)  # every record is delivered or counted
    # The router's own count must agree (it reports the drops of its rings).
    assert router(workers[E])["dropped"] == dropped, (router(workers[E]), r)

"""A worker crash under cross-account traffic (exports/imports across workers).

natsd ``--workers 2`` with exporter EXP and importer IMP on different workers:
a stream import ``a.>`` (prefix ``from``) and a service import (``svc.x`` as
``x``). While EXP streams numbered messages that IMP counts, one of the two
workers is SIGKILLed. The other keeps serving its clients, the supervisor
restarts the dead one with fresh rings, the dead worker's clients reconnect
(nats-py's reconnect) and the imports work again in both directions: the
surviving side's interest must be re-sent over the new ring.

Worker pids and restart counts are read from ``/varz`` ``workers`` (``-m``),
so the test never guesses which process serves which slot. Loads are
bounded; nothing here depends on timing beyond generous deadlines.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import psutil
import pytest
from crossaccount import CONF
from monitorhttp import get_json
from nats.aio.client import Client as NATS
from servers import Server, free_port, running

from natsd.sharding import worker_for

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(120)]

WORKERS = 2
EXP, IMP = "EXP", "IMP"
TOTAL = 3000  # messages EXP streams while a worker dies
AFTER = 200  # messages streamed once everything has reconnected



def varz(mport: int, timeout: float = 10.0) -> dict[str, Any]:
    doc: dict[str, Any] = get_json(mport, "/varz", timeout)
    return doc


def workers(mport: int) -> dict[int, dict[str, Any]]:
    return {w["index"]: w for w in varz(mport)["workers"]}


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Server, int]]:
    assert worker_for(EXP, WORKERS) != worker_for(IMP, WORKERS), "EXP and IMP must live on different workers"
    conf = tmp_path / "imports-crash.conf"
    conf.write_text(CONF)
    mport = free_port()
    with running("natsd", ["-m", str(mport)], str(conf), workers=WORKERS) as s:
        varz(mport)  # monitor is up
        yield s, mport


def url(server: Server, user: str) -> str:
    return f"nats://{user}:{user}@127.0.0.1:{server.port}"


class Conn:
    """A nats-py connection that records its disconnects and reconnects."""

    def __init__(self) -> None:
        self.nc = NATS()
        self.disconnects = 0
        self.reconnected = asyncio.Event()

    async def connect(self, server: Server, user: str) -> NATS:
        async def on_disc() -> None:
            self.disconnects += 1

        async def on_reconn() -> None:
            self.reconnected.set()

        async def on_err(e: Exception) -> None:
            pass

        await self.nc.connect(
            url(server, user), reconnect_time_wait=0.2, max_reconnect_attempts=-1,
            disconnected_cb=on_disc, reconnected_cb=on_reconn, error_cb=on_err,
        )
        return self.nc


async def eventually(check: Callable[[], Any], timeout: float = 15.0, step: float = 0.1) -> None:
    """Await ``check()`` (sync or async) until it is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        r = check()
        if asyncio.iscoroutine(r):
            r = await r
        if r:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(step)


async def request_ok(nc: NATS, subject: str, data: bytes) -> bool:
    try:
        r = await nc.request(subject, data, timeout=1)
    except (nats.errors.TimeoutError, nats.errors.NoRespondersError):
        return False
    return bool(r.data == b"echo:" + data)


async def stream(exp: NATS, prefix: str, count: int, pace: int = 50) -> None:
    """EXP publishes ``a.<prefix>.<i>`` for i < count, pausing every ``pace``."""
    for i in range(count):
        await exp.publish(f"a.{prefix}.{i}", str(i).encode())
        if i % pace == pace - 1:
            await asyncio.sleep(0.01)


class Counter:
    """An IMP subscriber on ``from.a.<prefix>.*`` keeping the numbers it got."""

    def __init__(self) -> None:
        self.got: list[int] = []

    async def cb(self, msg: Any) -> None:
        self.got.append(int(msg.data))

    def check_order(self) -> None:
        assert self.got == sorted(set(self.got)), "import delivered duplicates or out of order"


def assert_healthy(server: Server, mport: int, old_pids: dict[int, int], victim: int) -> None:
    assert server.proc.poll() is None, "supervisor died"
    ws = workers(mport)
    assert len(ws) == WORKERS
    for i, w in ws.items():
        assert w["ready"] and w["responding"], w
        assert psutil.pid_exists(w["pid"])
        assert w["restarts"] == (1 if i == victim else 0), ws
        assert (w["pid"] != old_pids[i]) == (i == victim), ws
    kids = psutil.Process(server.proc.pid).children()
    live = sorted(p.pid for p in kids if "natsd.worker" in " ".join(p.cmdline()))
    assert live == sorted(w["pid"] for w in ws.values())
    log = server.log()
    assert "died" in log
    assert "Traceback" not in log, log
    assert "crashed" not in log, log


async def _scenario(server: Server, mport: int, kill: str) -> None:
    victim = worker_for(kill, WORKERS)
    survivor_acc = IMP if kill == EXP else EXP
    pids = {i: w["pid"] for i, w in (await asyncio.to_thread(workers, mport)).items()}

    exp_c, imp_c, side_c = Conn(), Conn(), Conn()
    exp = await exp_c.connect(server, "exp")
    imp = await imp_c.connect(server, "imp")
    # A second client in the surviving account: its internal pub/sub must keep
    # working while the other worker is down.
    side = await side_c.connect(server, "imp" if survivor_acc == IMP else "exp")
    survivor = imp if survivor_acc == IMP else exp

    async def echo(msg: Any) -> None:
        await exp.publish(msg.reply, b"echo:" + msg.data)

    await exp.subscribe("svc.x", cb=echo)
    await exp.flush()
    during, after = Counter(), Counter()
    await imp.subscribe("from.a.during.*", cb=during.cb)
    await imp.subscribe("from.a.after.*", cb=after.cb)
    probe = await imp.subscribe("from.a.probe")
    internal = await side.subscribe("local.ping")
    await imp.flush()
    await side.flush()

    # Interest crosses the ring asynchronously: wait until the import works.
    async def probe_ok() -> bool:
        await exp.publish("a.probe", b"p")
        try:
            await probe.next_msg(timeout=0.3)
        except nats.errors.TimeoutError:
            return False
        return True

    await eventually(probe_ok)
    assert await request_ok(imp, "x", b"before")

    # Steady load; kill the victim's worker once IMP has seen some of it.
    load = asyncio.create_task(stream(exp, "during", TOTAL))
    await eventually(lambda: len(during.got) >= TOTAL // 10 or load.done(), step=0.01)
    os.kill(pids[victim], signal.SIGKILL)

    victim_c = exp_c if kill == EXP else imp_c
    survivor_c = imp_c if kill == EXP else exp_c
    # The survivor keeps serving its account while the victim is down (or
    # already restarted: only the survivor's own traffic is asserted here).
    for n in range(3):
        await survivor.publish("local.ping", b"%d" % n)
        assert (await internal.next_msg(timeout=5)).data == b"%d" % n
    assert survivor.is_connected

    await asyncio.wait_for(victim_c.reconnected.wait(), 20)
    await asyncio.wait_for(load, 30)
    await eventually(lambda: workers(mport)[victim]["ready"])

    # Interest is re-established across the fresh rings: the stream flows again.
    await eventually(probe_ok, timeout=20)
    await stream(exp, "after", AFTER)
    await exp.flush()
    await eventually(lambda: len(after.got) >= AFTER, timeout=20)
    assert after.got == list(range(AFTER))
    during.check_order()
    assert 0 < len(during.got) <= TOTAL
    # The service import works again (the responder re-subscribed if it was EXP
    # that reconnected).
    await eventually(lambda: request_ok(imp, "x", b"again"), timeout=20)
    # And the survivor's internal traffic still works.
    await survivor.publish("local.ping", b"end")
    assert (await internal.next_msg(timeout=5)).data == b"end"

    assert survivor_c.disconnects == 0 and side_c.disconnects == 0, "a client of the surviving worker was dropped"
    assert victim_c.disconnects >= 1
    for nc in (exp, imp, side):
        with contextlib.suppress(Exception):
            await nc.close()
    await asyncio.to_thread(assert_healthy, server, mport, pids, victim)


@pytest.mark.parametrize("kill", [EXP, IMP], ids=["kill-exporter-worker", "kill-importer-worker"])
def test_imports_survive_worker_crash(server: tuple[Server, int], kill: str) -> None:
    s, mport = server
    try:
        asyncio.run(asyncio.wait_for(_scenario(s, mport, kill), 90))
    except BaseException:
        print(s.log())
        raise


async def _repeated(server: Server, mport: int) -> None:
    """Both workers at once, then each again: imports recover every time."""
    conns = [Conn(), Conn()]
    exp = await conns[0].connect(server, "exp")
    imp = await conns[1].connect(server, "imp")

    async def echo(msg: Any) -> None:
        await exp.publish(msg.reply, b"echo:" + msg.data)

    await exp.subscribe("svc.x", cb=echo)
    probe = await imp.subscribe("from.a.probe")
    await exp.flush()
    await imp.flush()

    async def probe_ok() -> bool:
        await exp.publish("a.probe", b"p")
        try:
            while True:  # drain stale probes, succeed on a fresh one
                await probe.next_msg(timeout=0.3)
                if probe.pending_msgs == 0:
                    return True
        except nats.errors.TimeoutError:
            return False

    restarts = {0: 0, 1: 0}
    for victims in ((EXP, IMP), (EXP,), (EXP,), (IMP,)):
        await eventually(probe_ok, timeout=20)
        await eventually(lambda: request_ok(imp, "x", b"ok"), timeout=20)
        ws = await asyncio.to_thread(workers, mport)
        for c in conns:
            c.reconnected.clear()
        for acc in victims:
            slot = worker_for(acc, WORKERS)
            os.kill(ws[slot]["pid"], signal.SIGKILL)
            restarts[slot] += 1
        await asyncio.gather(*(
            asyncio.wait_for(conns[0 if acc == EXP else 1].reconnected.wait(), 20) for acc in victims
        ))
        await eventually(lambda: all(w["ready"] and w["restarts"] == restarts[i]
                                     for i, w in workers(mport).items()), timeout=20)
    await eventually(probe_ok, timeout=20)
    await eventually(lambda: request_ok(imp, "x", b"end"), timeout=20)
    for nc in (exp, imp):
        with contextlib.suppress(Exception):
            await nc.close()
    assert server.proc.poll() is None, "supervisor died"
    assert "Traceback" not in server.log()


def test_imports_survive_repeated_and_simultaneous_crashes(server: tuple[Server, int]) -> None:
    s, mport = server
    try:
        asyncio.run(asyncio.wait_for(_repeated(s, mport), 100))
    except BaseException:
        print(s.log())
        raise

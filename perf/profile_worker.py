"""In-process profiling harness for the worker hot path (no sockets, no event loop).

``python -m perf.profile_worker [SCENARIO ...] [--msgs N] [--size B] [--profile] [--top K]``

Builds one :class:`~natsd.worker.account.Account` with real
:class:`~natsd.worker.client.Client` objects whose transports are stubs (``write``
only counts bytes), then feeds the publisher 64 KiB reads of prebuilt ``PUB`` frames
through ``Client.data_received`` -- exactly what uvloop would call -- and lets the stub
worker flush once per read, as the real one does. What it measures is therefore the
Python cost of parse → route → deliver → flush, without syscalls or the event loop:
an upper bound on one worker's rate, and the part of the real rate that Python code
(rather than the kernel) is responsible for.

Scenarios: ``pub`` (no subscribers), ``pubsub`` (1:1), ``fanout`` (1:4), ``queue``
(1 publisher, 4 queue members), ``perms`` (1:1 with a publish allow list, so the
checked path and the verdict cache run). ``--profile`` prints the cProfile top
functions by total (self) time for each scenario.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import time
from typing import Any

from natsd.config.schema import Permissions, SubjectPermission
from natsd.ipc.messages import ConnectInfo, HandOff, WorkerConfig
from natsd.worker.account import Account
from natsd.worker.client import Client
from natsd.worker.router import Router

READ = 65536


class StubTransport:
    __slots__ = ("bytes", "writes")

    def __init__(self) -> None:
        self.bytes = 0
        self.writes = 0

    def write(self, data: Any) -> None:
        self.bytes += len(data)
        self.writes += 1

    def get_write_buffer_size(self) -> int:
        return 0

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


class StubWorker:
    """What Client and Account touch of natsd.worker.server.Worker."""

    def __init__(self) -> None:
        self.config = WorkerConfig(
            worker_id=0, server_id="S", server_name="S", version="2.10.0", natsd_version="0",
            host="127.0.0.1", port=4222, max_payload=1 << 20, max_control_line=4096,
            max_pending=64 << 20, max_subscriptions=0, max_sub_tokens=0, ping_interval=120.0,
            ping_max=2, write_deadline=10.0, headers=True, system_account="$SYS",
        )
        self.dirty: list[Client] = []
        self.slow_consumers = 0
        self.router = Router(0, 1, lambda _peer, _kind, _data: True)
        self.router.configure(())
        self.account = Account("$G", self.router)
        self.closed_conns: list[Any] = []

    def flush(self, producer: Client | None = None) -> None:
        dirty = self.dirty
        if dirty:
            self.dirty = []
            for c in dirty:
                c.flush()

    def client_closed(self, client: Client, reason: Any) -> None:
        pass


_cid = 0


def make_client(w: StubWorker, perms: Permissions | None = None) -> Client:
    global _cid
    _cid += 1
    h = HandOff(client_id=_cid, account="$G", permissions=perms,
                connect=ConnectInfo(verbose=False, pedantic=False, protocol=1))
    c = Client(w, h, w.account)  # type: ignore[arg-type]
    c.transport = StubTransport()  # type: ignore[assignment]
    return c


def reads(size: int, msgs: int, subject: bytes = b"bench") -> tuple[list[bytes], int]:
    """Reads of whole frames (as a fast publisher's 64 KiB writes arrive), and the
    number of messages they hold."""
    frame = b"PUB %s %d\r\n" % (subject, size) + b"x" * size + b"\r\n"
    per = max(1, READ // len(frame))
    chunk = frame * per
    n = max(1, msgs // per)
    return [chunk] * n, n * per


def setup(scenario: str) -> tuple[StubWorker, Client, list[Client]]:
    w = StubWorker()
    perms = None
    if scenario == "perms":
        perms = Permissions(publish=SubjectPermission(allow=("orders.>", "svc.*.get", "bench")))
    pub = make_client(w, perms)
    nsubs = {"pub": 0, "pubsub": 1, "perms": 1, "fanout": 4, "queue": 4}[scenario]
    subs = []
    for i in range(nsubs):
        c = make_client(w)
        queue = b" q" if scenario == "queue" else b""
        c.data_received(b"SUB bench%s %d\r\n" % (queue, i + 1))
        subs.append(c)
    return w, pub, subs


def run(scenario: str, size: int, msgs: int, profile: bool, top: int) -> dict[str, Any]:
    _w, pub, subs = setup(scenario)
    data, n = reads(size, msgs)
    feed = pub.data_received
    for chunk in data[:10]:  # warm the parser and prefix caches
        feed(chunk)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    for chunk in data:
        feed(chunk)
    if prof:
        prof.disable()
    dt = time.perf_counter() - t0
    out = sum(c.transport.bytes for c in subs)  # type: ignore[union-attr]
    res = {"scenario": scenario, "size": size, "msgs": n, "secs": dt,
           "pub_rate": n / dt, "deliveries": sum(c.out_msgs for c in subs),
           "ns_per_msg": dt / n * 1e9, "out_bytes": out}
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("tottime").print_stats(top)
        res["profile"] = s.getvalue()
    return res


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", default=["pub", "pubsub", "fanout", "queue", "perms"])
    ap.add_argument("--msgs", type=int, default=2_000_000)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args(argv)
    for sc in a.scenarios:
        r = run(sc, a.size, a.msgs, a.profile, a.top)
        print(f"{sc:8s} {a.size:6d} B  {r['msgs']:>10,} msgs  {r['pub_rate']:>12,.0f} msgs/s  "
              f"{r['ns_per_msg']:7.0f} ns/msg  deliveries {r['deliveries']:,}")
        if "profile" in r:
            print(r["profile"])


if __name__ == "__main__":
    main()

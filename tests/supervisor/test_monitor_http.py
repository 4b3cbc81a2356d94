"""The monitor's HTTP server, in process, on a stand-in supervisor.

The stand-in has exactly the attributes :class:`MonitorServer` reads, so
these tests pin that contract as well as the HTTP behaviour: limits,
methods, errors, coalesced stats requests and the absence of secrets.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from natsd.config.schema import Account, Authorization, Options, User
from natsd.ipc import messages as M
from supervisor.monitor import MAX_REQUEST, ROUTES, MonitorServer, Snapshots
from supervisor.sysapi import SysApi

SECRETS = ("hunter2-password", "tok-en-s3cret", "ALICEPW")


@dataclass
class Slot:
    index: int
    pid: int
    ready: bool = True
    restarts: int = 0
    clients: set[int] = field(default_factory=set)


@dataclass
class Entry:
    worker: int
    account: str
    user: str | None
    permissions: Any = None
    jwt: str | None = None
    expires: float | None = None


class FakeArbiter:
    def __init__(self) -> None:
        self.slots = [Slot(0, os.getpid(), clients={1})]


class FakeSupervisor:
    def __init__(self) -> None:
        self.opts = Options(
            host="127.0.0.1",
            authorization=Authorization(token=SECRETS[1]),
            accounts=(
                Account(name="A", users=(User(user="alice", password=SECRETS[2], account="A"),)),
            ),
            http_port=-1,
        )
        self.server_id = "NFAKE"
        self.info: dict[str, Any] = {"version": "2.10.0", "port": 4222, "auth_required": True}
        self.start_time = time.time() - 5
        self.total_connections = 1
        self.auth_timeout = 2.0
        self.clients = {1: Entry(0, "A", "alice")}
        self.account_conns = {"A": 1}
        self.lame_duck = False
        self.arbiter = FakeArbiter()
        self.gathers = 0
        self.gather_delay = 0.0
        self.published: list[tuple[str, bytes, bytes]] = []
        self.sysapi = SysApi(self)  # type: ignore[arg-type]
        self.snapshots = Snapshots(self)  # type: ignore[arg-type]

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return asyncio.get_running_loop()

    def account_routes(self) -> tuple[Account, ...]:
        return self.opts.accounts

    def system_account_name(self) -> str | None:
        return self.opts.system_account

    def name_tags(self, account: str, user_jwt: str | None) -> tuple[str, str]:
        return account, ""

    def publish(self, account: str, subject: bytes, payload: bytes, reply: bytes | None = None) -> None:
        self.published.append((account, subject, payload))

    async def gather_stats(self, timeout: float = 2.0) -> list[M.Stats]:
        self.gathers += 1
        await asyncio.sleep(self.gather_delay)
        c = M.ConnStats(
            cid=1,
            account="A",
            user="alice",
            host="127.0.0.1",
            port=5555,
            start=time.time(),
            last_activity=time.time(),
            in_msgs=1,
            out_msgs=2,
            in_bytes=3,
            out_bytes=4,
            subs=1,
            pending_bytes=0,
            name=None,
            lang="python3",
            version="2",
            rtt=0.001,
            subjects=["foo"],
        )
        return [
            M.Stats(
                request_id=1,
                worker_id=0,
                pid=os.getpid(),
                accounts=["A"],
                in_msgs=1,
                out_msgs=2,
                in_bytes=3,
                out_bytes=4,
                slow_consumers=0,
                subscriptions=1,
                connections=[c],
            )
        ]


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def get(path: str, method: str = "GET") -> bytes:
    return f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def with_monitor(body: Callable[[MonitorServer, int, FakeSupervisor], Awaitable[None]]) -> None:
    async def main() -> None:
        sup = FakeSupervisor()
        mon = MonitorServer(sup)  # type: ignore[arg-type]
        port = await mon.start("127.0.0.1", -1)
        try:
            await asyncio.wait_for(body(mon, port, sup), 30)
        finally:
            mon.close()

    asyncio.run(main())


def test_every_route_answers_json_without_secrets() -> None:
    async def body(mon: MonitorServer, port: int, sup: FakeSupervisor) -> None:
        for path in [*ROUTES, "/"]:
            for q in ("", "?subs=1&auth=1", "?acc=A&unused=1"):
                status, headers, data = await request(port, get(path + q))
                assert status == 200, (path, q, data)
                text = data.decode()
                for secret in SECRETS:
                    assert secret not in text
                if path != "/":
                    assert headers["Content-Type"] == "application/json"
                    assert headers["Access-Control-Allow-Origin"] == "*"
                    json.loads(data)
        assert mon.req_stats["/varz"] == 3

    with_monitor(body)


def test_varz_reports_request_stats_and_processes() -> None:
    async def body(mon: MonitorServer, port: int, sup: FakeSupervisor) -> None:
        await request(port, get("/healthz"))
        _, _, data = await request(port, get("/varz"))
        v = json.loads(data)
        assert v["http_req_stats"] == {"/healthz": 1, "/varz": 1}
        assert v["mem"] > 0 and v["connections"] == 1 and v["auth_required"] is True

    with_monitor(body)


def test_http_errors() -> None:
    async def body(mon: MonitorServer, port: int, sup: FakeSupervisor) -> None:
        status, _, data = await request(port, get("/nope"))
        assert (status, data) == (404, b"404 page not found\n")
        status, _, _ = await request(port, get("/varz", "POST"))
        assert status == 405
        status, _, data = await request(port, get("/connz?sort=bogus"))
        assert (status, data) == (400, b"invalid sorting option: bogus")
        status, _, _ = await request(port, b"GARBAGE\r\n\r\n")
        assert status == 400
        status, _, _ = await request(
            port, b"GET /varz HTTP/1.1\r\nX: " + b"a" * MAX_REQUEST + b"\r\n\r\n"
        )
        assert status == 431
        status, headers, data = await request(port, get("/varz", "HEAD"))
        assert status == 200 and data == b"" and int(headers["Content-Length"]) > 0

    with_monitor(body)


def test_concurrent_scrapes_share_one_stats_request() -> None:
    async def body(mon: MonitorServer, port: int, sup: FakeSupervisor) -> None:
        sup.gather_delay = 0.2
        results = await asyncio.gather(*(request(port, get("/connz")) for _ in range(8)))
        assert all(r[0] == 200 for r in results)
        assert sup.gathers < 8

    with_monitor(body)


def test_stalled_client_does_not_block_others() -> None:
    async def body(mon: MonitorServer, port: int, sup: FakeSupervisor) -> None:
        _, stalled = await asyncio.open_connection("127.0.0.1", port)
        stalled.write(b"GET /varz HTTP/1.1\r\n")  # never finishes its head
        await stalled.drain()
        status, _, _ = await request(port, get("/healthz"))
        assert status == 200
        stalled.close()

    with_monitor(body)


def test_unhealthy_while_a_worker_is_down() -> None:
    async def body(mon: MonitorServer, port: int, sup: FakeSupervisor) -> None:
        sup.arbiter.slots[0].ready = False
        status, _, data = await request(port, get("/healthz"))
        assert status == 503 and json.loads(data)["status"] == "unavailable"

    with_monitor(body)

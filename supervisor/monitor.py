"""The HTTP monitoring listener (``-m`` / ``http_port``), on the supervisor's loop.

Theory of operation
-------------------
nats-server serves ``/varz``, ``/connz``, ``/healthz``... from a Go
``net/http`` server. natsd runs a deliberately small HTTP/1.1 server in the
supervisor's own event loop instead of a dependency: every request is one
``GET`` (or ``HEAD``) with no body, answered with ``Connection: close``.

Why it cannot hurt client traffic:

* the request head is read through a ``StreamReader`` limited to
  :data:`MAX_REQUEST` bytes, under :data:`REQUEST_TIMEOUT`; an oversized
  head gets 431, a slow one is dropped;
* at most :data:`MAX_CONNECTIONS` monitor sockets are open at once; more are
  closed on accept, so a scraper flood costs file descriptors we chose to
  spend, not memory;
* worker counters come from ``Supervisor.gather_stats`` with a short
  timeout, and concurrent requests share one in-flight gather, so N
  scrapers cost the workers one ``StatsRequest`` each, not N;
* the response is written with a drain timeout, so a reader that stops
  reading cannot pin a buffer.

The documents themselves are built by pure functions in
:mod:`supervisor.monitor_json` from a frozen :class:`Snapshot`, which never
contains a secret (see that module). ``mem`` and ``cpu`` are the sums over the
supervisor and every live worker process (psutil: resident set size in bytes
and CPU percent since the previous scrape), since together they are what
nats-server's single process would be.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import ssl
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import psutil

from natsd.ipc import messages as M
from supervisor import monitor_json as J
from supervisor.monitor_format import BadRequest

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger("natsd.monitor")

MAX_REQUEST = 8 * 1024
REQUEST_TIMEOUT = 5.0
WRITE_TIMEOUT = 10.0
MAX_CONNECTIONS = 64
STATS_TIMEOUT = 1.0

Handler = Callable[[J.Snapshot, J.Query], tuple[int, Any]]


def _ok(fn: Callable[[J.Snapshot], dict[str, Any]]) -> Handler:
    return lambda snap, q: (200, fn(snap))


def _okq(fn: Callable[[J.Snapshot, J.Query], dict[str, Any]]) -> Handler:
    return lambda snap, q: (200, fn(snap, q))


# path -> (needs worker stats, builder)
ROUTES: dict[str, tuple[bool, Handler]] = {
    "/varz": (True, _ok(J.varz)),
    "/connz": (True, _okq(J.connz)),
    "/subsz": (True, _okq(J.subsz)),
    "/subscriptionsz": (True, _okq(J.subsz)),
    "/accountz": (True, _okq(J.accountz)),
    "/accstatz": (True, _okq(J.accstatz)),
    "/routez": (False, _ok(J.routez)),
    "/gatewayz": (False, _ok(J.gatewayz)),
    "/leafz": (False, _ok(J.leafz)),
    "/jsz": (False, _ok(J.jsz)),
    "/healthz": (False, J.healthz),
}

_INDEX_LINKS = [
    ("varz", "General"),
    ("jsz", "JetStream"),
    ("connz", "Connections"),
    ("accountz", "Accounts"),
    ("accstatz", "Account Stats"),
    ("subsz", "Subscriptions"),
    ("routez", "Routes"),
    ("leafz", "LeafNodes"),
    ("gatewayz", "Gateways"),
    ("healthz", "Health Probe"),
]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


def index_html(version: str) -> str:
    links = "\n".join(f'  <a href="./{p}">{t} <code>/{p}</code></a><br/>' for p, t in _INDEX_LINKS)
    return f'<html lang="en">\n<head><title>natsd</title></head>\n<body>\n  <h1>natsd</h1>\n  <p>nats-server compatible v{version}</p>\n{links}\n</body>\n</html>\n'


def response(
    status: int, ctype: str, body: bytes, *, head_only: bool = False, cors: bool = False
) -> bytes:
    lines = [
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}",
        f"Content-Type: {ctype}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if cors:
        lines.append("Access-Control-Allow-Origin: *")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + body


class Snapshots:
    """Where monitoring documents get their data: one per supervisor, shared
    by the http and https listeners and the system-account API, so that
    concurrent requests of every kind share one in-flight worker gather."""

    def __init__(self, sup: Supervisor, *, stats_timeout: float = STATS_TIMEOUT) -> None:
        self.sup = sup
        self.stats_timeout = stats_timeout
        # Keys come only from fixed route tables, so this map is bounded.
        self.req_stats: dict[str, int] = {}
        self._inflight: asyncio.Task[list[M.Stats]] | None = None
        self._gathered_at = 0.0
        self._procs: dict[int, psutil.Process] = {}

    def count(self, path: str) -> None:
        self.req_stats[path] = self.req_stats.get(path, 0) + 1

    def close(self) -> None:
        if self._inflight is not None:
            self._inflight.cancel()

    # -- data ------------------------------------------------------------
    async def _stats(self, max_age: float) -> list[M.Stats]:
        """Worker counters: the last gather if it finished less than
        ``max_age`` seconds ago, else the one in flight or a new one."""
        done = self._inflight is not None and self._inflight.done() and not self._inflight.cancelled()
        if done and max_age > 0 and time.monotonic() - self._gathered_at < max_age:
            assert self._inflight is not None
            return self._inflight.result()
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.get_running_loop().create_task(self._gather())
        return await asyncio.shield(self._inflight)

    async def _gather(self) -> list[M.Stats]:
        stats = await self.sup.gather_stats(self.stats_timeout)
        self._gathered_at = time.monotonic()
        return stats

    def _process_metrics(self, pids: list[int]) -> tuple[int, float]:
        """RSS bytes and CPU percent summed over the supervisor and workers."""
        mem, cpu = 0, 0.0
        live = set(pids)
        for pid in [p for p in self._procs if p not in live]:
            del self._procs[pid]
        for pid in pids:
            try:
                proc = self._procs.get(pid)
                if proc is None:
                    proc = self._procs[pid] = psutil.Process(pid)
                mem += proc.memory_info().rss
                cpu += proc.cpu_percent(None)
            except psutil.Error:
                self._procs.pop(pid, None)
        return mem, cpu

    async def snapshot(self, *, with_stats: bool, max_age: float = 0.0) -> J.Snapshot:
        """``max_age``: how old the worker counters may be (0: fresh); what
        tenants may ask for over NATS is served at most once per
        :data:`supervisor.sysapi.TENANT_MAX_AGE` from a new gather."""
        sup = self.sup
        stats = await self._stats(max_age) if with_stats else []
        workers = tuple(
            J.WorkerView(
                index=s.index, pid=s.pid, ready=s.ready, restarts=s.restarts, clients=len(s.clients)
            )
            for s in sup.arbiter.slots
        )
        mem, cpu = (
            self._process_metrics([os.getpid()] + [w.pid for w in workers if w.pid])
            if with_stats
            else (0, 0.0)
        )
        configured = tuple(a.name for a in sup.opts.accounts) + tuple(sup.account_conns)
        return J.Snapshot(
            server_id=sup.server_id,
            server_name=sup.opts.server_name or sup.server_id,
            info=dict(sup.info),
            opts=sup.opts,
            start=sup.start_time,
            now=time.time(),
            total_connections=sup.total_connections,
            auth_timeout=sup.auth_timeout,
            workers=workers,
            stats=tuple(stats),
            accounts=configured,
            users={cid: e.user for cid, e in sup.clients.items()},
            config_load_time=float(getattr(sup, "config_load_time", sup.start_time)),
            lame_duck=sup.lame_duck,
            mem=mem,
            cpu=cpu,
            cores=os.cpu_count() or 1,
            http_req_stats=dict(self.req_stats),
            system_api=sup.sysapi.counters(),
            account_defs=sup.account_routes(),
        )


class MonitorServer:
    def __init__(
        self, sup: Supervisor, *, stats_timeout: float = STATS_TIMEOUT, snapshots: Snapshots | None = None
    ) -> None:
        self.sup = sup
        self._own_snapshots = snapshots is None
        self.snapshots = snapshots or Snapshots(sup, stats_timeout=stats_timeout)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def req_stats(self) -> dict[str, int]:
        return self.snapshots.req_stats

    async def start(self, host: str, port: int, ssl_ctx: ssl.SSLContext | None = None) -> int:
        """Listen on ``host:port`` (``-1`` or ``0``: a random port); returns the bound port."""
        self._server = await asyncio.start_server(
            self._handle, host, 0 if port < 0 else port, limit=MAX_REQUEST, ssl=ssl_ctx, backlog=128
        )
        sock = self._server.sockets[0]
        return int(sock.getsockname()[1])

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._own_snapshots:
            self.snapshots.close()
        for w in list(self._writers):
            w.close()
        self._writers.clear()

    # -- connection ------------------------------------------------------
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._writers) >= MAX_CONNECTIONS:
            writer.close()
            return
        self._writers.add(writer)
        try:
            out = await self._read_and_answer(reader)
            if out:
                writer.write(out)
                await asyncio.wait_for(writer.drain(), WRITE_TIMEOUT)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the peer went away or stalled: nothing to answer
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read_and_answer(self, reader: asyncio.StreamReader) -> bytes:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
        except asyncio.LimitOverrunError:
            return response(431, "text/plain; charset=utf-8", b"request header too large\n")
        except asyncio.IncompleteReadError as e:
            if len(e.partial) >= MAX_REQUEST:
                return response(431, "text/plain; charset=utf-8", b"request header too large\n")
            return b""
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
            return response(400, "text/plain; charset=utf-8", b"bad request\n")
        method, target = parts[0], parts[1].decode("latin-1")
        if method not in (b"GET", b"HEAD"):
            return response(405, "text/plain; charset=utf-8", b"method not allowed\n")
        status, ctype, body, cors = await self.answer(target)
        return response(status, ctype, body, head_only=method == b"HEAD", cors=cors)

    async def answer(self, target: str) -> tuple[int, str, bytes, bool]:
        """Status, content type, body and CORS flag for one request target."""
        url = urlsplit(target)
        path = url.path.rstrip("/") or "/"
        if path == "/":
            self.snapshots.count(path)
            return (
                200,
                "text/html; charset=utf-8",
                index_html(str(self.sup.info.get("version", ""))).encode(),
                False,
            )
        route = ROUTES.get(path)
        if route is None:
            return 404, "text/plain; charset=utf-8", b"404 page not found\n", False
        self.snapshots.count(path)
        needs_stats, build = route
        query = parse_qs(url.query, keep_blank_values=True)
        try:
            snap = await self.snapshots.snapshot(with_stats=needs_stats)
            status, doc = build(snap, query)
        except BadRequest as e:
            return 400, "text/plain; charset=utf-8", str(e).encode(), False
        except Exception:
            # A bug in a builder must not take the supervisor down; it is
            # logged with its traceback and the scraper sees a 500.
            log.exception("monitor: %s failed", path)
            return 500, "text/plain; charset=utf-8", b"internal error\n", False
        body = json.dumps(doc, indent=2, ensure_ascii=False).encode()
        return status, "application/json", body, True

    def _count(self, path: str) -> None:
        # Keys come only from the fixed route table, so this map is bounded.
        self.req_stats[path] = self.req_stats.get(path, 0) + 1

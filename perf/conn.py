"""Connection set-up for the load generator.

Every connection is established the same way: TCP connect, (TLS upgrade after
the server's INFO when ``--tls``), ``CONNECT`` with credentials, the
connection's ``SUB`` lines, then ``PING``; the connection is ready when the
matching ``PONG`` arrives, which also proves the server has registered every
subscription before any publisher starts.

Plain connections are set up *pipelined* in batches: connect and write the
whole handshake without waiting for INFO (the protocol allows it; the server
reads CONNECT whenever it arrives), then collect the PONGs with one selector.
This keeps ten thousand connections from costing ten thousand round trips.
TLS needs the INFO before the upgrade, so those are set up one at a time.
"""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import time
from dataclasses import dataclass

from perf.proto import Op, Parser, connect_frame

BATCH = 256


class SetupError(RuntimeError):
    pass


@dataclass(slots=True)
class Endpoint:
    host: str = "127.0.0.1"
    port: int = 4222
    tls: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_insecure: bool = False
    connect_timeout: float = 10.0


@dataclass(slots=True)
class Creds:
    user: str | None = None
    password: str | None = None
    token: str | None = None


def ssl_context(ep: Endpoint) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ep.tls_ca)
    if ep.tls_cert:
        ctx.load_cert_chain(ep.tls_cert, ep.tls_key)
    if ep.tls_insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _tcp(ep: Endpoint) -> socket.socket:
    sock = socket.create_connection((ep.host, ep.port), timeout=ep.connect_timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _check(op: Op, where: str) -> None:
    if op.kind == "-ERR":
        raise SetupError(f"{where}: server said -ERR {op.data.decode('latin-1')}")


def _read_ops(sock: socket.socket, parser: Parser) -> list[Op]:
    data = sock.recv(65536)
    if not data:
        raise SetupError("server closed the connection during set-up")
    return list(parser.feed(data))


def setup_tls(ep: Endpoint, creds: Creds, subs: bytes, ctx: ssl.SSLContext,
              name: str) -> socket.socket:
    """Blocking TLS set-up: INFO in clear, upgrade, then CONNECT/SUB/PING."""
    sock = _tcp(ep)
    parser = Parser()
    info: dict[str, object] | None = None
    while info is None:
        for op in _read_ops(sock, parser):
            _check(op, "tls set-up")
            if op.kind == "INFO":
                info = json.loads(op.data)
    tsock = ctx.wrap_socket(sock, server_hostname=ep.host)
    tsock.sendall(connect_frame(user=creds.user, password=creds.password,
                                token=creds.token, name=name, tls=True) + subs + b"PING\r\n")
    parser = Parser()
    while True:
        for op in _read_ops(tsock, parser):
            _check(op, "tls set-up")
            if op.kind == "PONG":
                tsock.setblocking(False)
                return tsock


def setup_plain(ep: Endpoint, items: list[tuple[Creds, bytes, str]]) -> list[socket.socket]:
    """Pipelined set-up of plain connections; ``items`` are (creds, SUB lines, name)."""
    out: list[socket.socket] = []
    for i in range(0, len(items), BATCH):
        out.extend(_setup_batch(ep, items[i:i + BATCH]))
    return out


def _setup_batch(ep: Endpoint, items: list[tuple[Creds, bytes, str]]) -> list[socket.socket]:
    socks: list[socket.socket] = []
    try:
        for creds, subs, name in items:
            sock = _tcp(ep)
            socks.append(sock)
            sock.sendall(connect_frame(user=creds.user, password=creds.password,
                                       token=creds.token, name=name) + subs + b"PING\r\n")
        sel = selectors.DefaultSelector()
        parsers = {}
        for sock in socks:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
            parsers[sock.fileno()] = Parser()
        waiting = len(socks)
        deadline = time.monotonic() + ep.connect_timeout + 0.05 * len(socks)
        while waiting:
            left = deadline - time.monotonic()
            if left <= 0:
                raise SetupError(f"timed out waiting for PONG on {waiting} connection(s)")
            for key, _ in sel.select(min(left, 0.5)):
                sock = key.fileobj  # type: ignore[assignment]
                try:
                    ops = _read_ops(sock, parsers[sock.fileno()])
                except BlockingIOError:
                    continue
                for op in ops:
                    _check(op, "set-up")
                    if op.kind == "PONG":
                        sel.unregister(sock)
                        waiting -= 1
                        break
        sel.close()
        return socks
    except BaseException:
        for sock in socks:
            sock.close()
        raise

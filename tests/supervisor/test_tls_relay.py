"""The TLS relay: handshake, pre-hand-off reads, pumping, back-pressure and closing.

Three parties run concurrently: the server side (``accept_tls`` + ``TLSConn``) on the
test's event loop, parametrised over uvloop and plain asyncio; a TLS client with its
own asyncio loop in a thread (so it can read and write at once); and a "worker" that
owns the other end of the socketpair, as blocking code in a thread. Kernel socket
buffers are shrunk so that back-pressure shows up after a few hundred KiB instead of
after several MB of kernel buffering.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from tlscerts import INFO, LOOPS, PKI, accept_one, client_context, listener, make_pki, run

from natsd.config.schema import TLSOptions
from supervisor.tls import (
    RelayLimits,
    TLSConn,
    TLSHandshakeFailed,
    TLSHandshakeTimeout,
    accept_tls,
    build_server_context,
    peek_first_byte,
)

SMALL_BUF = 32 * 1024
BULK = 4 * 1024 * 1024
LIMITS = RelayLimits()
# What a bounded buffer may hold: its high-water mark plus one read chunk, with slack.
BOUND = LIMITS.high_water + 512 * 1024


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def server_ctx(pki: PKI) -> ssl.SSLContext:
    return build_server_context(
        TLSOptions(cert_file=str(pki.server.cert_path), key_file=str(pki.server.key_path))
    )


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_client(port: int, ctx: ssl.SSLContext, *, info: bool = True) -> Streams:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUF)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    if info:
        assert await reader.readline() == INFO
    await writer.start_tls(ctx, server_hostname="localhost")
    return reader, writer


def in_thread(fn: Callable[..., Awaitable[Any]], *args: Any) -> asyncio.Future[Any]:
    """Run an async client on its own event loop in a worker thread."""
    return asyncio.ensure_future(asyncio.to_thread(asyncio.run, fn(*args)))  # type: ignore[arg-type]


def small_pair() -> tuple[socket.socket, socket.socket]:
    worker, relay_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    for s in (worker, relay_end):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUF)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUF)
    return worker, relay_end


async def read_connect(conn: TLSConn) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n" not in data:
        chunk = await conn.recv()
        assert chunk, "EOF before CONNECT"
        data += chunk
    line, _, pre = data.partition(b"\r\n")
    return line, pre


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(1 << 20, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


def recv_all(sock: socket.socket) -> bytes:
    buf = bytearray()
    while chunk := sock.recv(1 << 20):
        buf += chunk
    return bytes(buf)


async def until_stalled(progress: Callable[[], int], total: int) -> int:
    """Wait until a producer stops making progress (or finishes); return its count."""
    last, same = -1, 0
    for _ in range(200):
        await asyncio.sleep(0.05)
        now = progress()
        same = same + 1 if now == last else 0
        if same >= 6 or now >= total:
            return now
        last = now
    return progress()


@pytest.mark.parametrize("kind", LOOPS)
def test_round_trip_and_pre_bytes(kind: str, pki: PKI, server_ctx: ssl.SSLContext) -> None:
    async def client(port: int) -> bytes:
        reader, writer = await open_client(port, client_context(pki.ca.cert_path))
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await writer.drain()
        reply = await reader.readexactly(6)
        writer.write(b"SUB a 1\r\n")
        await writer.drain()
        reply += await reader.readexactly(6)
        writer.close()
        await writer.wait_closed()
        return reply

    async def main() -> None:
        lsock = listener(SMALL_BUF)
        cli = in_thread(client, lsock.getsockname()[1])
        conn = await accept_one(lsock, server_ctx)
        line, pre = await read_connect(conn)
        assert line == b'CONNECT {"verbose":false}'
        worker, relay_end = small_pair()
        await conn.start_relay(relay_end)
        # The worker gets `pre` out of band; the socket carries only what follows.
        got = pre + await asyncio.to_thread(recv_exactly, worker, 6 - len(pre))
        assert got == b"PING\r\n"
        await asyncio.to_thread(worker.sendall, b"PONG\r\n")
        assert await asyncio.to_thread(recv_exactly, worker, 9) == b"SUB a 1\r\n"
        await asyncio.to_thread(worker.sendall, b"+OK1\r\n")
        assert await cli == b"PONG\r\n+OK1\r\n"
        assert await asyncio.to_thread(recv_all, worker) == b""  # client gone => worker EOF
        await asyncio.wait_for(conn.closed, 10)
        assert conn.bytes_in == len(b'CONNECT {"verbose":false}\r\nPING\r\nSUB a 1\r\n')
        assert conn.bytes_out == 12
        worker.close()
        lsock.close()

    run(kind, main())


@pytest.mark.parametrize("kind", LOOPS)
def test_bulk_client_to_worker_with_back_pressure(
    kind: str, pki: PKI, server_ctx: ssl.SSLContext
) -> None:
    payload = bytes(range(256)) * (BULK // 256)
    sent = [0]

    async def client(port: int) -> None:
        reader, writer = await open_client(port, client_context(pki.ca.cert_path))
        writer.write(b"CONNECT {}\r\n")
        view = memoryview(payload)
        for off in range(0, len(payload), 64 * 1024):
            writer.write(view[off : off + 64 * 1024])
            await writer.drain()
            sent[0] = off + 64 * 1024
        assert await reader.read() == b""  # the relay closes after the worker does
        writer.close()
        await writer.wait_closed()

    async def main() -> None:
        lsock = listener(SMALL_BUF)
        cli = in_thread(client, lsock.getsockname()[1])
        conn = await accept_one(lsock, server_ctx)
        _, pre = await read_connect(conn)
        worker, relay_end = small_pair()
        await conn.start_relay(relay_end)
        stalled_at = await until_stalled(lambda: sent[0], len(payload))
        # The worker reads nothing yet: the client must be held back, with bounded buffers.
        assert stalled_at < len(payload)
        assert conn.pending_to_worker <= BOUND
        rest = await asyncio.to_thread(recv_exactly, worker, len(payload) - len(pre))
        assert hashlib.sha256(pre + rest).digest() == hashlib.sha256(payload).digest()
        worker.close()
        await cli
        await asyncio.wait_for(conn.closed, 10)
        lsock.close()

    run(kind, main())


@pytest.mark.parametrize("kind", LOOPS)
def test_bulk_worker_to_client_with_back_pressure_and_half_close(
    kind: str, pki: PKI, server_ctx: ssl.SSLContext
) -> None:
    payload = hashlib.sha256(b"seed").digest() * (BULK // 32)
    sent = [0]
    go = threading.Event()

    async def client(port: int) -> bytes:
        reader, writer = await open_client(port, client_context(pki.ca.cert_path))
        writer.write(b"CONNECT {}\r\n")
        await writer.drain()
        await asyncio.to_thread(go.wait, 30)
        data = await reader.read()  # until the worker's EOF arrives as close_notify
        writer.close()
        await writer.wait_closed()
        return data

    def worker_send(sock: socket.socket) -> None:
        view = memoryview(payload)
        for off in range(0, len(payload), 64 * 1024):
            sock.sendall(view[off : off + 64 * 1024])
            sent[0] = off + 64 * 1024
        sock.shutdown(socket.SHUT_WR)  # half-close: "no more from the worker"

    async def main() -> None:
        lsock = listener(SMALL_BUF)
        cli = in_thread(client, lsock.getsockname()[1])
        conn = await accept_one(lsock, server_ctx)
        await read_connect(conn)
        worker, relay_end = small_pair()
        await conn.start_relay(relay_end)
        sender = asyncio.ensure_future(asyncio.to_thread(worker_send, worker))
        stalled_at = await until_stalled(lambda: sent[0], len(payload))
        assert stalled_at < len(payload)
        assert conn.pending_to_client <= BOUND
        go.set()
        data = await cli
        await sender
        assert len(data) == len(payload) and data == payload
        await asyncio.wait_for(conn.closed, 10)
        worker.close()
        lsock.close()

    run(kind, main())


@pytest.mark.parametrize("kind", LOOPS)
def test_client_close_notify_reaches_worker_as_eof(
    kind: str, pki: PKI, server_ctx: ssl.SSLContext
) -> None:
    async def client(port: int) -> None:
        _, writer = await open_client(port, client_context(pki.ca.cert_path))
        writer.write(b"CONNECT {}\r\nPUB a 3\r\nbye\r\n")
        writer.close()  # close_notify after the data
        await writer.wait_closed()

    async def main() -> None:
        lsock = listener(SMALL_BUF)
        cli = in_thread(client, lsock.getsockname()[1])
        conn = await accept_one(lsock, server_ctx)
        _, pre = await read_connect(conn)
        worker, relay_end = small_pair()
        await conn.start_relay(relay_end)
        assert pre + await asyncio.to_thread(recv_all, worker) == b"PUB a 3\r\nbye\r\n"
        await cli
        await asyncio.wait_for(conn.closed, 10)
        worker.close()
        lsock.close()

    run(kind, main())


def test_relay_after_client_vanished(pki: PKI, server_ctx: ssl.SSLContext) -> None:
    async def client(port: int) -> None:
        _, writer = await open_client(port, client_context(pki.ca.cert_path))
        writer.write(b"CONNECT {}\r\n")
        writer.transport.abort()

    async def main() -> None:
        lsock = listener(SMALL_BUF)
        cli = in_thread(client, lsock.getsockname()[1])
        conn = await accept_one(lsock, server_ctx)
        await cli
        await read_connect(conn)
        assert await conn.recv() == b""
        worker, relay_end = small_pair()
        await conn.start_relay(relay_end)
        assert await asyncio.to_thread(recv_all, worker) == b""
        await asyncio.wait_for(conn.closed, 10)
        worker.close()
        lsock.close()

    run("uvloop", main())


@pytest.mark.parametrize("kind", LOOPS)
def test_stalled_handshake_times_out_without_blocking_others(
    kind: str, pki: PKI, server_ctx: ssl.SSLContext
) -> None:
    async def good_client(port: int) -> bytes:
        reader, writer = await open_client(port, client_context(pki.ca.cert_path))
        writer.write(b"PING\r\n")
        data = await reader.readexactly(6)
        writer.close()
        await writer.wait_closed()
        return data

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = listener()
        port = lsock.getsockname()[1]
        silent = socket.create_connection(("127.0.0.1", port))  # never sends a ClientHello
        sock, _ = await loop.sock_accept(lsock)
        stalled = asyncio.ensure_future(accept_tls(loop, sock, server_ctx, 2.0))
        cli = in_thread(good_client, port)
        conn = await accept_one(lsock, server_ctx, info=True, timeout=3.0)
        assert await conn.recv() == b"PING\r\n"
        conn.send(b"PONG\r\n")
        assert await cli == b"PONG\r\n"
        assert not stalled.done()  # the good client did not wait for the stalled one
        with pytest.raises(TLSHandshakeTimeout):
            await stalled
        assert silent.recv(16) == b""  # the stalled socket was closed
        conn.close()
        silent.close()
        lsock.close()

    run(kind, main())


def test_client_hello_already_buffered_and_peek(pki: PKI, server_ctx: ssl.SSLContext) -> None:
    async def eager_client(port: int) -> bytes:
        # handshake_first style: ClientHello goes out before the server does anything.
        reader, writer = await open_client(port, client_context(pki.ca.cert_path), info=False)
        writer.write(b"PING\r\n")
        data = await reader.readexactly(6)
        writer.close()
        await writer.wait_closed()
        return data

    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = listener()
        port = lsock.getsockname()[1]
        cli = in_thread(eager_client, port)
        sock, _ = await loop.sock_accept(lsock)
        first = await peek_first_byte(loop, sock, 5.0)
        assert first == b"\x16"  # a TLS handshake record, still in the socket
        await asyncio.sleep(0.2)  # let the whole ClientHello queue up unread
        conn = await accept_tls(loop, sock, server_ctx, 5.0)
        assert await conn.recv() == b"PING\r\n"
        conn.send(b"PONG\r\n")
        assert await cli == b"PONG\r\n"
        conn.close()

        silent = socket.create_connection(("127.0.0.1", port))
        sock2, _ = await loop.sock_accept(lsock)
        assert await peek_first_byte(loop, sock2, 0.2) is None
        silent.close()
        assert await peek_first_byte(loop, sock2, 5.0) == b""
        sock2.close()
        lsock.close()

    run("uvloop", main())


def test_plaintext_client_fails_handshake(server_ctx: ssl.SSLContext) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        lsock = listener()
        plain = socket.create_connection(("127.0.0.1", lsock.getsockname()[1]))
        plain.sendall(b"CONNECT {}\r\nPING\r\n")
        sock, _ = await loop.sock_accept(lsock)
        with pytest.raises(TLSHandshakeFailed) as info:
            await accept_tls(loop, sock, server_ctx, 30.0)
        assert not isinstance(info.value, TLSHandshakeTimeout)
        plain.close()
        lsock.close()

    run("uvloop", main())

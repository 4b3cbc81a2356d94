"""A client that never reads is cut off; nobody else is affected."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from rawproto import read_info
from servers import Server, running

pytestmark = pytest.mark.e2e


def _flood_until_cut(
    server: Server, slow_connect: bytes, pub_connect: bytes, sub: bytes, subject: bytes, size: int, batch: int
) -> None:
    """A subscriber with a tiny receive buffer that never reads, a publisher
    flooding it; returns once the server has cut the subscriber (asserting
    that it does within 20 s), having checked the publisher still works."""
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    read_info(slow)
    slow.sendall(slow_connect + b"SUB " + sub + b" 1\r\nPING\r\n")
    time.sleep(0.3)
    pub = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    read_info(pub)
    pub.sendall(pub_connect + b"PING\r\n")
    payload = b"x" * size
    frame = b"PUB %s %d\r\n%s\r\n" % (subject, len(payload), payload)
    deadline = time.monotonic() + 20
    cut = False
    while time.monotonic() < deadline:
        pub.sendall(frame * batch)
        # The slow client is gone once the server closes its socket.
        if "Slow Consumer" in server.log() or _closed(slow):
            cut = True
            break
    assert cut, "slow consumer was never disconnected"
    # The publisher is unaffected.
    pub.sendall(b"PING\r\n")
    pub.settimeout(10)
    got = b""
    while b"PONG\r\n" not in got:
        chunk = pub.recv(65536)
        assert chunk, "publisher was disconnected"
        got += chunk
    pub.close()
    slow.close()


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_client_that_never_reads_is_disconnected(kind: str, tmp_path: Path) -> None:
    conf = tmp_path / "slow.conf"
    conf.write_text("max_pending: 256KB\nmax_payload: 64KB\n")
    plain = b'CONNECT {"verbose":false}\r\n'
    with running(kind, config=str(conf)) as server:
        _flood_until_cut(server, plain, plain, b"flood", b"flood", 8192, 64)


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_write_deadline_cuts_a_reader_that_never_catches_up(kind: str, tmp_path: Path) -> None:
    """max_pending far away (64 MB): the subscriber is cut because it cannot
    take a write within write_deadline, and the publisher, of another
    account (through a stream import), goes back to full speed. natsd used to
    hold such a publisher to the reader's pace for as long as it lived."""
    conf = tmp_path / "wd.conf"
    conf.write_text(
        'write_deadline: "1s"\nmax_pending: 64MB\n'
        'accounts {\n'
        '  A: { users: [{user: a, password: a}], exports: [{stream: "st.>"}] }\n'
        '  B: { users: [{user: b, password: b}], imports: [{stream: {account: A, subject: "st.>"}}] }\n'
        '}\n'
    )
    with running(kind, config=str(conf), workers=1) as server:
        _flood_until_cut(
            server,
            b'CONNECT {"user":"b","pass":"b","verbose":false}\r\n',
            b'CONNECT {"user":"a","pass":"a","verbose":false}\r\n',
            b"st.>", b"st.x", 60000, 16,
        )  # fmt: skip
        if kind == "natsd":
            assert "WriteDeadline" in server.log()


def _closed(sock: socket.socket) -> bool:
    # Drain what is buffered without blocking; EOF or RST means closed.
    sock.setblocking(False)
    try:
        while True:
            data = sock.recv(1 << 20)
            if not data:
                return True
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True
    finally:
        sock.setblocking(True)

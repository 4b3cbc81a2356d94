"""A client that never reads is cut off; nobody else is affected."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from rawproto import read_info
from servers import running

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_client_that_never_reads_is_disconnected(kind: str, tmp_path: Path) -> None:
    conf = tmp_path / "slow.conf"
    conf.write_text("max_pending: 256KB\nmax_payload: 64KB\n")
    with running(kind, config=str(conf)) as server:
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        read_info(slow)
        slow.sendall(b'CONNECT {"verbose":false}\r\nSUB flood 1\r\nPING\r\n')
        time.sleep(0.3)
        pub = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        read_info(pub)
        pub.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
        payload = b"x" * 8192
        frame = b"PUB flood %d\r\n%s\r\n" % (len(payload), payload)
        deadline = time.monotonic() + 20
        cut = False
        sent = 0
        while time.monotonic() < deadline and sent < 64 * 1024 * 1024:
            pub.sendall(frame * 64)
            sent += len(frame) * 64
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
        slow = socket.create_connection(("127.0.0.1", server.port))
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        read_info(slow)
        slow.sendall(b'CONNECT {"user":"b","pass":"b","verbose":false}\r\nSUB st.> 1\r\nPING\r\n')
        time.sleep(0.3)
        pub = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        read_info(pub)
        pub.sendall(b'CONNECT {"user":"a","pass":"a","verbose":false}\r\nPING\r\n')
        payload = b"x" * 60000
        frame = b"PUB st.x %d\r\n%s\r\n" % (len(payload), payload)
        deadline = time.monotonic() + 30
        cut = False
        while time.monotonic() < deadline:
            pub.sendall(frame * 16)
            if "Slow Consumer" in server.log() or _closed(slow):
                cut = True
                break
        assert cut, "the slow reader was never disconnected"
        if kind == "natsd":
            assert "WriteDeadline" in server.log()
        pub.sendall(b"PING\r\n")
        pub.settimeout(10)
        got = b""
        while b"PONG\r\n" not in got:
            chunk = pub.recv(65536)
            assert chunk, "publisher was disconnected"
            got += chunk
        pub.close()
        slow.close()

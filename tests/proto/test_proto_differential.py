"""The corpus and the -ERR quoting checked against the reference nats-server."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from corpus.protocol_corpus import CASES, CONNECT_PREFIX, MAX_CONTROL_LINE, MAX_PAYLOAD

from natsd.proto.errors import pub_violation
from natsd.proto.parser import OP_CLIENT_ERR, OP_ERROR, OP_PING

pytestmark = pytest.mark.differential

BIN = Path(sys.executable).parent / "nats-server"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gnatsd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    if not BIN.exists() and shutil.which("nats-server") is None:
        pytest.skip("reference nats-server not installed")
    conf = tmp_path_factory.mktemp("gnatsd") / "s.conf"
    conf.write_text(
        f"max_payload: {MAX_PAYLOAD}\nmax_control_line: {MAX_CONTROL_LINE}\n"
        "authorization { users = [ {user: a, password: a},"
        " {user: p, password: p, permissions: {publish: {allow: [ok]}}} ] }\n"
    )
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN), "-a", "127.0.0.1", "-p", str(port), "-c", str(conf)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.kill()
        proc.wait()


def _exchange(port: int, data: bytes, pings: int = 0) -> tuple[bytes, bool]:
    """Send data then PING; return (bytes received, closed by server) once the
    server closed or answered all ``pings`` + 1 PINGs."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        buf = b""
        while not buf.endswith(b"\r\n"):
            buf += s.recv(4096)
        s.sendall(data + b"PING\r\n")
        out = b""
        while out.count(b"PONG\r\n") <= pings:
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
        return out, False


def _with_user(user: bytes) -> bytes:
    return CONNECT_PREFIX.replace(b"{", b'{"user":"%b","pass":"%b",' % (user, user), 1)


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=[c[0] for c in CASES])
def test_corpus_against_nats_server(gnatsd: int, name: str, data: bytes,
                                    expected: list[tuple]) -> None:
    pings = sum(1 for op in expected if op[0] == OP_PING)
    out, closed = _exchange(gnatsd, _with_user(b"a") + data, pings)
    last = expected[-1] if expected else None
    if last is not None and last[0] == OP_ERROR:
        assert closed
        err = last[1]
        assert (b"-ERR" in out) == (err.text is not None)
        if err.text is not None:
            assert out.endswith(err.wire())
    elif last is not None and last[0] == OP_CLIENT_ERR:
        assert closed and b"-ERR" not in out
    else:
        assert not closed and b"-ERR" not in out


@pytest.mark.parametrize("subject", [
    b"no", b"a\"b", b"a\\b", b"\x01\x7f", "é.日本".encode(), b"\xff\xfe.x", b"\xe2\x82",
    "\u00a0\u2028".encode(), b"\x1b[0m",
])
def test_pub_violation_quoting_matches(gnatsd: int, subject: bytes) -> None:
    out, closed = _exchange(gnatsd, _with_user(b"p") + b"PUB " + subject + b" 0\r\n\r\n")
    assert not closed
    assert pub_violation(subject) in out

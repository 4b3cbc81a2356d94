"""A raw-socket NATS client for transcript tests.

``transcript(port, script)`` connects, reads INFO, sends ``script`` and
collects every line the server sends until all the script's PINGs were
answered, the server closed the connection, or a timeout. The result is a
list of lines with INFO bodies replaced by ``INFO`` and a final ``<closed>``
marker when the server hung up, so transcripts from natsd and nats-server
can be compared byte for byte.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any


def read_info(sock: socket.socket) -> dict[str, Any]:
    buf = b""
    while b"\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed before INFO")
        buf += chunk
    line, _ = buf.split(b"\r\n", 1)
    assert line.startswith(b"INFO ")
    info: dict[str, Any] = json.loads(line[5:])
    return info


def transcript(
    port: int,
    script: bytes | Callable[[dict[str, Any]], bytes],
    timeout: float = 3.0,
    settle: float = 0.0,
) -> list[str]:
    """``script`` may be a function of the INFO (to sign its nonce)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        info = read_info(sock)
        if callable(script):
            script = script(info)
        sock.sendall(script)
        want = script.upper().count(b"PING\r\n")
        buf, closed = read_until(sock, time.monotonic() + timeout, lambda b: bool(want) and b.count(b"PONG\r\n") >= want, settle)
        lines = _lines(buf)
        if closed:
            lines.append("<closed>")
        return lines
    finally:
        sock.close()


def read_until(
    sock: socket.socket, deadline: float, done: Callable[[bytes], bool] = lambda b: False, settle: float = 0.0
) -> tuple[bytes, bool]:
    """Read until ``done(buf)`` (then, with ``settle``, for that much longer),
    the deadline, or the server closing; returns (bytes, closed)."""
    buf = b""
    while time.monotonic() < deadline:
        if done(buf):
            if settle <= 0:
                break
            sock.settimeout(settle)
            settle = 0.0
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return buf, True
        if not chunk:
            return buf, True
        buf += chunk
    return buf, False


def _lines(buf: bytes) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(buf):
        j = buf.find(b"\r\n", i)
        if j < 0:
            out.append(buf[i:].decode("latin-1") + "<partial>")
            break
        line = buf[i:j]
        i = j + 2
        if line.startswith(b"INFO "):
            out.append("INFO")
            continue
        out.append(line.decode("latin-1"))
        parts = line.split(b" ")
        if parts[0] in (b"MSG", b"HMSG"):
            size = int(parts[-1])
            out.append(buf[i : i + size].decode("latin-1"))
            i += size + 2
    return out

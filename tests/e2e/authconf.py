"""Shared builders for the authentication, isolation and reload e2e tests.

Config files are written once per module (``tmp_path_factory``) and given,
unchanged, to natsd and to nats-server, so a differential test compares the
two servers on exactly the same input. Secrets here are test-only.
"""

from __future__ import annotations

import asyncio
import base64
import gc
import json
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import bcrypt
import nats
import nkeys
from rawproto import _lines, read_info, read_until, transcript
from servers import Server, running

__all__ = [
    "Raw",
    "bcrypt_hash",
    "both",
    "connect_line",
    "nats_connect",
    "nkey_user",
    "run",
    "sign_nonce",
    "transcript_info",
    "wait_closed",
    "wait_log",
    "write_conf",
]


def bcrypt_hash(secret: str, prefix: str = "2b", cost: int = 4) -> str:
    """A bcrypt hash of ``secret`` with the ``$2a$`` or ``$2b$`` prefix."""
    salt = bcrypt.gensalt(cost, prefix=prefix.encode())
    return bcrypt.hashpw(secret.encode(), salt).decode()


def nkey_user(n: int) -> tuple[str, str]:
    """A deterministic user nkey pair: (seed, public key)."""
    seed = nkeys.encode_seed(bytes([n]) * 32, nkeys.PREFIX_BYTE_USER)
    kp = nkeys.from_seed(seed)
    return seed.decode(), kp.public_key.decode()


def sign_nonce(seed: str, nonce: str) -> str:
    sig = nkeys.from_seed(seed.encode()).sign(nonce.encode())
    return base64.urlsafe_b64encode(sig).rstrip(b"=").decode()


def connect_line(**fields: Any) -> bytes:
    """``CONNECT {...}\\r\\n`` with verbose/pedantic off unless given."""
    doc: dict[str, Any] = {"verbose": False, "pedantic": False}
    if "password" in fields:
        fields["pass"] = fields.pop("password")
    doc.update(fields)
    return b"CONNECT " + json.dumps(doc, separators=(",", ":")).encode() + b"\r\n"


def write_conf(directory: Path, name: str, text: str) -> str:
    path = directory / name
    path.write_text(text)
    return str(path)


@contextmanager
def both(config: str, workers: int | None = None) -> Iterator[tuple[Server, Server]]:
    """natsd and nats-server started on the same config file."""
    with running("natsd", config=config, workers=workers) as a, running("nats-server", config=config) as b:
        yield a, b


def transcript_info(
    port: int, make_script: Callable[[dict[str, Any]], bytes], timeout: float = 3.0
) -> list[str]:
    """Like ``rawproto.transcript`` but the script is built from the INFO (nonce)."""
    return transcript(port, make_script, timeout)


def run(coro: Any) -> Any:
    """Run ``coro``; then collect garbage at a safe point.

    nats-py leaves the socket of a refused connection to the garbage collector;
    its ResourceWarning, raised from a finaliser in the middle of an unrelated
    ``ast.parse`` (pytest's lazy imports), trips CPython 3.11's non-reentrant
    AST recursion check ("AST constructor recursion depth mismatch").
    """
    try:
        return asyncio.run(asyncio.wait_for(coro, 30))
    finally:
        gc.collect()


async def _quiet(_e: Exception) -> None:
    return None


async def nats_connect(url: str, **kw: Any) -> nats.NATS:
    """nats-py, failing fast: no reconnects, so an auth error is raised at once."""
    kw.setdefault("allow_reconnect", False)
    kw.setdefault("max_reconnect_attempts", 0)
    kw.setdefault("connect_timeout", 3)
    kw.setdefault("error_cb", _quiet)
    return await nats.connect(url, **kw)


class Raw:
    """One raw client connection for multi-connection scripts.

    ``sync()`` sends PING and returns every line the server sent up to the
    matching PONG (server PINGs are answered and left out), so a transcript is
    deterministic: PUBs acknowledged by a publisher's PONG were already routed.
    """

    def __init__(self, port: int, connect: bytes, timeout: float = 3.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.info = read_info(self.sock)
        self.buf = b""
        self.closed = False
        self.sock.sendall(connect)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def sync(self, data: bytes = b"") -> list[str]:
        try:
            self.sock.sendall(data + b"PING\r\n")
        except OSError:
            self.closed = True
        out: list[str] = []
        while not self.closed:
            consumed = 0
            for lines, offset in self._frames():
                if lines == ["PONG"]:
                    self.buf = self.buf[offset:]
                    return out
                if lines == ["PING"]:
                    self.sock.sendall(b"PONG\r\n")
                else:
                    out.extend(lines)
                consumed = offset
            if consumed:
                self.buf = self.buf[consumed:]
            try:
                chunk = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                chunk = b""
            if not chunk:
                self.closed = True
            self.buf += chunk
        out += [line for line in _lines(self.buf) if line != "PING"]
        self.buf = b""
        return [*out, "<closed>"]

    def _frames(self) -> list[tuple[list[str], int]]:
        """Complete frames in the buffer (a MSG with its payload), each with its end offset."""
        frames: list[tuple[list[str], int]] = []
        buf = self.buf
        i = 0
        while (j := buf.find(b"\r\n", i)) >= 0:
            parts = buf[i:j].split(b" ")
            end = j + 2
            if parts[0] in (b"MSG", b"HMSG"):
                end += int(parts[-1]) + 2
                if end > len(buf):
                    break
            frames.append((_lines(buf[i:end]), end))
            i = end
        return frames

    def close(self) -> None:
        self.sock.close()


def wait_closed(raw: Raw, timeout: float = 5.0) -> list[str]:
    """Read until the server hangs up (or ``timeout``); server PINGs are left out."""
    raw.sock.settimeout(timeout)
    more, closed = read_until(raw.sock, time.monotonic() + timeout)
    buf = raw.buf + more
    raw.buf = b""
    lines = [line for line in _lines(buf) if line != "PING"]
    return [*lines, "<closed>"] if closed else lines


def wait_log(server: Server, text: str, count: int = 1, timeout: float = 10.0) -> None:
    """Wait until ``text`` appears ``count`` times in the server's log."""
    deadline = time.monotonic() + timeout
    while server.log().count(text) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"{server.kind}: {text!r} not logged {count}x:\n{server.log()[-3000:]}")
        time.sleep(0.05)

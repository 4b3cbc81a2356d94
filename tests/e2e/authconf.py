"""Shared builders for the authentication, isolation and reload e2e tests.

Config files are written once per module (``tmp_path_factory``) and given,
unchanged, to natsd and to nats-server, so a differential test compares the
two servers on exactly the same input. Secrets here are test-only.
"""

from __future__ import annotations

import asyncio
import base64
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
from rawproto import _lines, read_info
from servers import Server, running

__all__ = [
    "bcrypt_hash",
    "both",
    "connect_line",
    "nats_connect",
    "nkey_user",
    "run",
    "sign_nonce",
    "transcript_info",
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
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        info = read_info(sock)
        script = make_script(info)
        sock.sendall(script)
        want = script.upper().count(b"PING\r\n")
        deadline = time.monotonic() + timeout
        buf = b""
        closed = False
        while time.monotonic() < deadline and not (want and buf.count(b"PONG\r\n") >= want):
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                closed = True
                break
            if not chunk:
                closed = True
                break
            buf += chunk
        lines = _lines(buf)
        if closed:
            lines.append("<closed>")
        return lines
    finally:
        sock.close()


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def _quiet(_e: Exception) -> None:
    return None


async def nats_connect(url: str, **kw: Any) -> nats.NATS:
    """nats-py, failing fast: no reconnects, so an auth error is raised at once."""
    kw.setdefault("allow_reconnect", False)
    kw.setdefault("max_reconnect_attempts", 0)
    kw.setdefault("connect_timeout", 3)
    kw.setdefault("error_cb", _quiet)
    return await nats.connect(url, **kw)

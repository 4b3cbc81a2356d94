"""A raw-socket NATS client for the JWT tests: CONNECT with a user JWT and
the nonce signed by its seed, then line-by-line reads. Shared by the fixture
tests and the account-administration tests."""

from __future__ import annotations

import base64
import json
import socket
from typing import Any

import nkeys
from servers import SHARED

FIX = SHARED / "fixtures" / "jwt"


def creds(rel: str) -> tuple[str, str]:
    from natsd.auth.jwt import parse_creds

    return parse_creds((FIX / rel).read_text())


def b64url(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Raw:
    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.buf = b""
        line = self.line()
        assert line.startswith("INFO ")
        self.info = json.loads(line[5:])

    def line(self) -> str:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def connect(self, jwt: str | None, seed: str | None, *, std_b64: bool = False) -> str:
        opts: dict[str, Any] = {"verbose": False, "pedantic": False, "protocol": 1, "headers": True}
        if jwt:
            opts["jwt"] = jwt
        if seed:
            sig = nkeys.from_seed(seed.encode()).sign(self.info["nonce"].encode())
            opts["sig"] = base64.b64encode(sig).decode() if std_b64 else b64url(sig)
        self.send(b"CONNECT " + json.dumps(opts).encode() + b"\r\nPING\r\n")
        first = self.line()
        return "ok" if first == "PONG" else first

    def closed(self) -> bool:
        self.sock.settimeout(3)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
        except (TimeoutError, ConnectionResetError):
            return False

    def close(self) -> None:
        self.sock.close()

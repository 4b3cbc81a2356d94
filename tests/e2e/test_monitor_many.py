"""Monitoring with more connections than fit one control datagram."""

from __future__ import annotations

import socket

import pytest
from monitorhttp import get_json
from rawproto import read_info
from servers import free_port, running

pytestmark = pytest.mark.e2e

N = 450  # several parts of natsd.ipc.messages.STATS_PART_BYTES


def get(port: int, path: str) -> dict:  # type: ignore[type-arg]
    return get_json(port, path, retry_503=True)  # type: ignore[no-any-return]


def test_connz_lists_every_connection_across_stats_parts() -> None:
    mport = free_port()
    with running("natsd", ["-m", str(mport)], workers=1) as server:
        socks = []
        try:
            for i in range(N):
                s = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                read_info(s)
                s.sendall(b'CONNECT {"verbose":false,"name":"c%d"}\r\n' % i + b"".join(b"SUB s.%d.%d %d\r\n" % (i, j, j) for j in range(300)) + b"PING\r\n")
                socks.append(s)
            for s in socks:
                buf = b""
                while b"PONG" not in buf:
                    buf += s.recv(4096)
            connz = get(mport, "/connz?limit=2000&subs=1")
            assert connz["num_connections"] == N
            assert len(connz["connections"]) == N
            assert {c["name"] for c in connz["connections"]} == {f"c{i}" for i in range(N)}
            # Subscriptions are counted in full, listed up to a cap per connection.
            assert all(c["subscriptions"] == 300 for c in connz["connections"])
            assert get(mport, "/varz")["subscriptions"] == N * 300
        finally:
            for s in socks:
                s.close()

"""`/connz?state=closed`: recently closed connections, with stop and reason."""

from __future__ import annotations

import socket
import time

import pytest
from rawproto import read_info
from servers import free_port, running
from test_monitor_many import get

pytestmark = [pytest.mark.e2e, pytest.mark.differential]


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_closed_connections_are_listed(kind: str) -> None:
    mport = free_port()
    with running(kind, ["-m", str(mport)]) as server:
        get(mport, "/healthz")
        for name, script in (("bye", b"PING\r\n"), ("bad", b"ZZZ\r\n")):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
                read_info(s)
                s.sendall(b'CONNECT {"verbose":false,"name":"%s"}\r\nSUB x 1\r\n' % name.encode() + script)
                s.recv(4096)  # PONG, or the -ERR: read it so the close is clean
                time.sleep(0.2)
        deadline = time.monotonic() + 5
        while True:
            closed = get(mport, "/connz?state=closed&subs=1")
            # (the test harness's own port probes are closed connections too)
            by_name = {c["name"]: c for c in closed["connections"] if "name" in c}
            if len(by_name) >= 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert by_name["bye"]["reason"] == "Client Closed"
        assert by_name["bad"]["reason"] == "Parse Error" or by_name["bad"]["reason"] == "Protocol Violation"
        for c in by_name.values():
            assert {"stop", "reason", "start", "uptime", "cid"} <= set(c)
        assert get(mport, "/connz")["num_connections"] == 0
        assert len(get(mport, "/connz?state=any")["connections"]) >= 2

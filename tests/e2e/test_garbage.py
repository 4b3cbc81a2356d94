"""Tenants sending garbage never crash a worker or the supervisor.

Random protocol-shaped byte streams (valid ops, broken ops, oversized
numbers, junk bytes, split at random points) go to natsd over many
connections; afterwards every worker is the same process as before and the
server still answers.
"""

from __future__ import annotations

import random
import socket

import psutil
import pytest
from rawproto import read_info, transcript
from servers import running

pytestmark = pytest.mark.e2e

PIECES = [
    b"CONNECT {}\r\n", b'CONNECT {"verbose":true,"headers":true,"no_responders":true}\r\n', b"CONNECT {bad\r\n",
    b"SUB a 1\r\n", b"SUB a.* q 2\r\n", b"SUB > 3\r\n", b"SUB foo..bar 4\r\n", b"UNSUB 1 2\r\n", b"UNSUB x -5\r\n",
    b"PUB a 2\r\nhi\r\n", b"PUB a r 0\r\n\r\n", b"PUB a 99999999999999\r\n", b"PUB a -1\r\n",
    b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", b"HPUB a 20 10\r\n", b"PING\r\n", b"PONG\r\n", b"-ERR 'x'\r\n",
    b"INFO {}\r\n", b"+OK\r\n", b"MSG a 1 1\r\nx\r\n", b"\r\n", b"\n", b" ", b"\t", b"\x00\xff\x16\x03\x01",
    b"PUB " + b"a" * 5000 + b" 1\r\n", b"SUB _INBOX.> 9\r\nPUB a _INBOX.x 1\r\n1\r\n", b"PUB $SYS.REQ.SERVER.PING _INBOX.x 0\r\n\r\n",
    # Deep subjects and JSON, and the system API with junk options.
    b"SUB " + b".".join([b"*"] * 1500) + b" 7\r\n", b"PUB " + b".".join([b"a"] * 1500) + b" 0\r\n\r\n",
    b'CONNECT {"x":' + b"[" * 1200 + b"]" * 1200 + b"}\r\n",
    b"PUB $SYS.REQ.USER.INFO _INBOX.u 3\r\n{x}\r\n", b"PUB $SYS.REQ.ACCOUNT.PING.CONNZ _INBOX.c 17\r\n{\"limit\": \"abc\"}\r\n",
    b"PUB $SYS.REQ.ACCOUNT.PING.STATZ _INBOX.s 20\r\n{\"accounts\": [1, {}]}\r\n",
    b"PUB $SYS.REQ.SERVER.PING.CONNZ _INBOX.c 13\r\n{\"state\": 1e9}\r\n",
]


def worker_pids(pid: int) -> list[int]:
    return sorted(p.pid for p in psutil.Process(pid).children() if "natsd.worker" in " ".join(p.cmdline()))


def test_garbage_never_crashes_anything() -> None:
    rng = random.Random(20261204)
    with running("natsd", workers=2) as server:
        assert transcript(server.port, b"PING\r\n") == ["PONG"]
        before = worker_pids(server.proc.pid)
        for _ in range(150):
            data = b"".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30)))
            if rng.random() < 0.3:
                data = bytes(b ^ rng.randrange(256) if rng.random() < 0.02 else b for b in data)
            try:
                with socket.create_connection(("127.0.0.1", server.port), timeout=2) as s:
                    read_info(s)
                    cut = rng.randint(0, len(data))
                    s.sendall(data[:cut])
                    s.sendall(data[cut:])
                    s.settimeout(0.05)
                    try:
                        s.recv(65536)
                    except (TimeoutError, ConnectionResetError):
                        pass
            except (ConnectionError, OSError):
                pass
        assert worker_pids(server.proc.pid) == before
        assert server.proc.poll() is None
        assert transcript(server.port, b'CONNECT {"verbose":false}\r\nPING\r\n') == ["PONG"]
        log = server.log()
        assert "Traceback" not in log and "Exception" not in log, log[-3000:]


def test_deeply_nested_json_is_refused_cleanly() -> None:
    """JSON nested past Python's recursion limit, in a first CONNECT (the
    supervisor parses it), a second CONNECT (the worker does) and a system
    API request: each is refused like malformed input; nothing is logged as
    an internal error and every process keeps serving. (Deep JWTs:
    tests/auth/test_jwt.py.)"""
    deep = b"[" * 1500 + b"]" * 1500
    with running("natsd", workers=1) as server:
        before = worker_pids(server.proc.pid)
        first = b'CONNECT {"verbose":false,"x":' + deep + b"}\r\nPING\r\n"
        assert transcript(server.port, first) == ["<closed>"]
        second = b'CONNECT {"verbose":false}\r\nPING\r\n' + first
        assert transcript(server.port, second) == ["PONG", "<closed>"]
        api = b'CONNECT {"verbose":false}\r\nSUB _INBOX.d 1\r\nPUB $SYS.REQ.ACCOUNT.PING.CONNZ _INBOX.d 3000\r\n' + deep + b"\r\nPING\r\n"
        lines = transcript(server.port, api, settle=0.5)
        assert "PONG" in lines and any('"code":400' in x for x in lines), lines
        # Options far beyond any real request (here 512 KiB) are cut in the worker: a 400.
        big = b'{"acc": "' + b"x" * (512 * 1024) + b'"}'
        api = b'CONNECT {"verbose":false}\r\nSUB _INBOX.d 1\r\nPUB $SYS.REQ.ACCOUNT.PING.CONNZ _INBOX.d %d\r\n' % len(big)
        lines = transcript(server.port, api + big + b"\r\nPING\r\n", settle=0.5)
        assert "PONG" in lines and any('"code":400' in x for x in lines), lines
        assert worker_pids(server.proc.pid) == before
        assert transcript(server.port, b'CONNECT {"verbose":false}\r\nPING\r\n') == ["PONG"]
        log = server.log()
        assert "Traceback" not in log and "internal error" not in log, log[-3000:]


def test_subjects_of_two_thousand_tokens_like_nats_server() -> None:
    """A 4 KiB control line holds a ~2,000-token subject; both servers match
    it against literal and wildcard subscriptions and keep serving."""
    n = 1900
    literal = b".".join([b"a"] * n)
    stars = b".".join([b"*"] * (n - 1) + [b">"])
    script = (
        b'CONNECT {"verbose":false}\r\nSUB ' + literal + b" 1\r\nSUB " + stars + b" 2\r\nSUB > 3\r\n"
        b"PUB " + literal + b" 1\r\nx\r\nPING\r\n"
    )
    out = {}
    for kind in ("natsd", "nats-server"):
        with running(kind) as server:
            out[kind] = sorted(transcript(server.port, script))
            assert transcript(server.port, b'CONNECT {"verbose":false}\r\nPING\r\n') == ["PONG"]
            if kind == "natsd":
                assert "Traceback" not in server.log()
    assert out["natsd"] == out["nats-server"]
    assert len([x for x in out["natsd"] if x.startswith("MSG ")]) == 3

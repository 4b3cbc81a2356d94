"""natsd/log.py: syslog framing and destinations (the nats-server log format
itself is checked end to end in tests/e2e)."""

from __future__ import annotations

import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from natsd import log as natslog
from natsd.log import TRACE, SyslogHandler, syslog_address

REMOTE = re.compile(rb"^<(\d+)>(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:Z|[+-]\d\d:\d\d)) (\S+) natsd\[(\d+)\]: (.*)\n$", re.S)


def record(level: int, msg: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("t", level, __file__, 1, msg, args, None)


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    yield s
    s.close()


def test_address_forms() -> None:
    assert syslog_address("udp://127.0.0.1:5514") == ("udp", ("127.0.0.1", 5514))
    assert syslog_address("tcp://logs.example") == ("tcp", ("logs.example", 514))
    assert syslog_address("unix:///run/syslog.sock") == ("unix", "/run/syslog.sock")
    for bad in ("http://h", "udp://", "unix://", "udp://h:notaport", "h:514"):
        with pytest.raises(ValueError):
            syslog_address(bad)


def test_remote_udp_framing_and_severities(udp: socket.socket) -> None:
    """Go's syslog.Dial framing, facility kern: notice for INF and TRC,
    warning, err, crit for FTL, debug."""
    h = SyslogHandler(f"udp://127.0.0.1:{udp.getsockname()[1]}")
    try:
        cases = [(logging.INFO, 5), (TRACE, 5), (logging.WARNING, 4), (logging.ERROR, 3),
                 (logging.CRITICAL, 2), (logging.DEBUG, 7)]  # fmt: skip
        for level, severity in cases:
            h.handle(record(level, "hello %s", "there"))
            m = REMOTE.match(udp.recv(65536))
            assert m is not None
            assert int(m.group(1)) == severity  # facility 0
            assert m.group(3) == socket.gethostname().encode()
            assert m.group(5) == b"hello there"
    finally:
        h.close()


def test_remote_tcp_newline_framed_and_reconnects() -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        srv.settimeout(5)
        h = SyslogHandler(f"tcp://127.0.0.1:{srv.getsockname()[1]}")
        try:
            conn, _ = srv.accept()
            h.handle(record(logging.WARNING, "one"))
            conn.settimeout(5)
            assert REMOTE.match(conn.recv(65536)) is not None
            conn.close()  # the collector restarts
            srv.settimeout(0.5)
            for _ in range(20):  # the first send after a reset may still "succeed"
                h.handle(record(logging.INFO, "two"))
                try:
                    conn, _ = srv.accept()
                    break
                except TimeoutError:
                    continue
            conn.settimeout(5)
            data = b""
            while not data.endswith(b"two\n"):
                data += conn.recv(65536)
            conn.close()
        finally:
            h.close()


def test_unix_datagram_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "log.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(5)
        h = SyslogHandler(f"unix://{path}")
        try:
            h.handle(record(logging.ERROR, "multi\nline\n"))
            m = REMOTE.match(s.recv(65536))
            assert m is not None and int(m.group(1)) == 3 and m.group(5) == b"multi\nline"
        finally:
            h.close()


def test_unreachable_collector_loses_records_and_says_so_once(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]
        h = SyslogHandler(f"tcp://127.0.0.1:{port}")
        conn, _ = srv.accept()
        conn.close()
    try:  # the listener is gone: reconnecting fails
        for i in range(5):
            h.handle(record(logging.INFO, "lost %d", i))
    finally:
        h.close()
    err = capsys.readouterr().err
    assert err.count("records lost") == 1


def test_setup_precedence_file_over_syslog(tmp_path: Path, udp: socket.socket) -> None:
    root = logging.getLogger()
    saved = list(root.handlers), root.level
    try:
        natslog.setup(log_file=str(tmp_path / "f.log"), remote_syslog=f"udp://127.0.0.1:{udp.getsockname()[1]}")
        assert isinstance(root.handlers[0], logging.FileHandler)
        natslog.setup(syslog=True, remote_syslog=f"udp://127.0.0.1:{udp.getsockname()[1]}")
        assert isinstance(root.handlers[0], SyslogHandler) and root.handlers[0].scheme == "udp"
    finally:
        for h in list(root.handlers):
            root.removeHandler(h)
            h.close()
        for h in saved[0]:
            root.addHandler(h)
        root.setLevel(saved[1])


def test_missing_local_syslog_raises(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(natslog, "_LOCAL_SOCKETS", (str(tmp_path / "none"), str(tmp_path)))
    with pytest.raises(OSError, match="no local syslog socket"):
        SyslogHandler(None)


def test_throttle_says_yes_once_per_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [100.0]
    monkeypatch.setattr(natslog.time, "monotonic", lambda: clock[0])
    t = natslog.Throttle(1.0)
    assert t.ready() and not t.ready()
    clock[0] += 0.5
    assert not t.ready()
    clock[0] += 0.5
    assert t.ready() and not t.ready()

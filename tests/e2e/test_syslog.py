"""Log destinations: syslog (``-r``/``remote_syslog``, ``-s``) and a log file
that cannot be opened, natsd beside nats-server."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import free_port, nats_server_bin

from natsd import log as natslog

pytestmark = pytest.mark.e2e

LINE = re.compile(rb"^<(\d+)>\S+ \S+ ([\w.-]+)\[(\d+)\]: (.*)\n$", re.S)


def commands() -> dict[str, list[str]]:
    return {"natsd": [sys.executable, "-m", "natsd", "--workers", "2"], "nats-server": [nats_server_bin() or "nats-server"]}


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_remote_udp_syslog_gets_the_server_log(kind: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(0.5)
        url = f"udp://127.0.0.1:{collector.getsockname()[1]}"
        proc = subprocess.Popen(
            [*commands()[kind], "-a", "127.0.0.1", "-p", str(free_port()), "-r", url],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        lines: list[tuple[int, bytes, bytes]] = []
        try:
            deadline = time.monotonic() + 20
            while not any(m == b"Server is ready" for _, _, m in lines) and time.monotonic() < deadline:
                try:
                    m = LINE.match(collector.recv(65536))
                except TimeoutError:
                    continue
                assert m is not None
                lines.append((int(m.group(1)), m.group(2), m.group(4)))
        finally:
            proc.terminate()
            out = proc.communicate(timeout=15)[0]
        assert out == b""  # everything went to syslog
        messages = [m for _, _, m in lines]
        assert b"Server is ready" in messages
        assert any(m.startswith(b"Listening for client connections on 127.0.0.1:") for m in messages)
        assert {pri for pri, _, _ in lines} == {5}  # notices, facility kern
        assert {tag for _, tag, _ in lines} == {kind.encode()}


@pytest.mark.skipif(
    any(natslog._is_socket(p) for p in natslog._LOCAL_SOCKETS), reason="this machine has a local syslog"
)
@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_syslog_without_a_local_daemon_is_fatal(kind: str) -> None:
    run = subprocess.run(
        [*commands()[kind], "-a", "127.0.0.1", "-p", str(free_port()), "-s"],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 1
    assert b"error connecting to syslog" in run.stdout + run.stderr


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_unopenable_log_file_is_fatal(kind: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [*commands()[kind], "-a", "127.0.0.1", "-p", str(free_port()), "-l", str(tmp_path / "no" / "such.log")],
        capture_output=True, timeout=30,
    )  # fmt: skip
    assert run.returncode == 1
    assert b"error opening file: " in run.stdout + run.stderr

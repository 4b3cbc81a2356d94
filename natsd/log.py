"""Logging in nats-server's format.

nats-server writes ``[pid] 2006/01/02 15:04:05.000000 [INF] message`` (the
timestamp is dropped with ``logtime: false``). Levels map as ``[FTL]``,
``[ERR]``, ``[WRN]``, ``[INF]``, ``[DBG]`` (``-D``) and ``[TRC]`` (``-V``).
Every process (supervisor, workers) configures the root logger the same way
so one log stream interleaves correctly; the pid tells them apart.

``SIGUSR1`` reopens the log file (logrotate): :func:`reopen` swaps the file
handler without losing records.

``-s``/``-r`` send the same records to syslog instead (:class:`SyslogHandler`).
"""

from __future__ import annotations

import logging
import os
import socket
import stat
import sys
import time
from typing import Protocol

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

_LEVEL_TAGS = {
    TRACE: "TRC",
    logging.DEBUG: "DBG",
    logging.INFO: "INF",
    logging.WARNING: "WRN",
    logging.ERROR: "ERR",
    logging.CRITICAL: "FTL",
}


class NatsFormatter(logging.Formatter):
    def __init__(self, logtime: bool = True) -> None:
        super().__init__()
        self.logtime = logtime

    def format(self, record: logging.LogRecord) -> str:
        tag = _LEVEL_TAGS.get(record.levelno, "INF")
        msg = record.getMessage()
        if record.exc_info:
            msg = msg + "\n" + self.formatException(record.exc_info)
        if self.logtime:
            ts = time.strftime("%Y/%m/%d %H:%M:%S", time.localtime(record.created))
            frac = int((record.created % 1) * 1_000_000)
            return f"[{record.process}] {ts}.{frac:06d} [{tag}] {msg}"
        return f"[{record.process}] [{tag}] {msg}"


_state: dict[str, object] = {}


class LogSettings(Protocol):
    """The logging fields ``Options`` (supervisor) and ``WorkerConfig`` share."""

    @property
    def debug(self) -> bool: ...
    @property
    def trace(self) -> bool: ...
    @property
    def logtime(self) -> bool: ...
    @property
    def log_file(self) -> str | None: ...
    @property
    def syslog(self) -> bool: ...
    @property
    def remote_syslog(self) -> str | None: ...


def configure(o: LogSettings) -> None:
    """:func:`setup` from the options of either process."""
    setup(
        debug=o.debug,
        trace=o.trace,
        logtime=o.logtime,
        log_file=o.log_file,
        syslog=o.syslog,
        remote_syslog=o.remote_syslog,
    )


def setup(
    *,
    debug: bool = False,
    trace: bool = False,
    logtime: bool = True,
    log_file: str | None = None,
    syslog: bool = False,
    remote_syslog: str | None = None,
) -> None:
    """Point the root logger at a log file, a remote or local syslog, or
    stderr (nats-server's order of precedence). Raises ``OSError`` when the
    chosen destination cannot be opened."""
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
        handler.setFormatter(NatsFormatter(logtime))
    elif remote_syslog or syslog:
        handler = SyslogHandler(remote_syslog or None)
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(NatsFormatter(logtime))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    root.addHandler(handler)
    level = TRACE if trace else logging.DEBUG if debug else logging.INFO
    root.setLevel(level)
    _state.update(debug=debug, trace=trace, logtime=logtime, log_file=log_file)


# -- syslog ----------------------------------------------------------------------------
#
# As nats-server: ``-s``/``syslog: true`` logs to the local syslog daemon
# (facility daemon), ``-r``/``remote_syslog: "udp://host:514"`` to a remote
# one (``udp``, ``tcp`` or ``unix`` URLs; facility kern, which is what Go's
# ``syslog.Dial(..., LOG_DEBUG, ...)`` leaves it at). A log file wins over
# both, remote over local. Lines carry no ``[INF]`` tag: the syslog severity
# says it (notice for INF and TRC, warning, err, crit for FTL, debug). Each
# process (supervisor, workers) has its own socket; the pid in the tag tells
# them apart.

_SEVERITY = {TRACE: 5, logging.DEBUG: 7, logging.INFO: 5, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}
_LOCAL_SOCKETS = ("/dev/log", "/var/run/syslog", "/var/run/log")
SYSLOG_DEFAULT_PORT = 514


def syslog_address(url: str) -> tuple[str, str | tuple[str, int]]:
    """``(scheme, address)`` of a ``remote_syslog`` URL; ``ValueError`` says
    what is wrong with it."""
    from urllib.parse import urlsplit

    try:
        u = urlsplit(url)
        port = u.port
    except ValueError as e:
        raise ValueError(f"invalid remote_syslog URL: {e}") from None
    if u.scheme in ("udp", "tcp"):
        if not u.hostname:
            raise ValueError("remote_syslog URL has no host")
        return u.scheme, (u.hostname, port or SYSLOG_DEFAULT_PORT)
    if u.scheme == "unix":
        if not u.path:
            raise ValueError("remote_syslog URL has no socket path")
        return u.scheme, u.path
    raise ValueError(f'invalid network type "{u.scheme}" (udp, tcp or unix)')


class SyslogHandler(logging.Handler):
    """One record, one syslog message: ``<PRI>TIMESTAMP [HOST ]TAG[PID]: MSG\\n``
    (Go's log/syslog framing). A send that fails reconnects once; if that
    fails too the record is lost and stderr says so, once."""

    def __init__(self, remote: str | None) -> None:
        super().__init__()
        self.tag = "natsd"
        self._warned = False
        self.address: str | tuple[str, int]
        self.hostname: str | None
        if remote is None:
            path = next((p for p in _LOCAL_SOCKETS if _is_socket(p)), None)
            if path is None:
                raise OSError("no local syslog socket (" + ", ".join(_LOCAL_SOCKETS) + ")")
            self.facility, self.hostname = 3, None  # LOG_DAEMON, local framing
            self.scheme, self.address = "unix", path
        else:
            self.scheme, self.address = syslog_address(remote)
            self.facility, self.hostname = 0, socket.gethostname()
        self.sock = self._connect()

    def _connect(self) -> socket.socket:
        if isinstance(self.address, str):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_UNIX, kind)
                try:
                    s.connect(self.address)
                    return s
                except OSError:
                    s.close()
                    if kind == socket.SOCK_STREAM:
                        raise
            raise AssertionError("unreachable")
        if self.scheme == "tcp":
            return socket.create_connection(self.address, timeout=5)
        family, _, _, _, sockaddr = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0]
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.connect(sockaddr)
        return s

    def line(self, record: logging.LogRecord) -> bytes:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + logging.Formatter().formatException(record.exc_info)
        pri = self.facility * 8 + _SEVERITY.get(record.levelno, 5)
        if self.hostname is None:
            ts = time.strftime("%b %e %H:%M:%S", time.localtime(record.created))
            head = f"<{pri}>{ts} {self.tag}[{record.process}]: "
        else:
            ts = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.created))
            ts = ts[:-5] + "Z" if ts.endswith("+0000") else f"{ts[:-2]}:{ts[-2:]}"  # RFC 3339
            head = f"<{pri}>{ts} {self.hostname} {self.tag}[{record.process}]: "
        return (head + msg.rstrip("\n") + "\n").encode("utf-8", "replace")

    def emit(self, record: logging.LogRecord) -> None:
        data = self.line(record)
        for attempt in (0, 1):
            try:
                self.sock.sendall(data)
                return
            except OSError as e:
                if attempt == 0:
                    try:
                        self.sock.close()
                        self.sock = self._connect()
                        continue
                    except OSError:
                        pass
                if not self._warned:
                    self._warned = True
                    sys.stderr.write(f"natsd: syslog {self.scheme} {self.address}: {e}; records lost\n")
                return

    def close(self) -> None:
        self.sock.close()
        super().close()


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def reopen() -> None:
    """Reopen the log file (SIGUSR1)."""
    if _state.get("log_file"):
        setup(
            debug=bool(_state.get("debug")),
            trace=bool(_state.get("trace")),
            logtime=bool(_state.get("logtime", True)),
            log_file=str(_state["log_file"]),
        )


class Throttle:
    """At most one "yes" per ``interval`` seconds: for a warning that a
    client could otherwise repeat into the log as fast as it can send."""

    __slots__ = ("_last", "interval")

    def __init__(self, interval: float = 1.0) -> None:
        self.interval = interval
        self._last = float("-inf")

    def ready(self) -> bool:
        now = time.monotonic()
        if now - self._last < self.interval:
            return False
        self._last = now
        return True


def trace(logger: logging.Logger, msg: str, *args: object) -> None:
    if logger.isEnabledFor(TRACE):
        logger.log(TRACE, msg, *args)


def pid() -> int:
    return os.getpid()

"""Logging in nats-server's format.

nats-server writes ``[pid] 2006/01/02 15:04:05.000000 [INF] message`` (the
timestamp is dropped with ``logtime: false``). Levels map as ``[FTL]``,
``[ERR]``, ``[WRN]``, ``[INF]``, ``[DBG]`` (``-D``) and ``[TRC]`` (``-V``).
Every process (supervisor, workers) configures the root logger the same way
so one log stream interleaves correctly; the pid tells them apart.

``SIGUSR1`` reopens the log file (logrotate): :func:`reopen` swaps the file
handler without losing records.
"""

from __future__ import annotations

import logging
import os
import sys
import time

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


def setup(*, debug: bool = False, trace: bool = False, logtime: bool = True, log_file: str | None = None) -> None:
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    handler: logging.Handler
    if log_file:
        handler = logging.FileHandler(log_file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(NatsFormatter(logtime))
    root.addHandler(handler)
    level = TRACE if trace else logging.DEBUG if debug else logging.INFO
    root.setLevel(level)
    _state.update(debug=debug, trace=trace, logtime=logtime, log_file=log_file)


def reopen() -> None:
    """Reopen the log file (SIGUSR1)."""
    if _state.get("log_file"):
        setup(
            debug=bool(_state.get("debug")),
            trace=bool(_state.get("trace")),
            logtime=bool(_state.get("logtime", True)),
            log_file=str(_state["log_file"]),
        )


def trace(logger: logging.Logger, msg: str, *args: object) -> None:
    if logger.isEnabledFor(TRACE):
        logger.log(TRACE, msg, *args)


def pid() -> int:
    return os.getpid()

"""``natsd --signal SIG[=PID]``: signal a running natsd, as nats-server does.

The target is a pid, a pid file, or (when omitted) the single running natsd
supervisor found by process name. Names map like nats-server's: ``stop`` and
``term`` → SIGTERM, ``quit`` → SIGINT, ``reopen`` → SIGUSR1, ``reload`` →
SIGHUP, ``ldm`` → SIGUSR2, ``kill`` → SIGKILL.
"""

from __future__ import annotations

import os
import signal
import sys

import psutil

SIGNALS = {
    "stop": signal.SIGTERM,
    "term": signal.SIGTERM,
    "quit": signal.SIGINT,
    "reopen": signal.SIGUSR1,
    "reload": signal.SIGHUP,
    "ldm": signal.SIGUSR2,
    "kill": signal.SIGKILL,
}


def _find_supervisors() -> list[int]:
    found = []
    me = os.getpid()
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = p.info.get("cmdline") or []
        if p.info["pid"] == me or not cmd:
            continue
        joined = " ".join(cmd)
        if "natsd.worker" in joined or "--signal" in cmd or "-sl" in cmd:
            continue
        if cmd[0].endswith("natsd") or (len(cmd) > 2 and cmd[1:3] == ["-m", "natsd"]):
            found.append(p.info["pid"])
    return found


def resolve_target(target: str | None) -> int:
    if target:
        if target.isdigit():
            return int(target)
        with open(target) as f:
            return int(f.read().strip())
    pids = _find_supervisors()
    if len(pids) != 1:
        raise LookupError(
            "no natsd process found" if not pids else "multiple natsd processes running: " + ", ".join(map(str, pids))
        )
    return pids[0]


def send_signal(name: str, target: str | None) -> int:
    sig = SIGNALS.get(name.lower())
    if sig is None:
        print(f"natsd: unknown signal {name!r}", file=sys.stderr)
        return 1
    try:
        pid = resolve_target(target)
        os.kill(pid, sig)
    except (OSError, ValueError, LookupError) as e:
        print(f"natsd: {e}", file=sys.stderr)
        return 1
    return 0

"""Worker processes: spawn, watch, restart, stop.

Theory of operation
-------------------
Modelled on gunicorn's arbiter, reduced to what natsd needs. Each worker is a
fresh interpreter (``python -m natsd.worker --control-fd N``), never a fork
of the supervisor, so no event loop, TLS key or secret leaks into it. Its
end of the control channel is passed with ``pass_fds``; the first message is
:class:`~natsd.ipc.messages.Hello` with the worker's configuration.

Liveness is the control channel itself: when a worker dies the kernel closes
its end, our reader sees EOF, and we reap the process and schedule a
restart. Restarts back off exponentially (0.1 s doubling to 5 s) and reset
once a worker has stayed up for 10 s. A worker that dies before reporting
:class:`Ready` five times in a row is a boot failure: the supervisor halts
instead of respawning in a loop (gunicorn's ``WORKER_BOOT_ERROR``).

Accounts are pinned to worker *slots*, not processes, so the restarted
worker serves the same accounts; their clients reconnect to it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable

from natsd.ipc import messages as M
from natsd.ipc.channel import Channel, ChannelClosed, ChannelFull, MessageTooLarge, make_pair

log = logging.getLogger("natsd.arbiter")

MAX_BOOT_FAILURES = 5
BACKOFF_START = 0.1
BACKOFF_MAX = 5.0
STABLE_AFTER = 10.0


class HaltServer(BaseException):
    """Fatal: the supervisor must stop (not caught by application code)."""

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class WorkerSlot:
    def __init__(self, index: int) -> None:
        self.index = index
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: Channel | None = None
        self.ready = False
        self.pid = 0
        self.started = 0.0
        self.restarts = 0
        self.boot_failures = 0
        self.backoff = BACKOFF_START
        self.clients: set[int] = set()


class Arbiter:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        count: int,
        make_config: Callable[[int], M.WorkerConfig],
        on_message: Callable[[WorkerSlot, M.WorkerToSupervisor], None],
        on_halt: Callable[[HaltServer], None],
    ) -> None:
        self.loop = loop
        self.slots = [WorkerSlot(i) for i in range(count)]
        self._make_config = make_config
        self._on_message = on_message
        self._on_halt = on_halt
        self.stopping = False
        # Called after each (re)spawn with the slot index: the supervisor
        # wires the rings between the new worker and its live peers.
        self.on_spawn: Callable[[int], None] = lambda index: None

    def start(self) -> None:
        for slot in self.slots:
            self._spawn(slot)

    def _spawn(self, slot: WorkerSlot) -> None:
        if self.stopping:
            return
        ours, theirs = make_pair()
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "natsd.worker", "--control-fd", str(theirs.fileno())],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
            start_new_session=False,
        )
        theirs.close()
        slot.proc = proc
        slot.pid = proc.pid
        slot.ready = False
        slot.started = time.monotonic()
        slot.clients = set()
        slot.channel = Channel(
            ours,
            self.loop,
            lambda data, fds: self._message(slot, data, fds),
            lambda: self._worker_gone(slot),
            f"worker-{slot.index}",
        )
        slot.channel.send(M.encode(M.Hello(config=self._make_config(slot.index))))
        log.debug("started worker %d (pid %d)", slot.index, proc.pid)
        self.on_spawn(slot.index)

    def _message(self, slot: WorkerSlot, data: bytes, fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        try:
            msg = M.decode_for_supervisor(data)
        except Exception as e:
            log.error("worker %d sent an undecodable message: %s", slot.index, e)
            return
        if isinstance(msg, M.Ready):
            slot.ready = True
            slot.boot_failures = 0
        elif isinstance(msg, M.ClientClosed):
            slot.clients.discard(msg.client_id)
        self._on_message(slot, msg)

    def _worker_gone(self, slot: WorkerSlot) -> None:
        proc = slot.proc
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        lost = len(slot.clients)
        slot.clients = set()
        slot.channel = None
        if self.stopping:
            return
        status = f"exit code {code}" if code is None or code >= 0 else f"signal {-code}"
        if code == -9:
            status += " (perhaps out of memory?)"
        log.error("worker %d (pid %d) died: %s; %d client(s) lost", slot.index, slot.pid, status, lost)
        if not slot.ready:
            slot.boot_failures += 1
            if slot.boot_failures >= MAX_BOOT_FAILURES:
                self._on_halt(HaltServer(f"worker {slot.index} failed to boot {slot.boot_failures} times", 3))
                return
        up = time.monotonic() - slot.started
        if up > STABLE_AFTER:
            slot.backoff = BACKOFF_START
        delay = slot.backoff
        slot.backoff = min(slot.backoff * 2, BACKOFF_MAX)
        slot.restarts += 1
        self.loop.call_later(delay, self._spawn, slot)

    def send(self, index: int, msg: M._Msg, fd: int | list[int] | None = None) -> bool:
        """Send to a worker; returns False (and closes the fds) if it cannot take it."""
        slot = self.slots[index]
        ch = slot.channel
        if ch is None or ch.closed:
            for f in [] if fd is None else [fd] if isinstance(fd, int) else fd:
                os.close(f)
            return False
        try:
            ch.send(M.encode(msg), fd)
        except (ChannelFull, ChannelClosed, MessageTooLarge) as e:
            log.debug("worker %d: control message not sent: %r", index, e)
            return False
        return True

    def broadcast(self, msg: M._Msg) -> None:
        for slot in self.slots:
            self.send(slot.index, msg)

    async def stop(self, timeout: float = 5.0) -> None:
        self.stopping = True
        self.broadcast(M.Shutdown())
        deadline = time.monotonic() + timeout
        for slot in self.slots:
            proc = slot.proc
            if proc is None:
                continue
            while proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if slot.channel is not None:
                slot.channel.close()

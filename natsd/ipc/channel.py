"""The control channel between the supervisor and one worker.

Theory of operation
-------------------
A ``SOCK_SEQPACKET`` Unix socket pair: one datagram is one encoded message
(:mod:`natsd.ipc.messages`), optionally with one file descriptor attached as
``SCM_RIGHTS``. Both ends are non-blocking and driven by the event loop:

* sending tries ``sendmsg`` at once; if the kernel buffer is full the message
  (and its fd, still owned by us) waits in a bounded outbox that drains when
  the socket turns writable. A full outbox is an explicit error to the caller
  (it closes the client), never an unbounded queue;
* receiving drains every datagram available in one readiness callback,
  checks ``MSG_CTRUNC`` (a dropped descriptor means the fd table is full: any
  fds that did arrive are closed and the message is reported as truncated).

The sender closes its copy of a passed fd only after the kernel accepted the
datagram, because SCM_RIGHTS duplicates the descriptor at send time.
"""

from __future__ import annotations

import array
import asyncio
import collections
import errno
import os
import socket
from collections.abc import Callable

MAX_DATAGRAM = 1024 * 1024
OUTBOX_LIMIT = 4096
SOCKET_BUFFER = 4 * 1024 * 1024


class ChannelFull(Exception):
    """The outbox is at its bound: the peer is not keeping up."""


class ChannelClosed(Exception):
    pass


class MessageTooLarge(Exception):
    """A datagram did not fit the socket buffer (EMSGSIZE); nothing was sent."""


def make_pair() -> tuple[socket.socket, socket.socket]:
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    for s in (a, b):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SOCKET_BUFFER)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SOCKET_BUFFER)
        except OSError:  # pragma: no cover - capped by rmem_max; the default still works
            pass
    return a, b


class Channel:
    """One end of a control channel, bound to an event loop."""

    def __init__(
        self,
        sock: socket.socket,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[bytes, list[int]], None],
        on_close: Callable[[], None],
        name: str = "control",
    ) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.name = name
        self._loop = loop
        self._on_message = on_message
        self._on_close = on_close
        self._outbox: collections.deque[tuple[bytes, list[int]]] = collections.deque()
        self._writing = False
        self._closed = False
        self.sent = 0
        self.received = 0
        self.truncated = 0
        self.oversized = 0
        loop.add_reader(sock.fileno(), self._readable)

    # -- sending
    def send(self, data: bytes, fd: int | list[int] | None = None) -> None:
        """Send one datagram; the fds (if any) are closed by the channel once sent."""
        fds = [] if fd is None else [fd] if isinstance(fd, int) else list(fd)
        if self._closed:
            _close_all(fds)
            raise ChannelClosed(self.name)
        if self._outbox:
            self._enqueue(data, fds)
            return
        if not self._try_send(data, fds):
            self._enqueue(data, fds)

    def _enqueue(self, data: bytes, fds: list[int]) -> None:
        if len(self._outbox) >= OUTBOX_LIMIT:
            _close_all(fds)
            raise ChannelFull(self.name)
        self._outbox.append((data, fds))
        if not self._writing:
            self._writing = True
            self._loop.add_writer(self.sock.fileno(), self._writable)

    def _try_send(self, data: bytes, fds: list[int]) -> bool:
        anc = []
        if fds:
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
        try:
            self.sock.sendmsg([data], anc)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as e:
            _close_all(fds)
            if e.errno == errno.EMSGSIZE:
                # One oversized message is the sender's bug, not a dead peer:
                # count and report it, keep the channel.
                self.oversized += 1
                raise MessageTooLarge(f"{self.name}: {len(data)} bytes") from None
            self.close()
            return True
        _close_all(fds)
        self.sent += 1
        return True

    def _writable(self) -> None:
        while self._outbox:
            data, fds = self._outbox[0]
            try:
                if not self._try_send(data, fds):
                    return
            except MessageTooLarge:
                self._outbox.popleft()  # counted in self.oversized
                continue
            if self._closed:
                return
            self._outbox.popleft()
        self._writing = False
        self._loop.remove_writer(self.sock.fileno())

    # -- receiving
    def _readable(self) -> None:
        fds = array.array("i")
        cmsg_space = socket.CMSG_SPACE(fds.itemsize * 4)
        while not self._closed:
            try:
                data, anc, flags, _ = self.sock.recvmsg(MAX_DATAGRAM, cmsg_space, socket.MSG_CMSG_CLOEXEC)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close()
                return
            if not data and not anc:
                self.close()
                return
            got: list[int] = []
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    arr = array.array("i")
                    arr.frombytes(payload[: len(payload) - (len(payload) % arr.itemsize)])
                    got.extend(arr)
            if flags & (socket.MSG_CTRUNC | socket.MSG_TRUNC):
                # A descriptor or part of the message was dropped: nothing
                # here can be trusted, so release what arrived.
                for f in got:
                    os.close(f)
                self.truncated += 1
                continue
            self.received += 1
            self._on_message(data, got)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._loop.remove_reader(self.sock.fileno())
            if self._writing:
                self._loop.remove_writer(self.sock.fileno())
        except (ValueError, RuntimeError):
            pass
        while self._outbox:
            _, fds = self._outbox.popleft()
            _close_all(fds)
        self.sock.close()
        self._on_close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def backlog(self) -> int:
        return len(self._outbox)


def _close_all(fds: list[int]) -> None:
    for f in fds:
        try:
            os.close(f)
        except OSError:
            pass

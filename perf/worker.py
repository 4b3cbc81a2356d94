"""The per-process event loop that drives one slice of a plan.

Life of a worker process:

1. set up its connections (see :mod:`perf.conn`) and report ``ready``;
2. wait for the coordinator's start event, read the shared start time;
3. run one ``selectors`` loop over all its sockets until the stop event;
4. report a result dict (counts, timestamps, latency samples, errors).

Hot paths are kept allocation-free: a publisher's ``send`` takes a slice of a
prebuilt memoryview; every subscriber on the process shares one receive
buffer and only keeps a 3-byte carry (:class:`perf.proto.FrameCounter`).
Progress is published through a shared ``RawArray`` of doubles (one row per
process, no locks: each row has one writer and the coordinator only reads).

A publisher finishes by sending ``PING`` and waiting for ``PONG``; its end
time is the PONG arrival, so the pub-side rate counts what the server has
actually consumed rather than what fitted into kernel buffers.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import ssl
import time
from array import array
from typing import Any

from perf.conn import Endpoint, setup_plain, setup_tls, ssl_context
from perf.proto import CARRY, FrameCounter, Parser, build_chunk, payload, pub_frame, sub_frame
from perf.scenarios import ConnSpec

# Columns of the shared counter row for each process.
C_PUB, C_SUB, C_PUBS_DONE, NCOUNTERS = 0, 1, 2, 3
RECV_SIZE = 256 * 1024
MAX_CHUNKS_PER_EVENT = 16
REQ_TIMEOUT = 5.0
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
READ, WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class Loop:
    """Shared state of one worker's event loop."""

    def __init__(self) -> None:
        self.sel = selectors.DefaultSelector()
        self.buf = bytearray(CARRY + RECV_SIZE)
        self.view = memoryview(self.buf)
        self.errors: list[str] = []
        self.disconnects = 0
        self.pubs_done = 0
        self.start = 0.0

    def error(self, msg: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(msg)


class Conn:
    """Base for all roles: non-blocking send queue and close handling."""

    role = "?"

    def __init__(self, loop: Loop, spec: ConnSpec, sock: socket.socket) -> None:
        self.loop, self.spec, self.sock = loop, spec, sock
        self.out = bytearray()
        self.closed = False
        self.events = READ
        loop.sel.register(sock, READ, self)

    def set_events(self, events: int) -> None:
        if events != self.events and not self.closed:
            self.events = events
            self.loop.sel.modify(self.sock, events, self)

    def queue(self, data: bytes) -> None:
        self.out += data
        self.flush_out()

    def flush_out(self) -> None:
        while self.out:
            try:
                n = self.sock.send(self.out)
            except _WOULD_BLOCK:
                self.set_events(self.events | WRITE)
                return
            except OSError as e:
                self.close(f"send: {e}")
                return
            del self.out[:n]
        self.after_flush()

    def after_flush(self) -> None:
        self.set_events(READ)

    def on_write(self) -> None:
        self.flush_out()

    def close(self, why: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.loop.disconnects += 1
        self.loop.error(f"{self.spec.tag}: {why}")
        with contextlib.suppress(Exception):
            self.loop.sel.unregister(self.sock)
        self.sock.close()

    def recv(self) -> bytes | None:
        """Read what is available; None when nothing (would block) or closed."""
        try:
            data = self.sock.recv(RECV_SIZE)
        except _WOULD_BLOCK:
            return None
        except OSError as e:
            self.close(f"recv: {e}")
            return None
        if not data:
            self.close("server closed the connection")
            return None
        return data


class Sub(Conn):
    """Counts deliveries without parsing; also used for idle connections."""

    role = "sub"

    def __init__(self, loop: Loop, spec: ConnSpec, sock: socket.socket) -> None:
        super().__init__(loop, spec, sock)
        self.counter = FrameCounter()
        self.first = 0.0
        self.last = 0.0
        self.tls = isinstance(sock, ssl.SSLSocket)

    def on_read(self) -> None:
        loop, counter = self.loop, self.counter
        for _ in range(8):
            counter.prime(loop.buf)
            try:
                n = self.sock.recv_into(loop.view[CARRY:])
            except _WOULD_BLOCK:
                return
            except OSError as e:
                self.close(f"recv: {e}")
                return
            if n == 0:
                self.close("server closed the connection"
                           + (f" (-ERR {counter.errors[-1]})" if counter.errors else ""))
                return
            msgs, pings = counter.feed(loop.buf, n)
            if msgs:
                now = time.monotonic()
                if not self.first:
                    self.first = now
                self.last = now
            if pings:
                self.queue(b"PONG\r\n" * pings)
            if n < RECV_SIZE and not (self.tls and self.sock.pending()):  # type: ignore[attr-defined]
                return


class Pub(Conn):
    """Writes prebuilt chunks; count-bounded, duration-bounded or paced."""

    role = "pub"

    def __init__(self, loop: Loop, spec: ConnSpec, sock: socket.socket, size: int,
                 duration: float, rate: float) -> None:
        super().__init__(loop, spec, sock)
        frame = pub_frame(spec.subject, size)
        max_frames = max(1, int(rate / 200)) if rate > 0 else None
        chunk, self.fpc = build_chunk(frame, max_frames)
        self.chunk = memoryview(chunk)
        self.frame = frame
        self.left = spec.msgs
        self.duration, self.rate = duration, rate
        self.sent = 0
        self.cur: memoryview | None = None
        self.cur_frames = 0
        self.off = 0
        self.flushing = False
        self.done = False
        self.end = 0.0
        self.resume_at = 0.0
        self.parser = Parser()

    def begin(self) -> None:
        self._next(time.monotonic())
        self.set_events(READ | WRITE)

    def _next(self, now: float) -> bool:
        """Pick the next chunk; False when sending should pause or is over."""
        over = (self.left <= 0) if not self.duration else (now - self.loop.start >= self.duration)
        if over:
            self.cur, self.cur_frames, self.off = memoryview(b"PING\r\n"), 0, 0
            self.flushing = True
            return True
        if self.rate and now < self.loop.start + self.sent / self.rate:
            self.resume_at = self.loop.start + self.sent / self.rate
            self.cur = None
            self.set_events(READ)
            return False
        if self.duration or self.left >= self.fpc:
            self.cur, self.cur_frames = self.chunk, self.fpc
        else:
            self.cur, self.cur_frames = memoryview(self.frame * self.left), self.left
        if not self.duration:
            self.left -= self.cur_frames
        self.off = 0
        return True

    def queue(self, data: bytes) -> None:
        # Control replies (PONG) may only go out between chunks, never inside
        # a partially written PUB frame.
        self.out += data
        if self.cur is None or self.off == 0:
            self.flush_out()

    def after_flush(self) -> None:
        self.set_events(READ if self.cur is None else READ | WRITE)

    def on_write(self) -> None:
        sock = self.sock
        for _ in range(MAX_CHUNKS_PER_EVENT):
            if self.out:
                self.flush_out()
                if self.out:
                    return
            cur = self.cur
            if cur is None:
                return
            try:
                self.off += sock.send(cur[self.off:])
            except _WOULD_BLOCK:
                return
            except OSError as e:
                self.close(f"send: {e}")
                return
            if self.off < len(cur):
                return
            self.sent += self.cur_frames
            if self.flushing:
                self.cur = None
                self.set_events(READ)
                return
            if not self._next(time.monotonic()):
                return

    def resume(self, now: float) -> None:
        if self.cur is None and not self.flushing and not self.closed and now >= self.resume_at:
            if self._next(now):
                self.set_events(READ | WRITE)

    def on_read(self) -> None:
        data = self.recv()
        if data is None:
            return
        for op in self.parser.feed(data):
            if op.kind == "PING":
                self.queue(b"PONG\r\n")
            elif op.kind == "-ERR":
                self.loop.error(f"{self.spec.tag}: -ERR {op.data.decode('latin-1')}")
            elif op.kind == "PONG" and self.flushing and not self.done:
                self.finish()

    def finish(self) -> None:
        self.done = True
        self.end = time.monotonic()
        self.loop.pubs_done += 1

    def close(self, why: str) -> None:
        super().close(why)
        if not self.done:
            self.finish()


class Req(Conn):
    """Closed-loop requester: one outstanding request, latency in microseconds."""

    role = "req"

    def __init__(self, loop: Loop, spec: ConnSpec, sock: socket.socket, size: int,
                 duration: float) -> None:
        super().__init__(loop, spec, sock)
        self.inbox = f"_INBOX.{spec.tag}."
        self.size, self.duration = size, duration
        self.left = spec.msgs
        self.sent = 0
        self.replies = 0
        self.seq = 0
        self.t_sent = 0
        self.lat = array("d")
        self.parser = Parser()
        self.done = False
        self.end = 0.0
        self.body = payload(size)

    def begin(self) -> None:
        self._send_next(time.monotonic())

    def _send_next(self, now: float) -> None:
        over = (self.left <= 0) if not self.duration else (now - self.loop.start >= self.duration)
        if over:
            self.done = True
            self.end = now
            self.loop.pubs_done += 1
            return
        self.seq += 1
        self.left -= 1
        self.sent += 1
        head = f"PUB {self.spec.subject} {self.inbox}{self.seq} {self.size}\r\n".encode()
        self.t_sent = time.perf_counter_ns()
        self.queue(head + self.body + b"\r\n")

    def on_read(self) -> None:
        data = self.recv()
        if data is None:
            return
        now_ns = time.perf_counter_ns()
        for op in self.parser.feed(data):
            if op.kind == "MSG" and op.subject == f"{self.inbox}{self.seq}":
                self.lat.append((now_ns - self.t_sent) / 1000.0)
                self.replies += 1
                self._send_next(time.monotonic())
            elif op.kind == "PING":
                self.queue(b"PONG\r\n")
            elif op.kind == "-ERR":
                self.loop.error(f"{self.spec.tag}: -ERR {op.data.decode('latin-1')}")

    def check_timeout(self) -> None:
        if not self.done and not self.closed and self.t_sent and \
                time.perf_counter_ns() - self.t_sent > REQ_TIMEOUT * 1e9:
            self.loop.error(f"{self.spec.tag}: request {self.seq} timed out")
            self._send_next(time.monotonic())

    def close(self, why: str) -> None:
        super().close(why)
        if not self.done:
            self.done = True
            self.end = time.monotonic()
            self.loop.pubs_done += 1


class Resp(Conn):
    """Responder: echoes a same-size payload to every request's reply subject."""

    role = "resp"

    def __init__(self, loop: Loop, spec: ConnSpec, sock: socket.socket, size: int) -> None:
        super().__init__(loop, spec, sock)
        self.parser = Parser()
        self.tail = f" {size}\r\n".encode() + payload(size) + b"\r\n"
        self.answered = 0

    def on_read(self) -> None:
        data = self.recv()
        if data is None:
            return
        out = bytearray()
        for op in self.parser.feed(data):
            if op.kind == "MSG" and op.reply:
                out += b"PUB " + op.reply.encode() + self.tail
                self.answered += 1
            elif op.kind == "PING":
                out += b"PONG\r\n"
        if out:
            self.queue(bytes(out))


def subs_for(spec: ConnSpec) -> bytes:
    if spec.role in ("sub", "resp"):
        return sub_frame(spec.subject, 1, spec.queue)
    if spec.role == "req":
        return sub_frame(f"_INBOX.{spec.tag}.*", 1)
    if spec.role == "idle":
        return b"".join(sub_frame(f"{spec.subject}.{j}", j + 1) for j in range(spec.nsubs))
    return b""


def connect_all(ep: Endpoint, specs: list[ConnSpec]) -> list[tuple[ConnSpec, socket.socket]]:
    if ep.tls:
        ctx = ssl_context(ep)
        return [(s, setup_tls(ep, s.creds, subs_for(s), ctx, s.tag)) for s in specs]
    socks = setup_plain(ep, [(s.creds, subs_for(s), s.tag) for s in specs])
    return list(zip(specs, socks, strict=True))


def worker_main(idx: int, specs: list[ConnSpec], opts: Any, ctl: Any) -> None:
    """Process entry point; ``ctl`` carries the queue, events and shared arrays."""
    try:
        pairs = connect_all(opts.endpoint, specs)
    except Exception as e:
        ctl.queue.put(("error", idx, f"{type(e).__name__}: {e}"))
        return
    loop = Loop()
    conns: list[Conn] = []
    for spec, sock in pairs:
        if spec.role == "pub":
            conns.append(Pub(loop, spec, sock, opts.size, opts.duration, opts.rate))
        elif spec.role == "req":
            conns.append(Req(loop, spec, sock, opts.size, opts.duration))
        elif spec.role == "resp":
            conns.append(Resp(loop, spec, sock, opts.size))
        else:
            conns.append(Sub(loop, spec, sock))
    ctl.queue.put(("ready", idx, len(conns)))
    while not ctl.start.wait(0.1):
        if ctl.stop.is_set():
            return
    run_loop(idx, loop, conns, ctl)
    ctl.queue.put(("result", idx, collect(loop, conns)))


def run_loop(idx: int, loop: Loop, conns: list[Conn], ctl: Any) -> None:
    loop.start = ctl.start_time.value
    row = idx * NCOUNTERS
    counters = ctl.counters
    pubs = [c for c in conns if isinstance(c, Pub)]
    reqs = [c for c in conns if isinstance(c, Req)]
    subs = [c for c in conns if isinstance(c, Sub) and c.spec.role == "sub"]
    paced = [p for p in pubs if p.rate]
    for c in pubs + reqs:
        c.begin()  # type: ignore[attr-defined]
    select = loop.sel.select
    next_check = 0.0
    while True:
        timeout = 0.05
        if paced:
            waits = [p.resume_at for p in paced if p.cur is None and not p.flushing]
            if waits:
                timeout = max(0.0, min(timeout, min(waits) - time.monotonic()))
        for key, mask in select(timeout):
            c = key.data
            if mask & READ:
                c.on_read()
            if mask & WRITE and not c.closed:
                c.on_write()
        now = time.monotonic()
        for p in paced:
            p.resume(now)
        if now >= next_check:
            next_check = now + 0.05
            counters[row + C_PUB] = sum(p.sent for p in pubs) + sum(r.sent for r in reqs)
            counters[row + C_SUB] = (sum(s.counter.msgs for s in subs)
                                     + sum(r.replies for r in reqs))
            counters[row + C_PUBS_DONE] = loop.pubs_done
            for r in reqs:
                r.check_timeout()
            if ctl.stop.is_set():
                break


def collect(loop: Loop, conns: list[Conn]) -> dict[str, Any]:
    pubs = [c for c in conns if isinstance(c, Pub)]
    reqs = [c for c in conns if isinstance(c, Req)]
    subs = [c for c in conns if isinstance(c, Sub) and c.spec.role == "sub"]
    lat = array("d")
    for r in reqs:
        lat.extend(r.lat)
    for c in conns:
        if isinstance(c, Sub):
            for e in c.counter.errors:
                loop.error(f"{c.spec.tag}: -ERR {e}")
    ends = [c.end for c in pubs + reqs if c.end]  # type: ignore[attr-defined]
    firsts = [s.first for s in subs if s.first]
    lasts = [s.last for s in subs if s.last]
    result = {
        "pub_msgs": sum(p.sent for p in pubs) + sum(r.sent for r in reqs),
        "pub_end": max(ends) if ends else 0.0,
        "sub_msgs": sum(s.counter.msgs for s in subs) + sum(r.replies for r in reqs),
        "sub_counts": [s.counter.msgs for s in subs],
        "sub_first": min(firsts) if firsts else 0.0,
        "sub_last": max(lasts + [r.end for r in reqs if r.end]) if (lasts or reqs) else 0.0,
        "lat_us": lat.tobytes(),
        "answered": sum(c.answered for c in conns if isinstance(c, Resp)),
        "errors": loop.errors,
        "disconnects": loop.disconnects,
        "conns": len(conns),
    }
    for c in conns:
        if not c.closed:
            with contextlib.suppress(OSError):
                c.sock.close()
    return result

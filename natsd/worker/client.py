"""The asyncio glue for one client connection inside a worker.

Theory of operation
-------------------
The supervisor already sent INFO, read CONNECT and authenticated; the
worker adopts the socket with the :class:`~natsd.ipc.messages.HandOff`
record. ``connection_made`` first acknowledges that CONNECT (``+OK`` when
verbose), then replays every byte the supervisor read after it, so the byte
order a client pipelined is preserved exactly.

From then on ``data_received`` feeds the sans-IO :class:`Parser`, dispatches
the ops it returns synchronously (no await per message) and lets the worker
flush every touched connection once at the end of the batch. Deliveries are
appended to the target's ``out`` bytearray; ``flush`` hands that bytearray to
the transport and starts a fresh one (uvloop may keep a view of a buffer it
could not send at once, so a handed-over buffer is never mutated again).

Slow consumers: when a connection's transport holds more than
``max_pending`` unsent bytes after a flush, it is closed without ``-ERR``
(as nats-server does) and counted.

Keep-alive: the server sends PING after ``ping_interval`` (the first after
two seconds, for RTT) unless the client was active, and closes with
``Stale Connection`` once more than ``ping_max`` PINGs are unanswered.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from natsd import log as natslog
from natsd.auth.authenticate import credential_digest
from natsd.auth.permissions import CompiledPermissions, reserved_publish, reserved_reply
from natsd.auth.sysreq import is_system_request
from natsd.ipc.messages import (
    STATS_SUBS_PER_CONN,
    ConnectInfo,
    ConnStats,
    HandOff,
    SubStats,
    connect_fields,
)
from natsd.proto import errors as E
from natsd.proto.connect import ConnectOptions, parse_connect, validate_connect
from natsd.proto.errors import ClosedReason, ProtocolError
from natsd.proto.parser import (
    OP_CLIENT_ERR,
    OP_CONNECT,
    OP_ERROR,
    OP_HPUB,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_PUB_RUN,
    OP_SUB,
    OP_UNSUB,
    Parser,
)
from natsd.proto.writer import info_line, no_responders_hmsg
from natsd.subjects.tokens import num_tokens, valid_literal_subject, valid_queue, valid_subject

if TYPE_CHECKING:
    from natsd.worker.account import Account
    from natsd.worker.server import Worker

log = logging.getLogger("natsd.client")

OK = b"+OK\r\n"
PING = b"PING\r\n"
PONG = b"PONG\r\n"
CRLF = b"\r\n"
FIRST_PING_DELAY = 2.0
# Reserved subjects start with "_" or "$": test one byte before calling out.
_RESERVED_FIRST = (b"_", b"$")
_DOLLAR = ord("$")  # an int compare: this test runs on every PUB
PREFIX_CACHE_MAX = 256
STALL_HIGH = 8 * 1024 * 1024  # per-subscriber unsent bytes that stall publishers
STALL_MAX = 0.5  # seconds a publisher waits at most before reading again
RING_POLL = 0.001  # how often a publisher stalled on a ring checks for room
_OP_NAMES = {OP_CONNECT: "CONNECT <options>", OP_PING: "PING", OP_PONG: "PONG", OP_CLIENT_ERR: "-ERR", OP_ERROR: "parse error"}


def _join(*parts: bytes | None) -> str:
    return " ".join(p.decode("ascii", "backslashreplace").encode("unicode_escape").decode("ascii") for p in parts if p is not None)


class Sub:
    """A subscription; the sublist compares these by identity."""

    __slots__ = ("client", "delivered", "filtered", "imp", "interest", "max_msgs", "prefixes", "queue", "sid", "subject")

    def __init__(self, client: Client | None, subject: bytes, queue: bytes | None, sid: bytes) -> None:
        self.client = client
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.max_msgs = 0
        self.delivered = 0
        self.filtered = False
        # delivered subject -> b"MSG <subject> <sid> " (bounded; see deliver)
        self.prefixes: dict[bytes, bytes] = {}
        # a shadow (client None) forwards to an importing account
        self.imp: Any = None
        # interest keys this subscription holds in exporting accounts
        self.interest: list[tuple[str, int, bytes]] | None = None


class Client(asyncio.Protocol):
    def __init__(self, worker: Worker, h: HandOff, account: Account) -> None:
        cfg = worker.config
        self.worker = worker
        self.cid = h.client_id
        self.account = account
        self.user = h.user
        self.host = h.host
        self.port = h.port
        self.tls_version = h.tls_version
        self.tls_cipher = h.tls_cipher
        self.start = h.start or time.time()
        self.last_activity = self.start
        self.auth_required = h.auth_required
        self.auth_digest = h.auth_digest
        self.is_system = h.is_system
        self.connected = h.connected
        c = h.connect
        self._apply_options(c, cfg.headers)
        self.perms = CompiledPermissions.build(h.permissions)
        max_payload = cfg.max_payload
        if h.max_payload >= 0:
            max_payload = min(max_payload, h.max_payload)
        self.max_payload = max_payload
        self.payload_limited = max_payload < cfg.max_payload
        # -1: no limit. The server option uses 0 for that; a JWT limit of 0
        # (user or account ``subs``) admits no subscription at all.
        self.max_subs = cfg.max_subscriptions if cfg.max_subscriptions > 0 else -1
        if h.max_subscriptions >= 0 and (self.max_subs < 0 or h.max_subscriptions < self.max_subs):
            self.max_subs = h.max_subscriptions
        # The options of the CONNECT the supervisor processed (secrets
        # stripped): a later CONNECT is applied on top of them, as in
        # nats-server, and the parser needs them to accept HPUB.
        self.connect_opts: ConnectOptions | None = (
            ConnectOptions(**connect_fields(c))
            if h.connected
            else None
        )
        self.parser = Parser(cfg.max_control_line, cfg.max_payload, cfg.headers, connect=self.connect_opts)
        self.parser._runs = not cfg.trace
        self.pending = h.pending
        self.expires = h.expires
        self.subs: dict[bytes, Sub] = {}
        self.out = bytearray()
        self.dirty = False
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.close_reason: ClosedReason | None = None
        self.in_msgs = 0
        self.in_bytes = 0
        self.out_msgs = 0
        self.out_bytes = 0
        self.pings_out = 0
        self.ping_sent_at = 0.0
        self.rtt = 0.0
        self.first_pong_info = True
        self.trace = cfg.trace
        self.checked = True
        self._update_fast()
        self._timer: asyncio.TimerHandle | None = None
        self.blocked = False  # our transport is over its high-water mark
        self.stalled = False  # our reads are paused for a blocked subscriber
        self.waiters: set[Client] = set()  # publishers stalled on us
        self._stall_timer: asyncio.TimerHandle | None = None
        self._deadline: asyncio.TimerHandle | None = None  # write_deadline while blocked
        self._expiry: asyncio.TimerHandle | None = None

    # -- lifecycle -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        high = min(STALL_HIGH, max(self.worker.config.max_pending // 4, 64 * 1024))
        transport.set_write_buffer_limits(high=high, low=high // 4)  # type: ignore[attr-defined]
        loop = self.worker.loop
        self._timer = loop.call_later(min(FIRST_PING_DELAY, self.worker.config.ping_interval), self._ping_tick)
        if self.expires is not None:
            self._expiry = loop.call_later(max(0.0, self.expires - time.time()), self._expired)
        if self.connected and self.verbose:
            self.out += OK
            self._mark_dirty()
        pending, self.pending = self.pending, b""
        if pending:
            self.data_received(pending)
        else:
            self.worker.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self._teardown(ClosedReason.ReadError if exc else ClosedReason.ClientClosed)

    def eof_received(self) -> bool:
        return False

    def close(self, reason: ClosedReason, err: bytes | None = None) -> None:
        """Close after flushing what is queued (and ``err`` if given)."""
        if self.closed:
            return
        if err:
            self.out += err
        if self.out and self.transport is not None:
            self.transport.write(bytes(self.out))
            self.out = bytearray()
        self._teardown(reason)
        if self.transport is not None:
            self.transport.close()

    def _teardown(self, reason: ClosedReason) -> None:
        self.closed = True
        self.close_reason = reason
        self.worker.closed_conns.append(self.snapshot(time.time(), reason.text))
        self._release_waiters()
        if self._stall_timer is not None:
            self._stall_timer.cancel()
        for t in (self._timer, self._expiry, self._deadline):
            if t is not None:
                t.cancel()
        sl = self.account.sublist
        router = self.account.router
        for sub in self.subs.values():
            sl.remove(sub)
            if sub.interest:
                router.unsubscribe(sub.interest)
        self.subs.clear()
        self.worker.client_closed(self, reason)

    # -- reading ---------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        self.last_activity = time.time()
        try:
            ops = self.parser.feed(data)
        except ProtocolError as e:  # pragma: no cover - the parser reports errors as ops
            ops = [(OP_ERROR, e)]
        if self.trace:
            self._trace_ops(ops)
        pub = self._pub
        for op in ops:
            kind = op[0]
            if kind == OP_PUB_RUN:
                run = op[3]
                if len(run) == 1:
                    pub(op[1], op[2], -1, run[0])
                else:
                    self._pub_run(op[1], op[2], run)
            elif kind == OP_PUB:
                pub(op[1], op[2], -1, op[3])
            elif kind == OP_HPUB:
                pub(op[1], op[2], op[3], op[4])
            else:
                self._other(op)
            if self.closed:
                break
        self.worker.flush(self)

    def _trace_ops(self, ops: list[tuple]) -> None:  # type: ignore[type-arg]
        # Like nats-server's -V: one line per inbound op. Payloads and CONNECT
        # options are never logged (they may carry secrets); client-supplied
        # subjects are escaped so they cannot forge log lines.
        for op in ops:
            kind = op[0]
            if kind == OP_PUB:
                text = _join(b"PUB", op[1], op[2], b"%d" % len(op[3]))
            elif kind == OP_HPUB:
                text = _join(b"HPUB", op[1], op[2], b"%d" % op[3], b"%d" % len(op[4]))
            elif kind == OP_SUB:
                text = _join(b"SUB", op[1], op[2], op[3])
            elif kind == OP_UNSUB:
                text = _join(b"UNSUB", op[1], None if op[2] is None else b"%d" % op[2])
            else:
                text = _OP_NAMES.get(kind, "?")
            natslog.trace(log, "%s:%d - cid:%d - <<- [%s]", self.host, self.port, self.cid, text)

    def _other(self, op: tuple) -> None:  # type: ignore[type-arg]
        kind = op[0]
        if kind == OP_SUB:
            self._sub(op[1], op[2], op[3])
        elif kind == OP_UNSUB:
            self._unsub(op[1], op[2])
        elif kind == OP_PING:
            self._ping()
        elif kind == OP_PONG:
            self._pong()
        elif kind == OP_CONNECT:
            self._connect(op[1])
        elif kind == OP_CLIENT_ERR:
            self.close(ClosedReason.ParseError)
        elif kind == OP_ERROR:
            self._protocol_error(op[1])

    def _protocol_error(self, err: ProtocolError) -> None:
        wire = err.wire() if err.text else None
        if err.close:
            log.debug("cid:%d - protocol error: %s", self.cid, err.text or "parse error")
            self.close(err.reason, wire)
        elif wire:
            self.out += wire
            self._mark_dirty()

    def _send_err(self, wire: bytes) -> None:
        self.out += wire
        self._mark_dirty()

    # -- ops -------------------------------------------------------------
    def _update_fast(self) -> None:
        """Recompute whether a publish needs any per-message check beyond the
        reserved-prefix tests (the common case: none)."""
        self.checked = bool(
            self.pedantic or self.perms is not None or self.verbose or self.is_system or self.payload_limited
        )

    def _pub(self, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes) -> None:
        self.in_msgs += 1
        self.in_bytes += len(data)
        if self.checked:
            if not self._pub_allowed(subject, reply, data):
                return
        elif subject[:1] in _RESERVED_FIRST and reserved_publish(subject, False):
            self._send_err(E.pub_violation(subject))
            return
        if reply is not None and reply[:1] in _RESERVED_FIRST and reserved_reply(reply):
            self._send_err(E.pub_reply_violation(reply))
            return
        if self.verbose:
            # nats-server acknowledges before delivering (a publisher that
            # also subscribes sees +OK, then its own MSG).
            self.out += OK
            self._mark_dirty()
        acc = self.account
        acc.in_msgs += 1
        acc.in_bytes += len(data)
        n = acc.route(self, subject, reply, hdr_len, data)
        if acc.service_imports:
            n += acc.router.service_request(self, subject, reply, hdr_len, data)
        if acc.exports_services and subject[:4] == b"_R_.":
            n += acc.router.response(acc.name, subject, hdr_len, data)
        if subject[0] == _DOLLAR and is_system_request(subject, self.is_system, self.worker.server_id):
            n += self.worker.forward_system_request(self, subject, reply, data[hdr_len:] if hdr_len >= 0 else data)
        if n == 0 and reply is not None and self.no_responders:
            self._no_responders(subject, reply)

    def _pub_run(self, subject: bytes, reply: bytes | None, run: list[bytes]) -> None:
        """Consecutive PUBs with one control line (same subject, reply, size)."""
        acc = self.account
        if (
            self.checked
            or reply is not None
            or subject[:1] in _RESERVED_FIRST  # reserved subjects, _R_. responses
            or (acc.service_imports and acc.router.table.service_targets(acc.name, subject))
        ):
            pub = self._pub
            for data in run:
                pub(subject, reply, -1, data)
                if self.closed:
                    return
            return
        k = len(run)
        nbytes = k * len(run[0])
        self.in_msgs += k
        self.in_bytes += nbytes
        acc.in_msgs += k
        acc.in_bytes += nbytes
        acc.route_run(self, subject, run, nbytes)

    def _pub_allowed(self, subject: bytes, reply: bytes | None, data: bytes) -> bool:
        if len(data) > self.max_payload:
            self.close(ClosedReason.MaxPayloadExceeded, ProtocolError(E.ERR_MAX_PAYLOAD, True).wire())
            return False
        if self.pedantic and not valid_literal_subject(subject):
            # nats-server reports the error but still routes the message.
            self._send_err(ProtocolError(E.ERR_INVALID_PUB_SUBJECT, False).wire())
        perms = self.perms
        if perms is not None and not perms.can_publish(subject, time.monotonic()):
            self._send_err(E.pub_violation(subject))
            return False
        if reserved_publish(subject, self.is_system):
            self._send_err(E.pub_violation(subject))
            return False
        return True

    def _no_responders(self, subject: bytes, reply: bytes) -> None:
        for sub in self.account.sublist.match(reply).psubs:
            if sub.client is self:
                self.out += no_responders_hmsg(reply, sub.sid, subject)
                self._mark_dirty()
                return

    def _sub(self, subject: bytes, queue: bytes | None, sid: bytes) -> None:
        if not valid_subject(subject) or (queue is not None and not valid_queue(queue)):
            self._send_err(ProtocolError(E.ERR_INVALID_SUBJECT, False).wire())
            return
        perms = self.perms
        if (perms is not None and not perms.can_subscribe(subject, queue)) or queue == b"_sys_":
            self._send_err(E.sub_violation(subject, queue))
            return
        max_tokens = self.worker.config.max_sub_tokens
        if max_tokens > 0 and num_tokens(subject) > max_tokens:
            self._send_err(E.sub_tokens_violation(subject))
            return
        if sid in self.subs:
            if self.verbose:
                self.out += OK
                self._mark_dirty()
            return
        if self.max_subs >= 0 and len(self.subs) >= self.max_subs:
            self._send_err(ProtocolError(E.ERR_MAX_SUBS, False).wire())
            return
        sub = Sub(self, subject, queue, sid)
        if perms is not None:
            sub.filtered = perms.needs_delivery_filter(subject, queue)
        self.subs[sid] = sub
        acc = self.account
        acc.sublist.insert(sub)
        if acc.stream_imports:
            sub.interest = acc.router.subscribe(acc.name, sub)
        if self.verbose:
            self.out += OK
            self._mark_dirty()

    def _unsub(self, sid: bytes, max_msgs: int | None) -> None:
        sub = self.subs.get(sid)
        if sub is not None:
            if max_msgs is not None and max_msgs > 0 and max_msgs > sub.delivered:
                sub.max_msgs = max_msgs
            else:
                self._remove_sub(sub)
        if self.verbose:
            self.out += OK
            self._mark_dirty()

    def apply_permissions(self, perms: CompiledPermissions | None) -> None:
        """New permissions on a live connection (config reload, JWT update).

        As nats-server does on reload, a subscription the new permissions do
        not allow is removed and the client told which (``(sid "N")``); the
        rest are re-classified for the delivery filter."""
        self.perms = perms
        self._update_fast()
        for sub in list(self.subs.values()):
            if perms is not None and not perms.can_subscribe(sub.subject, sub.queue):
                self._remove_sub(sub)
                self._send_err(E.sub_violation(sub.subject, sid=sub.sid))
                log.info("cid:%d - Removed sub %s (sid %s): not authorized", self.cid,
                         E.go_quote(sub.subject), E.go_quote(sub.sid))
            else:
                sub.filtered = perms is not None and perms.needs_delivery_filter(sub.subject, sub.queue)

    def _remove_sub(self, sub: Sub) -> None:
        if self.subs.get(sub.sid) is sub:
            del self.subs[sub.sid]
            self.account.sublist.remove(sub)
            if sub.interest:
                self.account.router.unsubscribe(sub.interest)

    def _ping(self) -> None:
        self.out += PONG
        if self.first_pong_info and self.protocol >= 1 and self.connected:
            self.first_pong_info = False
            self.out += self._connect_info()
        self._mark_dirty()

    def _connect_info(self) -> bytes:
        info = dict(self.worker.config.info)
        info["client_id"] = self.cid
        info["client_ip"] = self.host
        info["connect_info"] = True
        info["remote_account"] = self.account.name
        if self.is_system:
            info["acc_is_sys"] = True
        return info_line(info)

    def _pong(self) -> None:
        if self.pings_out:
            if self.ping_sent_at:
                self.rtt = time.monotonic() - self.ping_sent_at
                self.ping_sent_at = 0.0
            self.pings_out = 0

    def _connect(self, raw: bytes) -> None:
        try:
            c = parse_connect(raw, self.connect_opts)
        except ProtocolError as e:
            self._protocol_error(e)
            return
        if c.forbidden:
            self.close(ClosedReason.AuthenticationViolation, ProtocolError(E.ERR_AUTH_VIOLATION, True).wire())
            return
        # The worker never sees secrets: it compares the digest of the
        # credentials presented now with the ones the supervisor checked. A
        # CONNECT that carries none only changes options (as in nats-server).
        if self.auth_required and _carries_credentials(raw) and credential_digest(c) != self.auth_digest:
            log.info("cid:%d - second CONNECT changes credentials: refused", self.cid)
            self.close(ClosedReason.AuthenticationViolation, ProtocolError(E.ERR_AUTH_VIOLATION, True).wire())
            return
        err = validate_connect(c, self.worker.config.headers)
        if err is not None:
            self._protocol_error(err)
            return
        # Keep no credentials around: only the options matter from now on.
        self.connect_opts = msgspec.structs.replace(c, user=None, password=None, auth_token=None, sig=None, jwt=None)
        self._apply_options(c, self.worker.config.headers)
        self.connected = True
        self._update_fast()
        if self.verbose:
            self.out += OK
            self._mark_dirty()

    def _apply_options(self, c: ConnectInfo | ConnectOptions, server_headers: bool) -> None:
        """The CONNECT options the worker acts on (hand-off or a later CONNECT)."""
        self.verbose = c.verbose
        self.pedantic = c.pedantic
        self.echo = c.echo
        self.headers = c.headers and server_headers
        self.no_responders = c.no_responders
        self.protocol = c.protocol
        self.name = c.name
        self.lang = c.lang
        self.version = c.version

    # -- delivery --------------------------------------------------------
    def may_deliver(self, subject: bytes, queue: bytes | None) -> bool:
        perms = self.perms
        return perms is None or perms.can_deliver(subject, queue)

    def deliver(self, sub: Sub, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes) -> None:
        if self.closed:
            return
        out = self.out
        if hdr_len < 0:
            prefix = sub.prefixes.get(subject)
            if prefix is None:
                if len(sub.prefixes) >= PREFIX_CACHE_MAX:
                    sub.prefixes.clear()
                prefix = sub.prefixes[subject] = b"MSG " + subject + b" " + sub.sid + b" "
            if reply is None:
                out += prefix + b"%d\r\n" % len(data)
            else:
                out += prefix + reply + b" %d\r\n" % len(data)
            out += data
        elif self.headers:
            rep = b" " + reply if reply is not None else b""
            out += b"HMSG %s %s%s %d %d\r\n" % (subject, sub.sid, rep, hdr_len, len(data))
            out += data
        else:
            rep = b" " + reply if reply is not None else b""
            out += b"MSG %s %s%s %d\r\n" % (subject, sub.sid, rep, len(data) - hdr_len)
            out += data[hdr_len:]
        out += CRLF
        self.out_msgs += 1
        self.out_bytes += len(data)
        if not self.dirty:
            self.dirty = True
            self.worker.dirty.append(self)
        if reply is not None and self.perms is not None and self.perms.responses_enabled:
            self.perms.track_reply(reply, time.monotonic())
        sub.delivered += 1
        if sub.max_msgs and sub.delivered >= sub.max_msgs:
            self._remove_sub(sub)

    def deliver_run(self, sub: Sub, subject: bytes, run: list[bytes], nbytes: int) -> None:
        if self.closed:
            return
        key = b"%s %d" % (subject, len(run[0]))
        line = sub.prefixes.get(key)
        if line is None:
            if len(sub.prefixes) >= PREFIX_CACHE_MAX:
                sub.prefixes.clear()
            line = sub.prefixes[key] = b"MSG %s %s %d\r\n" % (subject, sub.sid, len(run[0]))
        out = self.out
        out += line
        out += (CRLF + line).join(run)
        out += CRLF
        k = len(run)
        self.out_msgs += k
        self.out_bytes += nbytes
        if not self.dirty:
            self.dirty = True
            self.worker.dirty.append(self)
        sub.delivered += k

    def _mark_dirty(self) -> None:
        if not self.dirty:
            self.dirty = True
            self.worker.dirty.append(self)

    # -- back-pressure ---------------------------------------------------
    # A subscriber whose transport holds more than STALL_HIGH unsent bytes
    # pauses the publishers that feed it (their reads stop) until it drains
    # or STALL_MAX passes, as nats-server stalls fast producers; past
    # max_pending it is cut off as a slow consumer, and so it is if it stays
    # over the mark for ``write_deadline`` (nats-server: a write that does not
    # complete in time), so that a reader that never catches up cannot hold
    # its publishers, of any account, to its pace for ever.
    def pause_writing(self) -> None:
        self.blocked = True
        if self._deadline is None and not self.closed:
            self._deadline = self.worker.loop.call_later(self.worker.config.write_deadline, self._write_deadline_passed)

    def resume_writing(self) -> None:
        self.blocked = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._release_waiters()

    def _write_deadline_passed(self) -> None:
        self._deadline = None
        if self.closed or not self.blocked:
            return
        self.worker.slow_consumers += 1
        log.info(
            "cid:%d - Slow Consumer Detected: WriteDeadline of %gs exceeded with %d bytes pending",
            self.cid, self.worker.config.write_deadline, self.pending_bytes(),
        )  # fmt: skip
        transport = self.transport
        self._teardown(ClosedReason.SlowConsumerWriteDeadline)
        if transport is not None:
            transport.abort()
        self.worker.flush()

    def _release_waiters(self) -> None:
        waiters, self.waiters = self.waiters, set()
        for w in waiters:
            w.unstall()

    def stall_on(self, target: Client) -> None:
        if self.stalled or self.closed or self.transport is None:
            return
        self.stalled = True
        target.waiters.add(self)
        self.transport.pause_reading()
        self._stall_timer = self.worker.loop.call_later(STALL_MAX, self.unstall)

    def stall_on_ring(self, ring: Any) -> None:
        """Pause this publisher while the ring to a peer worker is more than
        half full (cross-worker imports), polling until it drains to a
        quarter or STALL_MAX passes: a full ring would otherwise drop."""
        if self.stalled or self.closed or self.transport is None:
            return
        self.stalled = True
        self.transport.pause_reading()
        deadline = self.worker.loop.time() + STALL_MAX
        self._stall_timer = self.worker.loop.call_later(RING_POLL, self._poll_ring, ring, deadline)

    def _poll_ring(self, ring: Any, deadline: float) -> None:
        if not self.stalled:
            return
        loop = self.worker.loop
        if ring.free() >= ring.size * 3 // 4 or loop.time() >= deadline:
            self._stall_timer = None
            self.unstall()
            return
        self._stall_timer = loop.call_later(RING_POLL, self._poll_ring, ring, deadline)

    def unstall(self) -> None:
        if not self.stalled:
            return
        self.stalled = False
        if self._stall_timer is not None:
            self._stall_timer.cancel()
            self._stall_timer = None
        if not self.closed and self.transport is not None:
            self.transport.resume_reading()

    def flush(self) -> None:
        self.dirty = False
        if self.closed or not self.out:
            return
        t = self.transport
        if t is None:
            return
        buf = self.out
        self.out = bytearray()
        t.write(buf)
        if t.get_write_buffer_size() > self.worker.config.max_pending:
            self.worker.slow_consumers += 1
            log.info("cid:%d - Slow Consumer Detected: MaxPending of %d Exceeded", self.cid, self.worker.config.max_pending)
            self._teardown(ClosedReason.SlowConsumerPendingBytes)
            t.abort()

    def snapshot(self, stop: float | None = None, reason: str | None = None) -> ConnStats:
        """This connection's monitoring record (subscriptions listed up to a cap)."""
        shown = list(itertools.islice(self.subs.values(), STATS_SUBS_PER_CONN))
        return ConnStats(
            cid=self.cid,
            account=self.account.name,
            user=self.user,
            host=self.host,
            port=self.port,
            start=self.start,
            last_activity=self.last_activity,
            in_msgs=self.in_msgs,
            out_msgs=self.out_msgs,
            in_bytes=self.in_bytes,
            out_bytes=self.out_bytes,
            subs=len(self.subs),
            pending_bytes=0 if stop is not None else self.pending_bytes(),
            name=self.name,
            lang=self.lang,
            version=self.version,
            rtt=self.rtt,
            tls_version=self.tls_version,
            tls_cipher=self.tls_cipher,
            subjects=[s.subject.decode("utf-8", "replace") for s in shown],
            subs_detail=[
                SubStats(
                    subject=s.subject.decode("utf-8", "replace"),
                    sid=s.sid.decode("utf-8", "replace"),
                    queue=s.queue.decode("utf-8", "replace") if s.queue else None,
                    msgs=s.delivered,
                )
                for s in shown
            ],
            stop=stop,
            reason=reason,
        )

    def pending_bytes(self) -> int:
        t = self.transport
        return len(self.out) + (t.get_write_buffer_size() if t is not None and not self.closed else 0)

    # -- timers ----------------------------------------------------------
    def _ping_tick(self) -> None:
        if self.closed:
            return
        cfg = self.worker.config
        if self.pings_out + 1 > cfg.ping_max:
            self.close(ClosedReason.StaleConnection, ProtocolError(E.ERR_STALE, True).wire())
            self.worker.flush()
            return
        self.pings_out += 1
        self.ping_sent_at = time.monotonic()
        self.out += PING
        self._mark_dirty()
        self.worker.flush()
        self._timer = self.worker.loop.call_later(cfg.ping_interval, self._ping_tick)

    def _expired(self) -> None:
        self.close(ClosedReason.AuthenticationExpired, ProtocolError(E.ERR_AUTH_EXPIRED, True).wire())

    def send_info(self, info: dict[str, object]) -> None:
        if not self.closed:
            self.out += info_line(info)
            self._mark_dirty()


def _carries_credentials(raw: bytes) -> bool:
    """Does this CONNECT argument, on its own, present any credential?"""
    fresh = parse_connect(raw)
    return any(v is not None for v in (fresh.user, fresh.password, fresh.auth_token, fresh.nkey, fresh.sig, fresh.jwt))

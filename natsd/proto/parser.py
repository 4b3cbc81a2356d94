"""Sans-IO parser for the client->server side of the NATS protocol.

Theory of operation
-------------------
``Parser.feed(data)`` turns raw bytes into a list of plain tuples (see the OP_*
constants). It never loops over bytes in Python: control lines are located with
``bytes.find(b"\\n")`` and payloads are sliced by their declared size.

Hot path. Almost all traffic is PUB/HPUB. The raw control line
(``b"PUB foo 16\\r\\n"``) is the key of a small cache holding the already parsed
``(subject, reply, size, hdr)``; and when the next frame starts with exactly the
same line as the previous one (``startswith(prev, pos)``) even the ``find`` is
skipped. Cache entries depend on the limits and on header support, so changing
either clears the cache.

Partial frames. Input is processed in the caller's buffer; only what the frame
that straddles the end of a read still needs is kept:

* an incomplete control line is kept (bounded by ``max_control_line``), with any
  separator whitespace collapsed, and glued to the next read only up to the
  next ``\\n``;
* an incomplete payload is kept as a list of chunks and completed from the next
  read without copying that read;
* after ``PING``/``PONG``/``+OK`` nats-server ignores everything up to ``\\n``,
  so nothing is kept at all.

Fidelity. The grammar is nats-server's byte state machine (server/parser.go),
verified against the real binary: op names are case-insensitive and matched
prefix by prefix (``PUBS`` or ``ZZZ`` fail on the first wrong byte, even before
the line ends); PUB/HPUB/SUB/UNSUB/-ERR need a space or tab after the name,
CONNECT/INFO do not; the first non-blank byte after the name starts the
argument even if it is ``\\n``; a ``\\r`` anywhere after the first argument byte
makes nats-server drop the byte before ``\\n`` (normally that ``\\r``). Where
nats-server's behaviour depends on how TCP split the input (its ``argBuf`` and
``clonePubArg`` paths), this parser always behaves as nats-server does for
unsplit input, so results never depend on split points.

Errors. The first framing error appends ``(OP_ERROR, ProtocolError)`` after the
ops parsed before it; the parser is dead from then on. A client ``-ERR``
produces ``(OP_CLIENT_ERR,)`` and also ends parsing (nats-server closes).
"""

from __future__ import annotations

import re

from natsd.proto.connect import ConnectOptions, decode_go_json, parse_connect
from natsd.proto.errors import (
    ERR_MAX_CONTROL_LINE,
    ERR_MAX_PAYLOAD,
    ERR_UNKNOWN_OP,
    ClosedReason,
    ProtocolError,
)

__all__ = [
    "OP_CLIENT_ERR",
    "OP_CONNECT",
    "OP_ERROR",
    "OP_HPUB",
    "OP_PING",
    "OP_PONG",
    "OP_PUB",
    "OP_SUB",
    "OP_UNSUB",
    "Parser",
]

OP_CONNECT = 1  # (OP_CONNECT, json: bytes)
OP_PUB = 2  # (OP_PUB, subject, reply | None, payload)
OP_HPUB = 3  # (OP_HPUB, subject, reply | None, header_len, data)
OP_SUB = 4  # (OP_SUB, subject, queue | None, sid)
OP_UNSUB = 5  # (OP_UNSUB, sid, max_msgs | None)
OP_PING = 6  # (OP_PING,)
OP_PONG = 7  # (OP_PONG,)
OP_CLIENT_ERR = 8  # (OP_CLIENT_ERR,)  client sent -ERR: close, no reply
OP_ERROR = 9  # (OP_ERROR, ProtocolError)  always last
OP_PUB_RUN = 10  # (OP_PUB_RUN, subject, reply | None, [payload, ...])  same control line

# Internal op kinds that emit nothing or are handled specially.
_K_INFO = 20
_K_OK = 21
_K_HMSG = 22

# How the argument is introduced after the op name.
_SEP = 0  # one or more blanks required (PUB, SUB, ...)
_OPT = 1  # blanks optional (CONNECT, INFO)
_TAIL = 2  # rest of the line ignored (PING, PONG, +OK)

_NAMES: tuple[tuple[bytes, int, int], ...] = (
    (b"PUB", OP_PUB, _SEP),
    (b"PING", OP_PING, _TAIL),
    (b"PONG", OP_PONG, _TAIL),
    (b"SUB", OP_SUB, _SEP),
    (b"UNSUB", OP_UNSUB, _SEP),
    (b"HPUB", OP_HPUB, _SEP),
    (b"HMSG", _K_HMSG, _SEP),
    (b"CONNECT", OP_CONNECT, _OPT),
    (b"INFO", _K_INFO, _OPT),
    (b"+OK", _K_OK, _TAIL),
    (b"-ERR", OP_CLIENT_ERR, _SEP),
)
_NEED = -1
_BAD = -2

_BLANKS = re.compile(rb"[ \t]*")
_SUB_SEPS = bytes.maketrans(b"\t\r\n", b"   ")
_CACHE_MAX = 4096
# A line that parses to exactly this entry, so the "previous line" slot never
# needs a None check in the hot loop.
_SEED_LINE = b"PUB _ 0\r\n"
_SEED_ENT: tuple[bytes, bytes | None, int, int] = (b"_", None, 0, -1)

_Ent = tuple[bytes, bytes | None, int, int]  # subject, reply, size, hdr (-1 for PUB)


def _size(b: bytes) -> int:
    # nats-server parseSize: 1..9 ASCII digits, else -1 (no sign, no '_').
    if len(b) <= 9 and b.isdigit():
        return int(b)
    return -1


def _words(arg: bytes) -> list[bytes]:
    if b"\t" in arg:
        arg = arg.replace(b"\t", b" ")
    return [w for w in arg.split(b" ") if w]


class Parser:
    """Incremental parser; see the module docstring."""

    __slots__ = (
        "_cache",
        "_connect",
        "_dead",
        "_hdr_ok",
        "_karg",
        "_kbuf",
        "_kcr",
        "_mcl",
        "_mpay",
        "_pchunks",
        "_pent",
        "_pgot",
        "_prev",
        "_prev_ent",
        "_runs",
        "_server_headers",
        "_skip",
    )

    def __init__(
        self,
        max_control_line: int = 4096,
        max_payload: int = 1048576,
        headers: bool = True,
        connect: ConnectOptions | None = None,
    ) -> None:
        """``headers``: the server supports headers. ``connect``: the options of
        a CONNECT already processed elsewhere (a worker continuing a connection
        the supervisor started); HPUB is accepted only when both sides agree."""
        self._mcl = max_control_line
        self._mpay = max_payload  # negative: no limit (jwt.NoLimit)
        self._server_headers = headers
        self._connect = connect
        self._hdr_ok = headers and connect is not None and connect.headers
        self._cache: dict[bytes, _Ent] = {}
        self._prev = _SEED_LINE
        self._prev_ent = _SEED_ENT
        self._dead = False
        self._kbuf = bytearray()  # kept partial control line
        self._karg = 0  # offset of the argument in _kbuf, 0 if not started
        self._kcr = 0  # 1 if a \r follows the first argument byte
        self._skip = 0  # op to emit once the ignored tail of PING/PONG/+OK ends
        self._pent: _Ent | None = None  # header of a payload in progress
        self._pchunks: list[bytes] = []
        self._pgot = 0  # payload bytes received, terminator included
        self._runs = False  # emit OP_PUB_RUN for consecutive identical PUB lines

    # -- public API --------------------------------------------------------

    @property
    def dead(self) -> bool:
        return self._dead

    @property
    def connect_options(self) -> ConnectOptions | None:
        """Options as of the last CONNECT parsed (or given), for header negotiation."""
        return self._connect

    @property
    def headers_enabled(self) -> bool:
        return self._hdr_ok

    def set_limits(self, max_control_line: int | None = None, max_payload: int | None = None) -> None:
        """Change limits (e.g. a JWT's max_payload after auth)."""
        if max_control_line is not None:
            self._mcl = max_control_line
        if max_payload is not None:
            self._mpay = max_payload
        self._reset_cache()

    def pending_bytes(self) -> int:
        """Bytes held for a partial frame (for memory accounting)."""
        return len(self._kbuf) + sum(len(c) for c in self._pchunks)

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple]:
        """Parse ``data``; return the complete ops (OP_ERROR, if any, last)."""
        return self._feed(data, 0)[0]

    def feed_first(self, data: bytes | bytearray | memoryview) -> tuple[list[tuple], bytes]:
        """Parse until one op is emitted; return it and every later raw byte.

        For the supervisor: it feeds reads until an op (normally CONNECT) comes
        out, then hands ``rest`` untouched to the worker's own Parser. Bytes of
        the op in progress are never part of ``rest``; INFO and +OK emit
        nothing, so they do not count. Returns ``([], b"")`` while incomplete;
        on error the op list ends with OP_ERROR and ``rest`` is empty.
        """
        return self._feed(data, 1)

    # -- driver ------------------------------------------------------------

    def _feed(self, data: bytes | bytearray | memoryview, limit: int) -> tuple[list[tuple], bytes]:
        ops: list[tuple] = []
        if self._dead:
            return ops, b""
        if type(data) is not bytes:
            data = bytes(data)  # we slice outputs from it; the caller may reuse its buffer
        pos = 0
        while pos < len(data) and (self._kbuf or self._skip or self._pent is not None):
            if self._pent is not None:
                pos = self._resume_payload(data, pos, ops)
            elif self._skip:
                pos = self._resume_skip(data, pos, ops)
            else:
                pos = self._resume_line(data, pos, ops, limit)
            if pos < 0:
                return ops, b""
            if limit and len(ops) >= limit:
                return ops, data[pos:]
        if pos < len(data):
            pos = self._run(data, pos, ops, limit)
            if limit and len(ops) >= limit and not self._dead:
                return ops, data[pos:]
        return ops, b""

    def _fail(self, ops: list[tuple], err: ProtocolError) -> int:
        ops.append((OP_ERROR, err))
        self._dead = True
        self._kbuf = bytearray()
        self._pent = None
        self._pchunks = []
        self._skip = 0
        return -1

    def _reset_cache(self) -> None:
        self._cache.clear()
        self._prev = _SEED_LINE
        self._prev_ent = _SEED_ENT

    # -- the hot loop ------------------------------------------------------

    def _run(self, data: bytes, pos: int, ops: list[tuple], limit: int) -> int:
        """Parse complete frames from ``pos``; keep any partial one. Returns the
        stop position (len(data) unless ``limit`` ops were reached), -1 if dead."""
        n = len(data)
        cache = self._cache
        append = ops.append
        prev = self._prev
        pent = self._prev_ent
        runs = self._runs
        run_ent = None
        run: list[bytes] = []
        while pos < n:
            if data.startswith(prev, pos):
                start = pos + len(prev)
                subject, reply, size, hdr = pent
            else:
                nl = data.find(b"\n", pos)
                if nl < 0:
                    self._prev, self._prev_ent = prev, pent
                    return self._keep_line(data, pos, ops)
                line = data[pos : nl + 1]
                ent = cache.get(line)
                if ent is None:
                    run_ent = None
                    self._prev, self._prev_ent = prev, pent
                    start, ent = self._slow(data, pos, ops)
                    if start < 0:
                        return -1 if self._dead else n
                    if ent is None:
                        pos = start
                        if limit and len(ops) >= limit:
                            return pos
                        if self._dead:
                            return -1
                        cache = self._cache  # a CONNECT may have reset it
                        prev, pent = self._prev, self._prev_ent
                        continue
                    if len(cache) >= _CACHE_MAX:
                        cache.clear()
                    if start == nl + 1:  # the line really ended at nl
                        cache[line] = ent
                        prev, pent = line, ent
                else:
                    start = nl + 1
                    prev, pent = line, ent
                subject, reply, size, hdr = ent
            end = start + size
            if end + 2 <= n:
                if data[end] != 13 or data[end + 1] != 10:
                    return self._fail(ops, ProtocolError(ERR_UNKNOWN_OP))
                if hdr < 0:
                    if runs:
                        if run_ent is pent:
                            run.append(data[start:end])
                        else:
                            run = [data[start:end]]
                            run_ent = pent
                            append((OP_PUB_RUN, subject, reply, run))
                    else:
                        append((OP_PUB, subject, reply, data[start:end]))
                else:
                    run_ent = None
                    append((OP_HPUB, subject, reply, hdr, data[start:end]))
                pos = end + 2
                if limit and len(ops) >= limit:
                    break
            else:
                self._prev, self._prev_ent = prev, pent
                self._pent = (subject, reply, size, hdr)
                self._pchunks = []
                self._pgot = 0
                return self._resume_payload(data, start, ops) if start < n else n
        self._prev, self._prev_ent = prev, pent
        return pos

    # -- control lines -----------------------------------------------------

    @staticmethod
    def _head(buf: bytes, pos: int) -> tuple[int, int, int]:
        """Recognise the op name at ``pos``: (kind, style, index after name),
        or kind _NEED (name cut short by the end of buf) / _BAD (unknown op)."""
        head = buf[pos : pos + 8].upper()
        avail = len(head)
        need = False
        for name, kind, style in _NAMES:
            ln = len(name)
            if avail >= ln:
                if head.startswith(name):
                    return kind, style, pos + ln
            elif name.startswith(head):
                need = True
        return (_NEED if need else _BAD), 0, 0

    def _locate(self, buf: bytes, pos: int) -> tuple[int, int, int, int]:
        """(kind, style, arg_start, line_end) for the line at pos.

        line_end is the index of the terminating ``\\n`` or -1 when the line
        is incomplete; kind may be _NEED or _BAD.
        """
        kind, style, i = self._head(buf, pos)
        if kind < 0:
            return kind, 0, 0, -1
        n = len(buf)
        if style == _TAIL:
            return kind, style, i, buf.find(b"\n", i)
        if style == _SEP:
            if i >= n:
                return kind, style, i, -1
            if buf[i] not in (32, 9):
                return _BAD, 0, 0, -1
        m = _BLANKS.match(buf, i)
        a = m.end() if m is not None else i
        if a >= n:
            return kind, style, a, -1
        return kind, style, a, buf.find(b"\n", a + 1)

    def _keep_line(self, buf: bytes, pos: int, ops: list[tuple]) -> int:
        """No complete line at pos: validate what is there, keep the minimum."""
        kind, style, a, _ = self._locate(buf, pos)
        n = len(buf)
        if kind == _BAD:
            return self._fail(ops, ProtocolError(ERR_UNKNOWN_OP))
        self._karg = self._kcr = 0
        if kind == _NEED:
            self._kbuf = bytearray(buf[pos:])
            return n
        if style == _TAIL:
            self._skip = kind
            return n
        name = buf[pos : pos + len(_name_of(kind))]
        if a >= n:
            # Name (and maybe blanks) only: one blank stands for any run of them.
            blank = style == _OPT or a > pos + len(name)
            self._kbuf = bytearray(name + b" " if blank else name)
            return n
        self._kcr = 1 if buf.find(b"\r", a + 1) >= 0 else 0
        if n - a - self._kcr > self._mcl:
            return self._mcl_exceeded(ops)
        self._kbuf = bytearray(name + b" " + buf[a:])
        self._karg = len(name) + 1
        return n

    def _mcl_exceeded(self, ops: list[tuple]) -> int:
        return self._fail(
            ops, ProtocolError(ERR_MAX_CONTROL_LINE, reason=ClosedReason.MaxControlLineExceeded)
        )

    def _resume_line(self, data: bytes, pos: int, ops: list[tuple], limit: int) -> int:
        j = data.find(b"\n", pos)
        kept = self._kbuf
        if j < 0:
            if self._karg:
                # Argument already started: append in place, O(1) amortised, so
                # a line trickled in byte by byte costs linear time.
                if not self._kcr and data.find(b"\r", pos) >= 0:
                    self._kcr = 1
                kept += memoryview(data)[pos:]
                if len(kept) - self._karg - self._kcr > self._mcl:
                    return self._mcl_exceeded(ops)
                return len(data)
            self._kbuf = bytearray()
            r = self._keep_line(bytes(kept) + data[pos:], 0, ops)
            return -1 if r < 0 else len(data)
        # Glue only up to this line's end; the rest of the read stays in place.
        self._kbuf = bytearray()
        self._karg = self._kcr = 0
        glued = bytes(kept) + data[pos : j + 1]
        r = self._run(glued, 0, ops, limit)
        if r < 0:
            return -1
        return j + 1 - (len(glued) - r)

    def _resume_skip(self, data: bytes, pos: int, ops: list[tuple]) -> int:
        j = data.find(b"\n", pos)
        if j < 0:
            return len(data)
        kind = self._skip
        self._skip = 0
        if kind != _K_OK:
            ops.append((kind,))
        return j + 1

    def _resume_payload(self, data: bytes, pos: int, ops: list[tuple]) -> int:
        ent = self._pent
        assert ent is not None
        size = ent[2]
        got = self._pgot
        total = size + 2
        take = min(total - got, len(data) - pos)
        if got < size:
            p = min(size - got, take)
            self._pchunks.append(data[pos : pos + p])
        # Check whichever terminator bytes have arrived, as nats-server does.
        for k in range(max(got, size), got + take):
            if data[pos + k - got] != (13 if k == size else 10):
                return self._fail(ops, ProtocolError(ERR_UNKNOWN_OP))
        got += take
        if got < total:
            self._pgot = got
            return len(data)
        chunks = self._pchunks
        payload = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        self._pent = None
        self._pchunks = []
        self._pgot = 0
        subject, reply, _, hdr = ent
        if hdr < 0:
            ops.append((OP_PUB, subject, reply, payload))
        else:
            ops.append((OP_HPUB, subject, reply, hdr, payload))
        return pos + take

    def _slow(self, data: bytes, pos: int, ops: list[tuple]) -> tuple[int, _Ent | None]:
        """Parse the frame at pos the general way.

        Returns (next_pos, None) after a non-PUB frame, (payload_start, ent)
        for PUB/HPUB, or (-1, None) when stopped (partial kept, or error)."""
        kind, style, a, le = self._locate(data, pos)
        if kind == _BAD:
            return self._fail(ops, ProtocolError(ERR_UNKNOWN_OP)), None
        if le < 0:
            self._keep_line(data, pos, ops)
            return -1, None
        if style == _TAIL:
            if kind != _K_OK:
                ops.append((kind,))
            return le + 1, None
        # nats-server drops the byte before \n if it saw any \r after the
        # first argument byte (normally that byte is the \r itself).
        ae = le
        if (le - 1 > a and data[le - 1] == 13) or data.find(b"\r", a + 1, le) >= 0:
            ae = le - 1
        if ae - a > self._mcl:
            return self._mcl_exceeded(ops), None
        arg = data[a:ae]
        nxt = le + 1
        if kind == OP_PUB:
            w = _words(arg)
            nw = len(w)
            ent: _Ent
            if nw == 2:
                ent = (w[0], None, _size(w[1]), -1)
            elif nw == 3:
                ent = (w[0], w[1], _size(w[2]), -1)
            else:
                return self._fail(ops, ProtocolError(None)), None
            return self._check_size(ent, nxt, ops)
        if kind == OP_HPUB:
            if not self._hdr_ok:
                return self._fail(ops, ProtocolError(None)), None
            w = _words(arg)
            nw = len(w)
            if nw == 3:
                subject, reply, hdr, size = w[0], None, _size(w[1]), _size(w[2])
            elif nw == 4:
                subject, reply, hdr, size = w[0], w[1], _size(w[2]), _size(w[3])
            else:
                return self._fail(ops, ProtocolError(None)), None
            if hdr < 0 or hdr > size:
                return self._fail(ops, ProtocolError(None)), None
            # An empty header block is no header: nats-server delivers it as MSG.
            return self._check_size((subject, reply, size, hdr or -1), nxt, ops)
        if kind == OP_SUB:
            w = arg.translate(_SUB_SEPS).split()
            if len(w) == 2:
                ops.append((OP_SUB, w[0], None, w[1]))
            elif len(w) == 3:
                ops.append((OP_SUB, w[0], w[1], w[2]))
            else:
                return self._fail(ops, ProtocolError(None)), None
            return nxt, None
        if kind == OP_UNSUB:
            w = arg.translate(_SUB_SEPS).split()
            if len(w) == 1:
                ops.append((OP_UNSUB, w[0], None))
            elif len(w) == 2:
                mx = _size(w[1])
                ops.append((OP_UNSUB, w[0], mx if mx > 0 else None))
            else:
                return self._fail(ops, ProtocolError(None)), None
            return nxt, None
        if kind == OP_CONNECT:
            ops.append((OP_CONNECT, arg))
            self._note_connect(arg)
            return nxt, None
        if kind == _K_INFO:
            try:
                doc = decode_go_json(arg)
            except ValueError:
                doc = []
            if doc is not None and not isinstance(doc, dict):
                return self._fail(ops, ProtocolError(None)), None
            return nxt, None
        if kind == _K_HMSG:
            # Client HMSG: nats-server's pubArg is empty, so this is a publish of
            # an empty payload to the empty subject, and must be followed by CRLF.
            return nxt, (b"", None, 0, -1)
        # -ERR from a client: nats-server closes silently (ClosedReason ParseError).
        ops.append((OP_CLIENT_ERR,))
        self._dead = True
        return -1, None

    def _check_size(self, ent: _Ent, nxt: int, ops: list[tuple]) -> tuple[int, _Ent | None]:
        size = ent[2]
        if size < 0:
            return self._fail(ops, ProtocolError(None)), None
        if 0 <= self._mpay < size:
            return self._fail(
                ops, ProtocolError(ERR_MAX_PAYLOAD, reason=ClosedReason.MaxPayloadExceeded)
            ), None
        return nxt, ent

    def _note_connect(self, arg: bytes) -> None:
        # Header support is negotiated by CONNECT and changes how HPUB parses,
        # possibly within this same read, so the parser tracks it itself.
        try:
            self._connect = parse_connect(arg, self._connect)
        except ProtocolError:
            return  # the caller closes the connection on this CONNECT
        hdr_ok = self._server_headers and self._connect.headers
        if hdr_ok != self._hdr_ok:
            self._hdr_ok = hdr_ok
            self._reset_cache()


def _name_of(kind: int) -> bytes:
    for name, k, _ in _NAMES:
        if k == kind:
            return name
    raise KeyError(kind)

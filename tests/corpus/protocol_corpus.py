"""Client->server protocol corpus: input bytes and the ops natsd must produce.

Each case is (name, input, expected) where expected is the op list of
``natsd.proto.parser`` for a parser created with ``Parser(max_control_line=128,
max_payload=64)`` after a CONNECT with headers enabled (every input here is
prefixed with CONNECT_PREFIX, whose own op is stripped before comparing).

The closing behaviour of every case (stay open; close with a given ``-ERR``;
close silently) is checked against the reference nats-server, configured with
the same limits, by tests/proto/test_proto_differential.py, so the corpus cannot
drift from the real server.
"""

from __future__ import annotations

from natsd.proto.errors import ClosedReason, ProtocolError
from natsd.proto.parser import (
    OP_CLIENT_ERR,
    OP_ERROR,
    OP_HPUB,
    OP_PING,
    OP_PONG,
    OP_PUB,
    OP_SUB,
    OP_UNSUB,
)

MAX_CONTROL_LINE = 128
MAX_PAYLOAD = 64
CONNECT_PREFIX = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n'

UNKNOWN = (OP_ERROR, ProtocolError("Unknown Protocol Operation"))
SILENT = (OP_ERROR, ProtocolError(None))
MAXPAY = (
    OP_ERROR,
    ProtocolError("Maximum Payload Violation", reason=ClosedReason.MaxPayloadExceeded),
)
MAXLINE = (
    OP_ERROR,
    ProtocolError("maximum control line exceeded", reason=ClosedReason.MaxControlLineExceeded),
)

CASES: list[tuple[str, bytes, list[tuple]]] = [
    # -- well formed ---------------------------------------------------------
    ("pub", b"PUB foo 2\r\nhi\r\n", [(OP_PUB, b"foo", None, b"hi")]),
    ("pub-reply", b"PUB foo r.1 2\r\nhi\r\n", [(OP_PUB, b"foo", b"r.1", b"hi")]),
    ("pub-empty", b"PUB foo 0\r\n\r\n", [(OP_PUB, b"foo", None, b"")]),
    ("pub-crlf-in-payload", b"PUB a 4\r\n\r\n\r\n\r\n", [(OP_PUB, b"a", None, b"\r\n\r\n")]),
    ("pub-lowercase", b"pUb foo 1\nx\r\n", [(OP_PUB, b"foo", None, b"x")]),
    ("pub-tabs", b"PUB\tfoo\t\t1 \t\r\nx\r\n", [(OP_PUB, b"foo", None, b"x")]),
    ("pub-leading-zeros", b"PUB a 000000002\r\nhi\r\n", [(OP_PUB, b"a", None, b"hi")]),
    ("pub-twice", b"PUB a 1\r\nx\r\nPUB a 1\r\ny\r\n",
     [(OP_PUB, b"a", None, b"x"), (OP_PUB, b"a", None, b"y")]),
    ("hpub", b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
     [(OP_HPUB, b"foo", None, 12, b"NATS/1.0\r\n\r\nhi")]),
    ("hpub-reply", b"HPUB foo r 12 12\r\nNATS/1.0\r\n\r\n\r\n",
     [(OP_HPUB, b"foo", b"r", 12, b"NATS/1.0\r\n\r\n")]),
    ("sub", b"SUB foo 1\r\n", [(OP_SUB, b"foo", None, b"1")]),
    ("sub-queue", b"SUB foo q 1\r\n", [(OP_SUB, b"foo", b"q", b"1")]),
    ("sub-arg-starts-with-newline", b"SUB \nfoo 1\n", [(OP_SUB, b"foo", None, b"1")]),
    ("sub-cr-mid-line", b"SUB foo\r 1\r\n", [(OP_SUB, b"foo", None, b"1")]),
    ("unsub", b"UNSUB 1\r\n", [(OP_UNSUB, b"1", None)]),
    ("unsub-max", b"UNSUB 1 5\r\n", [(OP_UNSUB, b"1", 5)]),
    ("unsub-bad-max", b"UNSUB 1 x\r\n", [(OP_UNSUB, b"1", None)]),
    ("ping-pong", b"PING\r\nPONG\r\n", [(OP_PING,), (OP_PONG,)]),
    ("ping-tail", b"PINGXYZ\r\n", [(OP_PING,)]),
    ("ping-lf", b"ping\n", [(OP_PING,)]),
    ("ok-ignored", b"+OK\r\nPING\r\n", [(OP_PING,)]),
    ("info-ignored", b"INFO {}\r\nPING\r\n", [(OP_PING,)]),
    ("hmsg-from-client", b"HMSG foo 1 2 2\r\n\r\nPING\r\n",
     [(OP_PUB, b"", None, b""), (OP_PING,)]),
    ("connect-no-space", b"CONNECT{}\r\n", [(1, b"{}")]),
    ("pub-max-payload-exact", b"PUB a 64\r\n" + b"x" * 64 + b"\r\n",
     [(OP_PUB, b"a", None, b"x" * 64)]),
    ("line-at-limit", b"SUB " + b"a" * 126 + b" 1\r\n", [(OP_SUB, b"a" * 126, None, b"1")]),
    # -- malformed -----------------------------------------------------------
    ("unknown-op", b"ZZZ\r\n", [UNKNOWN]),
    ("pubs", b"PUBS\r\n", [UNKNOWN]),
    ("subzzz", b"SUBZZZ\r\n", [UNKNOWN]),
    ("msg-from-client", b"MSG foo 1 2\r\nhi\r\n", [UNKNOWN]),
    ("empty-line", b"\r\n", [UNKNOWN]),
    ("leading-space", b" PING\r\n", [UNKNOWN]),
    ("unsub-no-args", b"UNSUB\r\n", [UNKNOWN]),
    ("err-no-space", b"-ERR\r\n", [UNKNOWN]),
    ("bad-terminator", b"PUB foo 2\r\nhiX\r\n", [UNKNOWN]),
    ("bad-terminator-lf", b"PUB foo 2\r\nhi\n", [UNKNOWN]),
    ("ops-before-error", b"PING\r\nSUB a 1\r\nZZZ\r\n",
     [(OP_PING,), (OP_SUB, b"a", None, b"1"), UNKNOWN]),
    ("pub-missing-size", b"PUB foo\r\n", [SILENT]),
    ("pub-bad-size", b"PUB foo x\r\nhi\r\n", [SILENT]),
    ("pub-negative", b"PUB foo -1\r\n", [SILENT]),
    ("pub-plus", b"PUB foo +2\r\nhi\r\n", [SILENT]),
    ("pub-ten-digits", b"PUB a 0000000002\r\nhi\r\n", [SILENT]),
    ("pub-four-args", b"PUB a b c 1\r\nx\r\n", [SILENT]),
    ("hpub-hdr-gt-total", b"HPUB foo 3 2\r\n", [SILENT]),
    ("hpub-bad-total", b"HPUB foo 2 x\r\n", [SILENT]),
    ("hpub-two-args", b"HPUB foo 2\r\n", [SILENT]),
    ("sub-one-arg", b"SUB foo\r\n", [SILENT]),
    ("sub-four-args", b"SUB a b c d\r\n", [SILENT]),
    ("sub-cr-drops-last", b"SUB foo\r 1\n", [SILENT]),
    ("unsub-three-args", b"UNSUB 1 2 3\r\n", [SILENT]),
    ("info-bad-json", b"INFO {bad\r\n", [SILENT]),
    ("pub-max-payload", b"PUB a 65\r\n", [MAXPAY]),
    ("hpub-max-payload", b"HPUB a 2 65\r\n", [MAXPAY]),
    ("line-over-limit", b"SUB " + b"a" * 127 + b" 1\r\n", [MAXLINE]),
    ("line-over-limit-bad-args", b"PUB " + b"a " * 70 + b"\r\n", [MAXLINE]),
    ("client-err", b"-ERR 'boom'\r\nPING\r\n", [(OP_CLIENT_ERR,)]),
]

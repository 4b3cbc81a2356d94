"""Encoders for server->client protocol lines, byte-exact with nats-server.

Everything here returns ``bytes`` ready for ``writelines``. Payloads are never
copied into the header: callers write ``msg_header(...)``, the payload and
``CRLF`` as separate pieces (or splice them into one bytearray).

INFO is ``INFO <json> \\r\\n``: nats-server appends a space before CRLF, and its
encoding/json output is compact and escapes ``<``, ``>``, ``&``, U+2028 and
U+2029 as ``\\u003c``-style sequences. msgspec already matches Go for every
other character (``\\b``/``\\f`` short forms as in Go >= 1.22, other control
characters as ``\\u00XX``, DEL and non-ASCII verbatim), so only those five need
rewriting; they can only occur inside JSON strings, so a byte replace is safe.
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = [
    "CRLF",
    "OK",
    "PING",
    "PONG",
    "hmsg_header",
    "info_line",
    "json_go",
    "msg_header",
    "no_responders_hmsg",
]

CRLF = b"\r\n"
PING = b"PING\r\n"
PONG = b"PONG\r\n"
OK = b"+OK\r\n"

_encoder = msgspec.json.Encoder()
_GO_ESCAPES = (
    (b"<", b"\\u003c"),
    (b">", b"\\u003e"),
    (b"&", b"\\u0026"),
    ("\u2028".encode(), b"\\u2028"),
    ("\u2029".encode(), b"\\u2029"),
)


def json_go(obj: Any) -> bytes:
    """Compact JSON as Go's ``json.Marshal`` writes it (HTML-safe escapes)."""
    out = _encoder.encode(obj)
    for raw, esc in _GO_ESCAPES:
        if raw in out:
            out = out.replace(raw, esc)
    return out


def info_line(info: dict[str, Any]) -> bytes:
    """``INFO {json} \\r\\n``; keys are written in the dict's order."""
    return b"INFO " + json_go(info) + b" \r\n"


def msg_header(subject: bytes, sid: bytes, reply: bytes | None, size: int) -> bytes:
    """``MSG <subject> <sid> [reply] <size>\\r\\n``."""
    if reply:
        return b"MSG %b %b %b %d\r\n" % (subject, sid, reply, size)
    return b"MSG %b %b %d\r\n" % (subject, sid, size)


def hmsg_header(
    subject: bytes, sid: bytes, reply: bytes | None, hdr_len: int, total: int
) -> bytes:
    """``HMSG <subject> <sid> [reply] <hdr_len> <total>\\r\\n``."""
    if reply:
        return b"HMSG %b %b %b %d %d\r\n" % (subject, sid, reply, hdr_len, total)
    return b"HMSG %b %b %d %d\r\n" % (subject, sid, hdr_len, total)


def no_responders_hmsg(reply: bytes, sid: bytes, orig_subject: bytes) -> bytes:
    """The complete 503 status message sent to the requester's reply subscription.

    Header length equals total length (empty payload): 32 + len(orig_subject).
    """
    hdr = b"NATS/1.0 503\r\nNats-Subject: " + orig_subject + b"\r\n\r\n"
    n = len(hdr)
    return b"HMSG %b %b %d %d\r\n%b\r\n" % (reply, sid, n, n, hdr)

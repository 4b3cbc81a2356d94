"""The closed error vocabulary of the NATS client protocol.

Every way a client connection can fail is named here, with the exact text that
nats-server puts inside ``-ERR '...'``. Nothing else in natsd may invent an error
string for the wire: callers raise or return a :class:`ProtocolError` built from
these constants, and the connection glue writes ``err.wire()`` (when ``text`` is
not None) and then closes when ``err.close`` is set.

Two details matter for being indistinguishable from nats-server:

* Some failures close the connection *without* any ``-ERR`` (bad PUB/SUB
  arguments, malformed CONNECT JSON, a client ``-ERR``, slow consumers). Those
  carry ``text=None``.
* Permission errors quote the subject with Go's ``%q`` verb
  (``strconv.Quote``). :func:`go_quote` reproduces it byte for byte, including
  the treatment of invalid UTF-8, so that the same input yields the same line.

:class:`ClosedReason` mirrors nats-server's ``ClosedState``; ``.text`` is what
``/connz`` reports in ``reason`` (``ClosedState.String()`` in monitor.go).
"""

from __future__ import annotations

import enum

__all__ = [
    "ERR_ACCOUNT_EXPIRED",
    "ERR_AUTH_EXPIRED",
    "ERR_AUTH_REVOKED",
    "ERR_AUTH_TIMEOUT",
    "ERR_AUTH_VIOLATION",
    "ERR_INVALID_PROTOCOL",
    "ERR_INVALID_PUB_SUBJECT",
    "ERR_INVALID_SUBJECT",
    "ERR_MAX_ACCOUNT_CONNS",
    "ERR_MAX_CONNS",
    "ERR_MAX_CONTROL_LINE",
    "ERR_MAX_PAYLOAD",
    "ERR_MAX_SUBS",
    "ERR_NO_RESPONDERS_HEADERS",
    "ERR_STALE",
    "ERR_TLS_REQUIRED",
    "ERR_UNKNOWN_OP",
    "ClosedReason",
    "ProtocolError",
    "err_line",
    "go_quote",
    "pub_reply_violation",
    "pub_violation",
    "sub_tokens_violation",
    "sub_violation",
]

# Exact texts (spec §1.8); each comment says whether nats-server closes after it.
ERR_AUTH_VIOLATION = "Authorization Violation"  # close
ERR_AUTH_TIMEOUT = "Authentication Timeout"  # close
ERR_AUTH_EXPIRED = "User Authentication Expired"  # close
ERR_ACCOUNT_EXPIRED = "Account Authentication Expired"  # close
ERR_AUTH_REVOKED = "User Authentication Revoked"  # close
ERR_MAX_PAYLOAD = "Maximum Payload Violation"  # close
ERR_MAX_CONTROL_LINE = "maximum control line exceeded"  # close
ERR_UNKNOWN_OP = "Unknown Protocol Operation"  # close
ERR_INVALID_SUBJECT = "Invalid Subject"  # no close
ERR_INVALID_PUB_SUBJECT = "Invalid Publish Subject"  # no close
ERR_INVALID_PROTOCOL = "invalid client protocol"  # close
ERR_NO_RESPONDERS_HEADERS = "no responders requires headers support"  # close
ERR_MAX_SUBS = "maximum subscriptions exceeded"  # no close
ERR_MAX_CONNS = "maximum connections exceeded"  # close
ERR_MAX_ACCOUNT_CONNS = "maximum account active connections exceeded"  # close
ERR_STALE = "Stale Connection"  # close
ERR_TLS_REQUIRED = "Secure Connection - TLS Required"  # close


class ClosedReason(enum.Enum):
    """Why a connection ended; values are nats-server's ``ClosedState.String()``."""

    ClientClosed = "Client Closed"
    AuthenticationTimeout = "Authentication Timeout"
    AuthenticationViolation = "Authentication Failure"
    TLSHandshakeError = "TLS Handshake Failure"
    SlowConsumerPendingBytes = "Slow Consumer (Pending Bytes)"
    SlowConsumerWriteDeadline = "Slow Consumer (Write Deadline)"
    WriteError = "Write Error"
    ReadError = "Read Error"
    ParseError = "Parse Error"
    StaleConnection = "Stale Connection"
    ProtocolViolation = "Protocol Violation"
    BadClientProtocolVersion = "Bad Client Protocol Version"
    WrongPort = "Incorrect Port"
    MaxAccountConnectionsExceeded = "Maximum Account Connections Exceeded"
    MaxConnectionsExceeded = "Maximum Connections Exceeded"
    MaxPayloadExceeded = "Maximum Message Payload Exceeded"
    MaxControlLineExceeded = "Maximum Control Line Exceeded"
    MaxSubscriptionsExceeded = "Maximum Subscriptions Exceeded"
    DuplicateRoute = "Duplicate Route"
    RouteRemoved = "Route Removed"
    ServerShutdown = "Server Shutdown"
    AuthenticationExpired = "Authentication Expired"
    WrongGateway = "Wrong Gateway"
    MissingAccount = "Missing Account"
    Revocation = "Credentials Revoked"
    InternalClient = "Internal Client"
    MsgHeaderViolation = "Message Header Violation"
    NoRespondersRequiresHeaders = "No Responders Requires Headers"
    ClusterNameConflict = "Cluster Name Conflict"
    DuplicateRemoteLeafnodeConnection = "Duplicate Remote LeafNode Connection"
    DuplicateClientID = "Duplicate Client ID"
    DuplicateServerName = "Duplicate Server Name"
    MinimumVersionRequired = "Minimum Version Required"
    ClusterNamesIdentical = "Cluster Names Identical"
    Kicked = "Kicked"
    ProxyNotTrusted = "Proxy Not Trusted"
    ProxyRequired = "Proxy Required"

    @property
    def text(self) -> str:
        return self.value


class ProtocolError(Exception):
    """A protocol failure: what to send (``text``) and whether to close.

    ``text`` is None when nats-server closes silently. ``reason`` is the
    ClosedReason to record when ``close`` is true.
    """

    __slots__ = ("close", "reason", "text")

    def __init__(
        self,
        text: str | None,
        close: bool = True,
        reason: ClosedReason = ClosedReason.ProtocolViolation,
    ) -> None:
        super().__init__(text if text is not None else reason.text)
        self.text = text
        self.close = close
        self.reason = reason

    def wire(self) -> bytes:
        """The ``-ERR`` line, or ``b""`` for a silent close."""
        if self.text is None:
            return b""
        return err_line(self.text)

    def __repr__(self) -> str:
        return f"ProtocolError({self.text!r}, close={self.close}, reason={self.reason.name})"

    def __eq__(self, other: object) -> bool:
        # Value semantics so that op lists from different feeds compare equal.
        if not isinstance(other, ProtocolError):
            return NotImplemented
        return (self.text, self.close, self.reason) == (other.text, other.close, other.reason)

    def __hash__(self) -> int:
        return hash((self.text, self.close, self.reason))


def err_line(text: str) -> bytes:
    """``-ERR '<text>'\\r\\n``; text is encoded as UTF-8 (Go strings are bytes)."""
    return b"-ERR '" + text.encode("utf-8", "surrogateescape") + b"'\r\n"


_SIMPLE_ESC = {7: "\\a", 8: "\\b", 12: "\\f", 10: "\\n", 13: "\\r", 9: "\\t", 11: "\\v"}


def _utf8_len(lead: int) -> int:
    if lead < 0xC2:
        return 0  # continuation byte or overlong lead: never starts a rune
    if lead < 0xE0:
        return 2
    if lead < 0xF0:
        return 3
    if lead < 0xF5:
        return 4
    return 0


def go_quote(s: str | bytes) -> str:
    """Go ``strconv.Quote``: what nats-server's ``%q`` makes of a subject.

    A str is first encoded as UTF-8 (lone surrogates from ``surrogateescape``
    turn back into the raw bytes they stood for), because Go quotes bytes: each
    byte that is not part of a valid UTF-8 sequence becomes ``\\xHH``.
    """
    raw = s.encode("utf-8", "surrogateescape") if isinstance(s, str) else bytes(s)
    if raw.isascii():
        text = raw.decode("ascii")
        if text.isprintable() and '"' not in text and "\\" not in text:
            return '"' + text + '"'
    out = ['"']
    i, n = 0, len(raw)
    while i < n:
        b = raw[i]
        if b < 0x80:
            if b == 0x22:
                out.append('\\"')
            elif b == 0x5C:
                out.append("\\\\")
            elif 0x20 <= b < 0x7F:
                out.append(chr(b))
            elif b in _SIMPLE_ESC:
                out.append(_SIMPLE_ESC[b])
            else:
                out.append(f"\\x{b:02x}")
            i += 1
            continue
        size = _utf8_len(b)
        ch = None
        if size and i + size <= n:
            try:
                ch = raw[i : i + size].decode("utf-8")
            except UnicodeDecodeError:
                ch = None
        if ch is None:
            # Go's DecodeRune yields (RuneError, 1): one escape per bad byte.
            out.append(f"\\x{b:02x}")
            i += 1
            continue
        i += size
        cp = ord(ch)
        if ch.isprintable():
            out.append(ch)
        elif cp < 0x10000:
            out.append(f"\\u{cp:04x}")
        else:
            out.append(f"\\U{cp:08x}")
    out.append('"')
    return "".join(out)


def _q(s: str | bytes) -> str:
    return go_quote(s)


def pub_violation(subject: str | bytes) -> bytes:
    """``-ERR 'Permissions Violation for Publish to "<subject>"'``."""
    return err_line(f"Permissions Violation for Publish to {_q(subject)}")


def pub_reply_violation(reply: str | bytes) -> bytes:
    """``-ERR 'Permissions Violation for Publish with Reply of "<reply>"'``."""
    return err_line(f"Permissions Violation for Publish with Reply of {_q(reply)}")


def sub_violation(
    subject: str | bytes, queue: str | bytes | None = None, sid: str | bytes | None = None
) -> bytes:
    """Subscription denied; with ``sid`` the variant nats-server sends when a
    config reload removes an existing subscription."""
    text = f"Permissions Violation for Subscription to {_q(subject)}"
    if queue:
        text += f" using queue {_q(queue)}"
    if sid is not None:
        text += f" (sid {_q(sid)})"
    return err_line(text)


def sub_tokens_violation(subject: str | bytes) -> bytes:
    """SUB with more tokens than ``max_sub_tokens``."""
    return err_line(f"Permissions Violation for Subscription to {_q(subject)}, too many tokens")

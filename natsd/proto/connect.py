"""CONNECT options, decoded the way nats-server's ``json.Unmarshal`` does it.

nats-server unmarshals the CONNECT JSON *on top of* the connection's current
options (``defaultOpts`` on the first CONNECT, the previous options on a later
one), so an absent key keeps its old value and ``null`` changes nothing. Go's
decoder is the reference, and it differs from a plain ``json.loads`` in ways a
client can observe (all verified against nats-server 2.15 with raw sockets):

* Keys match struct tags case-insensitively (``"Verbose":false`` works); when a
  key appears twice the last one wins.
* A known key with the wrong JSON type (``"verbose":"yes"``, ``"protocol":"1"``,
  ``"protocol":1.5``, ``"name":5``, ``"echo":1``) fails the whole CONNECT: the
  connection is closed without ``-ERR``. Unknown keys are ignored whatever their
  type.
* The document must be an object or ``null``; trailing garbage fails.
* Invalid UTF-8 inside strings is accepted and becomes U+FFFD, byte by byte.

All of those failures raise :class:`ProtocolError` with ``text=None``.
Semantic checks that nats-server makes after authentication (protocol level,
no_responders without headers) live in :func:`validate_connect`, so the caller
can run them in the same order as nats-server: auth first, then the forbidden
``account`` keys, then ``validate_connect``.
"""

from __future__ import annotations

import codecs
from typing import Any

import msgspec

from natsd.proto.errors import (
    ERR_INVALID_PROTOCOL,
    ERR_NO_RESPONDERS_HEADERS,
    ClosedReason,
    ProtocolError,
)

__all__ = ["ConnectOptions", "decode_go_json", "parse_connect", "validate_connect"]


def _go_replace(err: UnicodeError) -> tuple[str, int]:
    # Go's decoder substitutes one U+FFFD per invalid byte (DecodeRune returns
    # size 1), while Python's "replace" collapses a maximal bad run.
    assert isinstance(err, UnicodeDecodeError)
    return "\ufffd", err.start + 1


codecs.register_error("natsd-go-replace", _go_replace)

_decoder = msgspec.json.Decoder()


def decode_go_json(data: bytes) -> Any:
    """Decode JSON accepting invalid UTF-8 as Go does; raise ValueError if malformed.

    Nesting deeper than Python's recursion limit (a few hundred levels fit in
    a 4 KiB CONNECT) is refused as malformed: Go's decoder would accept it,
    but no real client sends it."""
    try:
        return _decoder.decode(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except msgspec.DecodeError as exc:
        if "UTF-8" not in str(exc):
            return _lenient(data)
    fixed = data.decode("utf-8", "natsd-go-replace").encode("utf-8")
    try:
        return _decoder.decode(fixed)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    except msgspec.DecodeError:
        return _lenient(fixed)


def _lenient(data: bytes) -> Any:
    """What msgspec refuses but Go's decoder takes: a lone UTF-16 surrogate
    escape (``"\\ud800"``, which JavaScript's JSON.stringify can produce;
    Go reads U+FFFD) and numbers out of float range (``1e999`` in a key
    nobody reads). Anything else still malformed raises ValueError."""
    import json

    def no_constant(name: str) -> Any:
        raise ValueError(f"invalid character in literal {name}")  # NaN, Infinity: not JSON

    try:
        doc = json.loads(data.decode("utf-8", "natsd-go-replace"), parse_constant=no_constant)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
    if isinstance(doc, dict):
        doc = {_no_surrogates(k): _no_surrogates(v) if isinstance(v, str) else v for k, v in doc.items()}
    return doc


def _no_surrogates(s: str) -> str:
    # Lone surrogates become U+FFFD, as Go decodes them; paired ones were
    # already joined by the decoder.
    return s.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class ConnectOptions(msgspec.Struct, kw_only=True):
    """The client's CONNECT options with nats-server's defaults."""

    verbose: bool = True
    pedantic: bool = True
    echo: bool = True
    tls_required: bool = False
    headers: bool = False
    no_responders: bool = False
    protocol: int = 0
    user: str | None = None
    password: str | None = None  # wire key "pass"
    auth_token: str | None = None
    nkey: str | None = None
    sig: str | None = None
    jwt: str | None = None
    name: str | None = None
    lang: str | None = None
    version: str | None = None
    account: str | None = None
    new_account: bool = False
    proxy_sig: str | None = None
    remote_account: str | None = None

    @property
    def forbidden(self) -> bool:
        """``account``/``new_account`` present: Authorization Violation (CVE-2022-24450)."""
        return bool(self.account) or self.new_account


# wire key -> (attribute, expected type). Types are checked strictly because Go
# fails the whole unmarshal on a mismatch; bool is not an int in JSON.
_FIELDS: dict[str, tuple[str, type]] = {
    "echo": ("echo", bool),
    "verbose": ("verbose", bool),
    "pedantic": ("pedantic", bool),
    "tls_required": ("tls_required", bool),
    "nkey": ("nkey", str),
    "jwt": ("jwt", str),
    "sig": ("sig", str),
    "auth_token": ("auth_token", str),
    "user": ("user", str),
    "pass": ("password", str),
    "name": ("name", str),
    "lang": ("lang", str),
    "version": ("version", str),
    "protocol": ("protocol", int),
    "account": ("account", str),
    "new_account": ("new_account", bool),
    "headers": ("headers", bool),
    "no_responders": ("no_responders", bool),
    "remote_account": ("remote_account", str),
    "proxy_sig": ("proxy_sig", str),
    # Route/leaf-only *SubjectPermission fields: only their shape matters here.
    "import": ("", dict),
    "export": ("", dict),
}
_FOLDED = {k.lower(): k for k in _FIELDS}
_INT64 = 1 << 63


def _bad() -> ProtocolError:
    return ProtocolError(None, close=True, reason=ClosedReason.ProtocolViolation)


def _check_permission(value: Any) -> None:
    # SubjectPermission{Allow, Deny []string}; keys fold like everywhere else.
    for k, v in value.items():
        if k.lower() in ("allow", "deny") and v is not None:
            if not isinstance(v, list) or any(x is not None and not isinstance(x, str) for x in v):
                raise _bad()


def parse_connect(data: bytes, base: ConnectOptions | None = None) -> ConnectOptions:
    """Decode a CONNECT argument onto ``base`` (defaults when None).

    Raises ProtocolError(text=None, close=True) for anything nats-server's
    ``json.Unmarshal`` rejects. ``base`` is never modified.
    """
    try:
        doc = decode_go_json(bytes(data))
    except ValueError:
        raise _bad() from None
    opts = ConnectOptions() if base is None else msgspec.structs.replace(base)
    if doc is None:
        return opts
    if not isinstance(doc, dict):
        raise _bad()
    for key, value in doc.items():
        wire = key if key in _FIELDS else _FOLDED.get(key.lower())
        if wire is None or value is None:
            continue
        attr, typ = _FIELDS[wire]
        if typ is bool:
            ok = value is True or value is False
        elif typ is int:
            ok = type(value) is int and -_INT64 <= value < _INT64
        else:
            ok = isinstance(value, typ)
        if not ok:
            raise _bad()
        if typ is dict:
            _check_permission(value)
        else:
            setattr(opts, attr, value)
    return opts


def validate_connect(c: ConnectOptions, server_headers: bool = True) -> ProtocolError | None:
    """The post-auth checks of nats-server's processConnect, in its order."""
    if c.protocol < 0 or c.protocol > 1:
        return ProtocolError(
            ERR_INVALID_PROTOCOL, close=True, reason=ClosedReason.BadClientProtocolVersion
        )
    if c.no_responders and not (server_headers and c.headers):
        return ProtocolError(
            ERR_NO_RESPONDERS_HEADERS, close=True, reason=ClosedReason.NoRespondersRequiresHeaders
        )
    return None

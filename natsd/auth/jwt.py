"""NATS JWTs: a strict decoder for operator, account, user and activation claims.

Theory of operation
-------------------
A NATS JWT is ``b64url(header) . b64url(payload) . b64url(signature)`` (no padding,
at most 1 MiB). The header must say ``typ: JWT`` (any case) and ``alg: ed25519-nkey``
(v2) or ``ed25519`` (v1). The signer is the claim's ``iss``, an nkey public key, and
the signature is Ed25519 over the ASCII bytes ``header_b64 "." payload_b64`` for v2
claims, or over ``payload_b64`` alone for v1 claims (nats-io/jwt decides the version
from the *payload*: a top-level ``type`` means v1, else ``nats.version``).

:func:`decode` runs in a fixed order and fails closed with :class:`JwtError`:

1. size, three segments, canonical unpadded base64url in every segment (we re-encode
   and compare, so a flipped trailing bit can never yield a second spelling of the
   same signature);
2. header ``typ``/``alg``; payload is a JSON object; claim version <= 2;
3. ``iss`` is a well-formed nkey of a role allowed to sign this claim type (checked
   *before* any curve arithmetic: GHSA-g33f-6538-grxh), and ``sub`` is a key of the
   role the claim describes (stricter than nats-io/jwt, which never checks ``sub``);
4. Ed25519 verification; 5. conversion into the typed msgspec Structs below.

Conversion mirrors Go's ``encoding/json`` where behaviour is observable: a JSON
``null`` is a no-op (we drop null members before conversion), an absent number is 0
(an account without ``limits`` reads ``conn: 0`` and admits nobody; see fixture F),
user-scope templates and v1 user claims default their ``subs/data/payload`` to -1 as
the Go constructors do, and ``src`` may be a list or a comma separated string.

Why not PyJWT: its algorithm registry is a process-global mutable table, it knows
neither the case-insensitive ``typ`` rule nor v1's payload-only signing input, and it
would still leave all NATS claim semantics to us. Owning ~40 lines of framing is
cheaper than adapting it. ``nkeys.KeyPair`` cannot verify without a seed, so the
Ed25519 check uses PyNaCl (the library ``nkeys`` is built on) after we validate the
key envelope ourselves (prefix byte and ``nkeys.crc16``).

Semantic validation (subjects, CIDRs, imports, activation binding...) is in
:mod:`natsd.auth.jwt_validate`; time checks are :func:`is_expired` and
:func:`not_yet_valid`, which take the clock as ``now`` (unix seconds).
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal

import msgspec
import nacl.exceptions
import nacl.signing
import nkeys

__all__ = [
    "MAX_TOKEN_SIZE",
    "NO_LIMIT",
    "AccountClaims",
    "AccountData",
    "AccountLimits",
    "ActivationClaims",
    "ActivationData",
    "Claims",
    "Export",
    "GenericClaims",
    "Import",
    "JwtError",
    "OperatorClaims",
    "OperatorData",
    "Permission",
    "Permissions",
    "ResponsePermission",
    "TimeRange",
    "UserClaims",
    "UserData",
    "UserScope",
    "UserTemplate",
    "decode",
    "decode_key",
    "is_expired",
    "is_public_key",
    "not_yet_valid",
    "parse_creds",
]

MAX_TOKEN_SIZE = 1 << 20
NO_LIMIT = -1

PREFIX_OPERATOR = nkeys.PREFIX_BYTE_OPERATOR
PREFIX_ACCOUNT = nkeys.PREFIX_BYTE_ACCOUNT
PREFIX_USER = nkeys.PREFIX_BYTE_USER

JwtReason = Literal[
    "malformed",  # framing, base64, JSON shape, field types
    "too_large",
    "bad_header",  # typ is not JWT or alg is not an nkey algorithm
    "unsupported_version",  # version > 2 or an unknown version for a known claim type
    "unsupported_type",  # server/cluster claims
    "bad_issuer",  # iss is not a key of a role allowed to sign this claim type
    "bad_subject",  # sub is not a key of the role the claim describes
    "bad_signature",
]


class JwtError(Exception):
    """A token that must not be trusted. ``reason`` is one of :data:`JwtReason`."""

    def __init__(self, reason: JwtReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: JwtReason = reason
        self.detail = detail


class _S(msgspec.Struct, frozen=True, kw_only=True):
    """Unknown members are ignored, as Go does, so newer claims still decode."""


# -- permissions and user limits ----------------------------------------------------


class Permission(_S, frozen=True, kw_only=True):
    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()


class ResponsePermission(_S, frozen=True, kw_only=True):
    max: int = 0
    ttl: int = 0  # nanoseconds


class Permissions(_S, frozen=True, kw_only=True):
    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ResponsePermission | None = None


class TimeRange(_S, frozen=True, kw_only=True):
    start: str = ""
    end: str = ""


class UserTemplate(_S, frozen=True, kw_only=True):
    """Go's ``UserPermissionLimits``: what a user JWT (or a user scope) grants."""

    pub: Permission = Permission()
    sub: Permission = Permission()
    resp: ResponsePermission | None = None
    src: tuple[str, ...] = ()
    times: tuple[TimeRange, ...] = ()
    times_location: str = ""
    subs: int = 0
    data: int = 0
    payload: int = 0
    bearer_token: bool = False
    proxy_required: bool = False
    allowed_connection_types: tuple[str, ...] = ()

    @property
    def permissions(self) -> Permissions:
        return Permissions(pub=self.pub, sub=self.sub, resp=self.resp)


class UserData(UserTemplate, frozen=True, kw_only=True):
    issuer_account: str = ""
    tags: tuple[str, ...] = ()
    type: str = "user"
    version: int = 0


class UserScope(_S, frozen=True, kw_only=True):
    kind: Literal["user_scope"]
    key: str
    role: str = ""
    template: UserTemplate = UserTemplate(subs=NO_LIMIT, data=NO_LIMIT, payload=NO_LIMIT)
    description: str = ""


# -- accounts -------------------------------------------------------------------------


class AccountLimits(_S, frozen=True, kw_only=True):
    subs: int = 0
    data: int = 0
    payload: int = 0
    imports: int = 0
    exports: int = 0
    wildcards: bool = False
    disallow_bearer: bool = False
    conn: int = 0
    leaf: int = 0


class Export(_S, frozen=True, kw_only=True):
    name: str = ""
    subject: str = ""
    type: Literal["stream", "service"] | None = None
    token_req: bool = False
    revocations: dict[str, int] = {}
    response_type: str = ""
    response_threshold: int = 0  # nanoseconds
    service_latency: dict[str, Any] | None = None
    account_token_position: int = 0
    advertise: bool = False
    allow_trace: bool = False
    description: str = ""
    info_url: str = ""


class Import(_S, frozen=True, kw_only=True):
    name: str = ""
    subject: str = ""
    account: str = ""
    token: str = ""
    to: str = ""
    local_subject: str = ""
    type: Literal["stream", "service"] | None = None
    share: bool = False
    allow_trace: bool = False


class AccountData(_S, frozen=True, kw_only=True):
    imports: tuple[Import, ...] = ()
    exports: tuple[Export, ...] = ()
    limits: AccountLimits = AccountLimits()
    # JetStream limits stay raw: natsd's JetStream layer interprets them.
    jetstream: dict[str, Any] = {}
    signing_keys: tuple[str | UserScope, ...] = ()
    revocations: dict[str, int] = {}
    default_permissions: Permissions = Permissions()
    mappings: dict[str, Any] = {}
    authorization: dict[str, Any] = {}
    tags: tuple[str, ...] = ()
    description: str = ""
    info_url: str = ""
    type: str = "account"
    version: int = 0

    def signing_key_map(self) -> dict[str, UserScope | None]:
        """Key -> scope (None for a plain key); later entries win, as in Go's map."""
        out: dict[str, UserScope | None] = {}
        for entry in self.signing_keys:
            if isinstance(entry, str):
                out[entry] = None
            else:
                out[entry.key] = entry
        return out


class OperatorData(_S, frozen=True, kw_only=True):
    signing_keys: tuple[str, ...] = ()
    account_server_url: str = ""
    operator_service_urls: tuple[str, ...] = ()
    system_account: str = ""
    assert_server_version: str = ""
    strict_signing_key_usage: bool = False
    tags: tuple[str, ...] = ()
    type: str = "operator"
    version: int = 0


class ActivationData(_S, frozen=True, kw_only=True):
    subject: str = ""
    kind: Literal["stream", "service"] | None = None
    issuer_account: str = ""
    tags: tuple[str, ...] = ()
    type: str = "activation"
    version: int = 0


# -- claims ---------------------------------------------------------------------------


class _Claims(_S, frozen=True, kw_only=True):
    jti: str = ""
    iat: int = 0
    iss: str = ""
    sub: str = ""
    name: str = ""
    exp: int = 0
    nbf: int = 0
    aud: str = ""
    # Not a JSON member: the claim format version decode() found (1 or 2).
    version: int = 2


class OperatorClaims(_Claims, frozen=True, kw_only=True):
    nats: OperatorData = OperatorData()


class AccountClaims(_Claims, frozen=True, kw_only=True):
    nats: AccountData = AccountData()


class UserClaims(_Claims, frozen=True, kw_only=True):
    nats: UserData = UserData()


class ActivationClaims(_Claims, frozen=True, kw_only=True):
    nats: ActivationData = ActivationData()


class GenericClaims(_Claims, frozen=True, kw_only=True):
    nats: dict[str, Any] = {}


Claims = OperatorClaims | AccountClaims | UserClaims | ActivationClaims | GenericClaims

_TYPES: dict[str, type[_Claims]] = {
    "operator": OperatorClaims,
    "account": AccountClaims,
    "user": UserClaims,
    "activation": ActivationClaims,
}
# Which roles may sign which claim (nats-io/jwt ExpectedPrefixes) and what ``sub`` is.
_ISSUERS: dict[str, tuple[int, ...]] = {
    "operator": (PREFIX_OPERATOR,),
    "account": (PREFIX_ACCOUNT, PREFIX_OPERATOR),
    "user": (PREFIX_ACCOUNT,),
    "activation": (PREFIX_ACCOUNT, PREFIX_OPERATOR),
}
_SUBJECTS: dict[str, int] = {
    "operator": PREFIX_OPERATOR,
    "account": PREFIX_ACCOUNT,
    "user": PREFIX_USER,
    "activation": PREFIX_ACCOUNT,
}
_JS_LIMIT_KEYS = frozenset(
    {
        "mem_storage",
        "disk_storage",
        "streams",
        "consumer",
        "max_ack_pending",
        "mem_max_stream_bytes",
        "disk_max_stream_bytes",
        "max_bytes_required",
        "tiered_limits",
    }
)


def is_public_key(key: object, *prefixes: int) -> bool:
    """True if ``key`` is a well-formed nkey public key with one of ``prefixes``."""
    return any(decode_key(key, p) is not None for p in prefixes)


_B64URL = re.compile(r"[A-Za-z0-9_-]*")


def _b64url(segment: str) -> bytes:
    """Strict, canonical, unpadded base64url (Go's RawURLEncoding, minus leniency)."""
    if not _B64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise JwtError("malformed", "segment is not raw base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError) as exc:
        raise JwtError("malformed", "segment is not raw base64url") from exc
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        raise JwtError("malformed", "non-canonical base64url")
    return data


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        obj = msgspec.json.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise JwtError("malformed", "segment is not JSON") from exc
    if not isinstance(obj, dict):
        raise JwtError("malformed", "segment is not a JSON object")
    return obj


def _drop_nulls(value: Any) -> Any:
    # Go's decoder treats ``null`` as "leave the zero value": drop it everywhere.
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value if v is not None]
    return value


def _split_src(nats: dict[str, Any]) -> None:
    src = nats.get("src")
    if isinstance(src, str):
        # Go's CIDRList.Set: lower-case, split on commas, trim, drop empties.
        nats["src"] = [p.strip() for p in src.lower().split(",") if p.strip()]


def _normalize(kind: str, version: int, payload: dict[str, Any]) -> dict[str, Any]:
    """Bring a payload into the v2 shape our Structs read (see module docstring)."""
    nats = payload.get("nats")
    nats = dict(nats) if isinstance(nats, dict) else {}
    if version == 1:
        # v1 kept type, tags and issuer_account at the top level.
        nats["type"] = kind
        for moved in ("tags", "issuer_account"):
            if moved in payload:
                nats[moved] = payload[moved]
        if kind == "user":
            for key in ("subs", "data", "payload"):
                nats.setdefault(key, NO_LIMIT)
    if kind == "user":
        _split_src(nats)
    elif kind == "account":
        limits = nats.get("limits")
        nats["jetstream"] = {}
        if isinstance(limits, dict) and version == 2:
            nats["jetstream"] = {k: v for k, v in limits.items() if k in _JS_LIMIT_KEYS}
        keys = nats.get("signing_keys")
        if isinstance(keys, list):
            for entry in keys:
                if isinstance(entry, dict):
                    template = entry.setdefault("template", {})
                    if isinstance(template, dict):
                        for key in ("subs", "data", "payload"):
                            template.setdefault(key, NO_LIMIT)
                        _split_src(template)
    out = {k: v for k, v in payload.items() if k not in ("nats", "version")}
    out["nats"] = nats
    return out


def decode(token: str, *, max_size: int = MAX_TOKEN_SIZE) -> Claims:
    """Decode and signature-check a NATS JWT. Raises :class:`JwtError`, nothing else.

    Time validity and semantic validation are *not* checked here.
    """
    if not isinstance(token, str) or not token.isascii():
        raise JwtError("malformed", "token is not an ASCII string")
    if len(token) > max_size:
        raise JwtError("too_large", f"{len(token)} > {max_size} bytes")
    chunks = token.split(".")
    if len(chunks) != 3:
        raise JwtError("malformed", "expected 3 segments")
    header = _json_object(_b64url(chunks[0]))
    typ, alg = header.get("typ"), header.get("alg")
    if not isinstance(typ, str) or typ.upper() != "JWT":
        raise JwtError("bad_header", "typ is not JWT")
    if not isinstance(alg, str) or alg.lower() not in ("ed25519", "ed25519-nkey"):
        raise JwtError("bad_header", "unexpected algorithm")
    try:
        payload = _drop_nulls(_json_object(_b64url(chunks[1])))
    except RecursionError:  # nesting deep enough to pass the decoder, not the walk
        raise JwtError("malformed", "segment is nested too deeply") from None
    signature = _b64url(chunks[2])

    top_type, nats = payload.get("type"), payload.get("nats")
    if isinstance(top_type, str) and top_type:
        kind, version = top_type, 1
    else:
        nats = nats if isinstance(nats, dict) else {}
        kind, version = nats.get("type", ""), nats.get("version", 0)
        if not isinstance(kind, str) or not isinstance(version, int):
            raise JwtError("malformed", "bad nats.type or nats.version")
    if version > 2:
        raise JwtError("unsupported_version", f"version {version}")
    if kind in ("server", "cluster"):
        raise JwtError("unsupported_type", kind)
    cls: type[_Claims] = _TYPES.get(kind, GenericClaims)
    if cls is not GenericClaims and version not in (1, 2):
        raise JwtError("unsupported_version", f"version {version}")

    iss = payload.get("iss")
    allowed = _ISSUERS.get(kind)
    if allowed is None:
        # Generic claims (e.g. delete requests) may be signed by any role.
        allowed = (PREFIX_OPERATOR, PREFIX_ACCOUNT, PREFIX_USER, nkeys.PREFIX_BYTE_SERVER)
    raw_key = next((k for p in allowed if (k := decode_key(iss, p)) is not None), None)
    if raw_key is None:
        raise JwtError("bad_issuer", "issuer key has the wrong role or is malformed")
    want_sub = _SUBJECTS.get(kind)
    if want_sub is not None and not is_public_key(payload.get("sub"), want_sub):
        raise JwtError("bad_subject", f"sub is not a {kind} key")

    signed = chunks[1] if version == 1 else f"{chunks[0]}.{chunks[1]}"
    try:
        nacl.signing.VerifyKey(raw_key).verify(signed.encode("ascii"), signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError) as exc:
        raise JwtError("bad_signature") from exc

    body = payload if cls is GenericClaims else _normalize(kind, version, payload)
    try:
        claims = msgspec.convert(body, cls, strict=True)
    except msgspec.ValidationError as exc:
        raise JwtError("malformed", str(exc)) from exc
    claims = msgspec.structs.replace(claims, version=version)
    assert isinstance(
        claims, OperatorClaims | AccountClaims | UserClaims | ActivationClaims | GenericClaims
    )
    return claims


_B32_KEY = re.compile(r"[A-Z2-7]{56}")


def decode_key(key: object, prefix: int) -> bytes | None:
    """Raw Ed25519 key of a public nkey with role ``prefix``; None if malformed.

    56 base32 characters are exactly 35 bytes (prefix, key, CRC-16/XMODEM little
    endian), so there is no padding and no trailing-bit ambiguity.
    """
    if not isinstance(key, str) or not _B32_KEY.fullmatch(key):
        return None
    raw = base64.b32decode(key)
    if raw[0] != prefix or nkeys.crc16(raw[:-2]) != int.from_bytes(raw[-2:], "little"):
        return None
    return raw[1:-2]


def is_expired(claims: Claims, now: float) -> bool:
    """nats-io/jwt: ``exp`` set and ``now > exp`` (second resolution)."""
    return claims.exp > 0 and int(now) > claims.exp


def not_yet_valid(claims: Claims, now: float) -> bool:
    return claims.nbf > 0 and claims.nbf > int(now)


# -- creds files ----------------------------------------------------------------------

# The official clients find each block by its dashed BEGIN/END lines and take the
# first non-blank line between them, so banners, CRLF and stray blanks are harmless.
_DASHES = re.compile(r"^-{3,}.*-{3,}$")


def parse_creds(text: str) -> tuple[str, str]:
    """Return ``(jwt, seed)`` from the contents of a ``.creds`` file.

    Raises :class:`JwtError` ("malformed") unless both blocks are present.
    """
    blocks: list[str] = []
    lines = [line.strip() for line in text.splitlines()]
    i = 0
    while i < len(lines) and len(blocks) < 2:
        if _DASHES.match(lines[i]) and "BEGIN" in lines[i]:
            j = i + 1
            while j < len(lines) and not lines[j]:
                j += 1
            if j + 1 < len(lines) and lines[j] and not _DASHES.match(lines[j]):
                k = j + 1
                while k < len(lines) and not lines[k]:
                    k += 1
                if k < len(lines) and _DASHES.match(lines[k]) and "END" in lines[k]:
                    blocks.append(lines[j])
                    i = k
        i += 1
    if len(blocks) < 2:
        raise JwtError("malformed", "creds need a JWT block and a seed block")
    jwt, seed = blocks
    if not seed.startswith("S") or jwt.count(".") != 2:
        raise JwtError("malformed", "creds blocks are not a JWT and a seed")
    return jwt, seed

"""Operator mode: who is trusted, and the connect-time verification of a user JWT.

Theory of operation
-------------------
Trust is a chain: configured operator JWTs (self-signed) or bare ``trusted_keys``
name the keys allowed to sign *account* JWTs; an account JWT (fetched by public key
from a resolver) names the keys allowed to sign *user* JWTs (its identity key unless
the operator is strict, plus its ``signing_keys``); the user proves possession of the
key in its JWT's ``sub`` by signing the server's nonce. :class:`JwtAuthenticator`
walks that chain in the order of spec section 3.8 (nats-server's
``processClientOrLeafAuthentication``) and returns an ``AuthOk`` or an ``AuthFail``
whose ``reason`` is a closed vocabulary; the wire text is always
``Authorization Violation`` except for an account whose ``conn`` limit is 0, which
nats-server reports as ``maximum account active connections exceeded``. Limits above
0 need live counts and stay with the server (:meth:`JwtAuthenticator.account_info`).

Everything here is pure: the clock is the ``now`` argument (unix seconds) and the
only input besides it is the resolver's ``lookup``. Verified account JWTs are
memoised by their exact text (validation does not depend on time; expiry is checked
on every use).

In operator mode the account name the rest of natsd uses is the account public key.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import msgspec

from natsd.auth import jwt_template
from natsd.auth.authenticate import (
    AuthFail,
    AuthOk,
    ClientInfo,
    ConnectCredentials,
    credential_digest,
)
from natsd.auth.jwt import (
    PREFIX_OPERATOR,
    AccountClaims,
    Export,
    Import,
    JwtError,
    OperatorClaims,
    UserClaims,
    UserScope,
    UserTemplate,
    decode,
    is_expired,
    is_public_key,
    not_yet_valid,
)
from natsd.auth.jwt import Permissions as JwtPermissions
from natsd.auth.jwt_validate import load_zone, parse_version, validation_errors
from natsd.auth.nkey import verify_nonce_signature
from natsd.config import schema

__all__ = [
    "AccountInfo",
    "ImportGrant",
    "JwtAuthenticator",
    "OperatorConfigError",
    "TrustedOperators",
    "is_revoked",
    "reevaluate",
    "to_schema_permissions",
    "validate_times",
]

FailReason = Literal[
    "jwt_missing",
    "jwt_invalid",
    "jwt_expired",
    "proxy_required",
    "account_not_pinned",
    "account_missing",
    "account_invalid",
    "account_untrusted",
    "account_expired",
    "issuer_unknown",
    "scoped_user_invalid",
    "bearer_disallowed",
    "conn_type_not_allowed",
    "signature_missing",
    "signature_invalid",
    "revoked",
    "src_not_allowed",
    "outside_times",
    "account_conn_limit",
]
_KNOWN_CONN_TYPES = frozenset(
    {"STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS"}
)
_DEFAULT_RESP_EXPIRES = 120.0


class OperatorConfigError(ValueError):
    """An operator configuration nats-server would refuse to start with."""


class Resolver(Protocol):
    def lookup(self, pubkey: str) -> str | None: ...


class TrustedOperators:
    """The trusted operator keys, built from operator JWTs or bare ``trusted_keys``."""

    def __init__(
        self,
        operator_jwts: Iterable[str] = (),
        trusted_keys: Iterable[str] = (),
        *,
        server_version: str = "2.11.0",
    ) -> None:
        self.operators: tuple[OperatorClaims, ...] = tuple(
            self._load(t, server_version) for t in operator_jwts
        )
        extra = tuple(trusted_keys)
        if self.operators and extra:
            raise OperatorConfigError("conflicting options for 'trusted_keys' and 'operator'")
        keys: list[str] = list(extra)
        strict: set[str] = set()
        for op in self.operators:
            if not op.nats.strict_signing_key_usage:
                keys.append(op.sub)
            else:
                strict.update(op.nats.signing_keys)
            keys.extend(op.nats.signing_keys)
        for key in keys:
            if not is_public_key(key, PREFIX_OPERATOR):
                raise OperatorConfigError(f"trusted key {key!r} is not an operator public key")
        self.keys: frozenset[str] = frozenset(keys)
        # Accounts signed by these keys may not sign users with their identity key.
        self.strict_keys: frozenset[str] = frozenset(strict)
        first = self.operators[0] if self.operators else None
        self.system_account: str | None = (first.nats.system_account or None) if first else None
        self.operator_key: str | None = first.sub if first else None
        self.strict: bool = bool(first and first.nats.strict_signing_key_usage)

    @staticmethod
    def _load(token: str, server_version: str) -> OperatorClaims:
        try:
            claims = decode(token.strip())
        except JwtError as exc:
            raise OperatorConfigError(f"invalid operator JWT: {exc}") from exc
        if not isinstance(claims, OperatorClaims):
            raise OperatorConfigError("not an operator JWT")
        if claims.iss != claims.sub:
            raise OperatorConfigError("operator JWT must be self-signed")
        if errors := validation_errors(claims):
            raise OperatorConfigError(f"invalid operator JWT: {errors[0]}")
        want = claims.nats.assert_server_version
        have = parse_version(server_version)
        if want and have is not None and (parse_version(want) or (0, 0, 0)) > have:
            raise OperatorConfigError(
                f"operator {claims.sub} expects version {want} > server version {server_version}"
            )
        return claims

    def is_trusted_issuer(self, key: str) -> bool:
        return key in self.keys


@dataclass(frozen=True, slots=True)
class ImportGrant:
    """One import of an account, and whether the exporter currently authorises it."""

    spec: Import
    authorized: bool
    reason: str = ""  # why not, when not authorized
    expires: float | None = None  # activation token expiry


@dataclass(frozen=True, slots=True)
class AccountInfo:
    name: str  # the account public key
    claims: AccountClaims
    jwt: str
    max_connections: int  # -1 unlimited; 0 admits nobody
    max_subscriptions: int
    max_payload: int
    max_leafnodes: int
    disallow_bearer: bool
    expires: float | None
    signing_keys: Mapping[str, UserScope | None]  # includes the identity key unless strict
    revocations: Mapping[str, int]
    default_permissions: schema.Permissions | None
    exports: tuple[Export, ...]
    imports: tuple[ImportGrant, ...]
    jetstream: Mapping[str, Any]
    is_system: bool


def is_revoked(user: UserClaims, account: AccountClaims) -> bool:
    """Revoked iff ``revocations[sub]`` or ``revocations["*"]`` is >= the JWT's iat."""
    revs = account.nats.revocations
    return any(key in revs and revs[key] >= user.iat for key in (user.sub, "*"))


def _activation_revoked(export: Export, sub: str, iat: int) -> bool:
    revs = export.revocations
    return any(key in revs and revs[key] >= iat for key in (sub, "*"))


def signing_keys_of(account: AccountClaims, strict: bool) -> dict[str, UserScope | None]:
    keys = account.nats.signing_key_map()
    if not strict:
        keys.setdefault(account.sub, None)
    return keys


def to_schema_permissions(perms: JwtPermissions) -> schema.Permissions | None:
    """nats-server's ``buildPermissionsFromJwt``: None when nothing is restricted."""
    pub = sub = resp = None
    if perms.pub.allow or perms.pub.deny:
        pub = schema.SubjectPermission(allow=perms.pub.allow or None, deny=perms.pub.deny or None)
    if perms.sub.allow or perms.sub.deny:
        sub = schema.SubjectPermission(allow=perms.sub.allow or None, deny=perms.sub.deny or None)
    if perms.resp is not None:
        # allow_responses switches off the blanket publish allow (empty, not absent).
        pub = schema.SubjectPermission(
            allow=pub.allow if pub and pub.allow else (), deny=pub.deny if pub else None
        )
        resp = schema.ResponsePermission(
            max_msgs=perms.resp.max or 1,
            expires=perms.resp.ttl / 1e9 if perms.resp.ttl else _DEFAULT_RESP_EXPIRES,
        )
    if pub is None and sub is None and resp is None:
        return None
    return schema.Permissions(publish=pub, subscribe=sub, allow_responses=resp)


def validate_times(
    template: UserTemplate, now: float, local_zone: dt.tzinfo | None = None
) -> tuple[bool, float]:
    """nats-server ``validateTimes``: (inside a window, seconds left in the best one).

    Inside iff ``start < now < end`` on today's date in ``times_location`` (else the
    server's zone); ``start > end`` wraps midnight. No windows = always, 0 left.
    """
    if not template.times:
        return True, 0.0
    zone = load_zone(template.times_location) if template.times_location else local_zone
    if template.times_location and zone is None:
        return False, 0.0
    moment = dt.datetime.fromtimestamp(now, zone) if zone else dt.datetime.fromtimestamp(now)
    if zone is None:
        moment = moment.astimezone()
    ok, best = False, 0.0
    for window in template.times:
        try:
            start_t = dt.time.fromisoformat(window.start)
            end_t = dt.time.fromisoformat(window.end)
        except ValueError:
            return False, 0.0
        start = moment.replace(
            hour=start_t.hour, minute=start_t.minute, second=start_t.second, microsecond=0
        )
        end = moment.replace(
            hour=end_t.hour, minute=end_t.minute, second=end_t.second, microsecond=0
        )
        left = _window_left(start, end, moment)
        if left is not None and (not ok or left > best):
            ok, best = True, left
    return ok, best


def _window_left(start: dt.datetime, end: dt.datetime, now: dt.datetime) -> float | None:
    if start < now < end:
        return (end - now).total_seconds()
    if start > end:  # wraps midnight
        if now < end:
            return (end - now).total_seconds()
        end = end + dt.timedelta(days=1)
        if start < now < end:
            return (end - now).total_seconds()
    return None


def _src_allowed(src: tuple[str, ...], host: str) -> bool:
    if not src:
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for cidr in src:
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            return False
        if ip.version == net.version and ip in net:
            return True
    return False


def verify_nonce(user_key: str, nonce: str, sig: str) -> bool:
    """True when ``sig`` is the user key's Ed25519 signature over the ASCII nonce
    (the same check as nkey users: :func:`natsd.auth.nkey.verify_nonce_signature`)."""
    return verify_nonce_signature(user_key, nonce, sig)


def _limit_min(user: int, account: int) -> int:
    """nats-server ``applyAccountLimits``: -1 is unlimited, otherwise the smaller."""
    if user == -1:
        return account
    if account == -1:
        return user
    return min(user, account)


def _empty_template(t: UserTemplate) -> bool:
    return t == UserTemplate()


class JwtAuthenticator:
    """Connect-time verification of user JWTs (spec section 3.8, steps 1-12)."""

    def __init__(
        self,
        trusted: TrustedOperators,
        resolver: Resolver,
        system_account: str | None,
        pinned_accounts: Iterable[str] = (),
        *,
        local_zone: dt.tzinfo | None = None,
    ) -> None:
        self.trusted = trusted
        self.resolver = resolver
        self.system_account = system_account or trusted.system_account
        pinned = set(pinned_accounts)
        if pinned and self.system_account:
            pinned.add(self.system_account)  # the system account can always connect
        self.pinned: frozenset[str] = frozenset(pinned)
        self.local_zone = local_zone
        self._verified: dict[str, AccountClaims] = {}

    # -- accounts ---------------------------------------------------------------------

    def verify_account_jwt(self, token: str, pubkey: str | None = None) -> AccountClaims | str:
        """Decoded claims of a trusted, valid account JWT, or a failure reason."""
        cached = self._verified.get(token)
        if cached is not None and (pubkey is None or cached.sub == pubkey):
            return cached
        try:
            claims = decode(token)
        except JwtError:
            return "account_invalid"
        if not isinstance(claims, AccountClaims):
            return "account_invalid"
        if not self.trusted.is_trusted_issuer(claims.iss):
            return "account_untrusted"
        if validation_errors(claims):
            return "account_invalid"
        if pubkey is not None and claims.sub != pubkey:
            return "account_invalid"
        if len(self._verified) >= 1024:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _account(self, pubkey: str) -> tuple[AccountClaims, str] | str:
        token = self.resolver.lookup(pubkey)
        if not token:
            return "account_missing"
        claims = self.verify_account_jwt(token, pubkey)
        return claims if isinstance(claims, str) else (claims, token)

    def account_signing_keys(self, account: AccountClaims) -> dict[str, UserScope | None]:
        return signing_keys_of(account, account.iss in self.trusted.strict_keys)

    def verify_activation(
        self, imp: Import, importer: str, exporter: AccountClaims, now: float
    ) -> tuple[str, float | None]:
        """('' or why the exporter does not authorise ``imp``, activation expiry)."""
        return jwt_template.check_import(
            imp,
            importer,
            exporter,
            self.account_signing_keys(exporter),
            now,
            _activation_revoked,
        )

    def account_claims(self, pubkey: str) -> AccountClaims | None:
        """The account's verified claims (cached), or None if it has no usable JWT."""
        found = self._account(pubkey)
        return None if isinstance(found, str) else found[0]

    def max_connections(self, pubkey: str) -> int:
        """The account's ``conn`` limit (-1: unlimited, or no usable account);
        from the cached verified claims, so a CONNECT costs no import checks."""
        claims = self.account_claims(pubkey)
        return -1 if claims is None else claims.nats.limits.conn

    def account_info(self, pubkey: str, now: float) -> AccountInfo | None:
        """What the server needs to install an account; None if unusable."""
        found = self._account(pubkey)
        if isinstance(found, str) or is_expired(found[0], now):
            return None
        claims, token = found
        grants = []
        for imp in claims.nats.imports:
            exp_found = self._account(imp.account) if imp.account != pubkey else found
            if isinstance(exp_found, str):
                grants.append(ImportGrant(imp, False, "exporter_unavailable"))
                continue
            reason, expires = self.verify_activation(imp, pubkey, exp_found[0], now)
            grants.append(ImportGrant(imp, not reason, reason, expires))
        lim = claims.nats.limits
        return AccountInfo(
            name=pubkey,
            claims=claims,
            jwt=token,
            max_connections=lim.conn,
            max_subscriptions=lim.subs,
            max_payload=lim.payload,
            max_leafnodes=lim.leaf,
            disallow_bearer=lim.disallow_bearer,
            expires=float(claims.exp) if claims.exp else None,
            signing_keys=self.account_signing_keys(claims),
            revocations=dict(claims.nats.revocations),
            default_permissions=to_schema_permissions(claims.nats.default_permissions),
            exports=claims.nats.exports,
            imports=tuple(grants),
            jetstream=dict(claims.nats.jetstream),
            is_system=pubkey == self.system_account,
        )

    # -- users ------------------------------------------------------------------------

    def verify(
        self, connect: ConnectCredentials, client: ClientInfo, now: float
    ) -> AuthOk | AuthFail:
        """Verify a CONNECT carrying ``jwt``/``sig`` for ``client`` (host, nonce,
        conn_type) at time ``now``."""
        token = connect.jwt
        if not token:
            return _fail("jwt_missing")
        try:
            user = decode(token)
        except JwtError:
            return _fail("jwt_invalid")
        if not isinstance(user, UserClaims) or validation_errors(user):
            return _fail("jwt_invalid")
        if is_expired(user, now) or not_yet_valid(user, now):
            return _fail("jwt_expired")
        if user.nats.proxy_required:
            return _fail("proxy_required")  # natsd has no trusted proxies
        account_id = user.nats.issuer_account or user.iss
        if self.pinned and account_id not in self.pinned:
            return _fail("account_not_pinned")
        found = self._account(account_id)
        if isinstance(found, str):
            return _fail(found)  # type: ignore[arg-type]
        account = found[0]
        keys = self.account_signing_keys(account)
        if user.iss not in keys:
            return _fail("issuer_unknown")
        template: UserTemplate = user.nats
        scope = keys[user.iss]
        if scope is not None:
            base = msgspec.structs.asdict(user.nats)
            plain = {f: base[f] for f in UserTemplate.__struct_fields__}
            if not _empty_template(UserTemplate(**plain)):
                return _fail("scoped_user_invalid")
            expanded = jwt_template.expand(scope.template, user, account)
            if expanded is None:
                return _fail("scoped_user_invalid")
            template = expanded
        if is_expired(account, now):
            return _fail("account_expired")
        if template.bearer_token and account.nats.limits.disallow_bearer:
            return _fail("bearer_disallowed")
        if not _conn_type_allowed(template.allowed_connection_types, client):
            return _fail("conn_type_not_allowed")
        if not template.bearer_token:
            sig = connect.sig
            if not sig:
                return _fail("signature_missing")
            if not verify_nonce(user.sub, client.nonce or "", sig):
                return _fail("signature_invalid")
        if is_revoked(user, account):
            return _fail("revoked")
        if not _src_allowed(template.src, client.host or ""):
            return _fail("src_not_allowed")
        inside, left = validate_times(template, now, self.local_zone)
        if not inside:
            return _fail("outside_times")
        lim = account.nats.limits
        if lim.conn == 0:
            return AuthFail("account_conn_limit", "maximum account active connections exceeded")
        perms = to_schema_permissions(template.permissions)
        if perms is None:
            perms = to_schema_permissions(account.nats.default_permissions)
        deadlines = [float(user.exp)] if user.exp else []
        if template.times:
            deadlines.append(now + left)
        return AuthOk(
            account=account_id,
            user=user.sub,
            permissions=perms,
            auth_digest=credential_digest(connect),
            expires=min(deadlines) if deadlines else None,
            max_subscriptions=_limit_min(template.subs, lim.subs),
            max_payload=_limit_min(template.payload, lim.payload),
            is_system=account_id == self.system_account,
        )


def _conn_type_allowed(types: tuple[str, ...], client: ClientInfo) -> bool:
    if not types:
        return True
    known = {t.upper() for t in types} & _KNOWN_CONN_TYPES
    if not known:
        return False  # only unknown types listed: the intent was to restrict
    return (client.conn_type or "STANDARD").upper() in known


def _fail(reason: FailReason) -> AuthFail:
    return AuthFail(reason)


def reevaluate(
    user_jwt: str,
    new_account: AccountClaims,
    now: float,
    *,
    old_account: AccountClaims | None = None,
    strict: bool = False,
) -> str | None:
    """After an account JWT update: None if the connected user may stay, else the
    error text to send before closing (nats-server ``updateAccountClaimsWithRefresh``)."""
    try:
        user = decode(user_jwt)
    except JwtError:
        return "Authorization Violation"
    if not isinstance(user, UserClaims):
        return "Authorization Violation"
    if is_expired(new_account, now):
        return "Account Authentication Expired"
    if user.nats.bearer_token and new_account.nats.limits.disallow_bearer:
        return "Authorization Violation"
    if is_revoked(user, new_account):
        return "User Authentication Revoked"
    if user.nats.issuer_account:
        keys = signing_keys_of(new_account, strict)
        if user.iss not in keys:
            return "Authorization Violation"
        if old_account is not None:
            old_keys = signing_keys_of(old_account, strict)
            if user.iss in old_keys and old_keys[user.iss] != keys[user.iss]:
                return "Authorization Violation"
    if is_expired(user, now):
        return "User Authentication Expired"
    return None

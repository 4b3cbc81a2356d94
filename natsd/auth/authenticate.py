"""The client authentication pipeline (config mode), as one pure function.

Theory of operation
-------------------
:class:`AuthConfig` is built once from :class:`~natsd.config.schema.Options` (and again
on reload). It flattens every configured identity into two lookup tables, username
users and nkey users, each entry already bound to its account and to its permissions
resolved against the relevant ``default_permissions``. It also decides the three facts
the acceptor needs before any CONNECT arrives:

* ``enforced``: must a CONNECT authenticate at all? (operator mode, any user or nkey,
  a token, a single user, or the §3.4 synthesised no-auth user)
* ``auth_required``: what INFO advertises; false when ``no_auth_user`` is set even
  though authentication is still enforced, true in the §3.4 case;
* ``nonce_required``: INFO must carry a nonce (nkey users or operator mode).

:func:`authenticate` then evaluates one CONNECT against it in spec §3.1's order. The
first step that applies decides; nothing falls back to a later step once credentials
were presented and rejected:

0. ``account``/``new_account`` in CONNECT (``connect.forbidden``) ⇒ fail, always
   (CVE-2022-24450), even when authentication is not enforced.
   Not enforced ⇒ bind to ``$G`` with no permissions.
1. Operator mode ⇒ delegate to the attached ``jwt_verifier``; with none attached the
   pipeline fails closed.
2. Nkey users: an anonymous CONNECT (no user, pass, token or nkey) binds to
   ``no_auth_user`` if it names an nkey; a CONNECT with ``nkey`` must name a configured
   key and carry a valid signature over this connection's nonce.
3. Username users: with ``tls.verify_and_map`` the certificate is the identity (a
   CONNECT ``user`` is ignored with a warning); else an anonymous CONNECT binds to
   ``no_auth_user`` (or the §3.4 synthesised ``$G`` identity); else the named user must
   exist and the password must match.
4. Token. 5. Single user/password. 6. Fail.

A no_auth_user binding never compares a stored password: nats-server compares the
stored bcrypt hash with itself and so refuses a bcrypt no_auth_user; binding directly
is what spec §3.3 recommends. Every user entry must allow the connection type and must
not be ``proxy_required`` (natsd trusts no proxies, so such users cannot log in).

natsd is stricter than nats-server in verify_and_map: DNs match only component for
component and in order (see :mod:`natsd.auth.dn`), a certificate whose subject has two
CNs or a multi-valued RDN maps to nobody at all, and a DN matching two users is refused.

Failure reasons name the step and the (quoted, truncated) user, never a secret.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Protocol

from natsd.auth.dn import DN, dn_equal, dn_unambiguous, parse_dn
from natsd.auth.nkey import verify_nonce_signature
from natsd.auth.passwords import check_password
from natsd.auth.tlspeer import TLSPeer, ambiguous
from natsd.config.schema import (
    DEFAULT_SYSTEM_ACCOUNT,
    GLOBAL_ACCOUNT,
    Options,
    Permissions,
    User,
)

__all__ = [
    "AuthConfig",
    "AuthFail",
    "AuthOk",
    "ClientInfo",
    "ConnectCredentials",
    "JWTVerifier",
    "authenticate",
    "credential_digest",
]

STANDARD = "STANDARD"
_MAX_NAME_IN_REASON = 64


class ConnectCredentials(Protocol):
    """The CONNECT fields authentication reads (``natsd.proto`` provides them)."""

    @property
    def user(self) -> str | None: ...
    @property
    def password(self) -> str | None: ...
    @property
    def auth_token(self) -> str | None: ...
    @property
    def nkey(self) -> str | None: ...
    @property
    def sig(self) -> str | None: ...
    @property
    def jwt(self) -> str | None: ...
    @property
    def forbidden(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class ClientInfo:
    """What the acceptor knows about the connection, besides its CONNECT."""

    host: str
    port: int
    nonce: str | None
    conn_type: str = STANDARD
    tls: TLSPeer | None = None


@dataclass(frozen=True, slots=True)
class AuthOk:
    """A successful authentication: where to bind the client and what it may do."""

    account: str
    user: str | None
    permissions: Permissions | None
    auth_digest: bytes
    expires: float | None = None
    max_subscriptions: int = -1
    max_payload: int = -1
    is_system: bool = False
    warning: str | None = None  # for the log, e.g. CONNECT user ignored under TLS map


@dataclass(frozen=True, slots=True)
class AuthFail:
    """A failed authentication. ``reason`` is for the log only; ``wire_text`` is sent."""

    reason: str
    wire_text: str = "Authorization Violation"


class JWTVerifier(Protocol):
    """Operator-mode authentication, supplied by the JWT helper."""

    def verify(
        self, connect: ConnectCredentials, client: ClientInfo, now: float
    ) -> AuthOk | AuthFail: ...


@dataclass(frozen=True, slots=True)
class _Identity:
    """One configured user or nkey, resolved: account, permissions, restrictions."""

    name: str
    password: str | None
    account: str
    permissions: Permissions | None
    conn_types: frozenset[str]
    proxy_required: bool

    def admits(self, conn_type: str) -> bool:
        if self.proxy_required:
            return False
        return not self.conn_types or conn_type.upper() in self.conn_types


def credential_digest(connect: ConnectCredentials) -> bytes:
    """SHA-256 over the credential fields, length-prefixed and domain-separated.

    A worker compares this with ``AuthOk.auth_digest`` to notice a second CONNECT that
    changes credentials, without keeping the credentials themselves.
    """
    h = hashlib.sha256(b"natsd-credentials-v1\x00")
    for value in (
        connect.user,
        connect.password,
        connect.auth_token,
        connect.nkey,
        connect.sig,
        connect.jwt,
    ):
        if value is None:
            h.update(b"\x00")
        else:
            raw = value.encode("utf-8", "surrogatepass")
            h.update(b"\x01" + len(raw).to_bytes(8, "big") + raw)
    return h.digest()


def _q(name: str) -> str:
    """Quote an attacker-supplied name for a log line: escaped and truncated."""
    short = name[:_MAX_NAME_IN_REASON]
    quoted = short.encode("unicode_escape").decode("ascii").replace('"', '\\"')
    return f'"{quoted}"' + ("..." if len(name) > _MAX_NAME_IN_REASON else "")


def _merge_defaults(own: Permissions | None, default: Permissions | None) -> Permissions | None:
    # The loader normally resolves defaults already; doing it again is idempotent.
    return own if own is not None else default


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Everything :func:`authenticate` needs, derived once from :class:`Options`."""

    auth_required: bool
    enforced: bool
    nonce_required: bool
    operator_mode: bool
    users: Mapping[str, _Identity]
    nkeys: Mapping[str, _Identity]
    token: str | None
    single_user: str | None
    single_password: str | None
    no_auth_user: str | None
    anonymous_g: bool  # §3.4: anonymous clients bind to $G
    verify_and_map: bool
    dn_users: tuple[tuple[DN, str], ...]
    account_names: frozenset[str]
    system_account: str | None
    account_limits: Mapping[str, tuple[int, int]]  # account -> (max subs, max payload)
    jwt_verifier: JWTVerifier | None = field(default=None)

    @classmethod
    def from_options(cls, opts: Options) -> AuthConfig:
        az = opts.authorization
        users: dict[str, _Identity] = {}
        nkeys: dict[str, _Identity] = {}

        def add(u: User, account: str, default: Permissions | None) -> None:
            ident = _Identity(
                name=u.nkey or u.user or "",
                password=u.password,
                account=account,
                permissions=_merge_defaults(u.permissions, default),
                conn_types=frozenset(t.upper() for t in u.allowed_connection_types),
                proxy_required=u.proxy_required,
            )
            table = nkeys if u.nkey else users
            # First definition wins; the loader rejects duplicates before we get here.
            table.setdefault(ident.name, ident)

        for u in az.users:
            add(u, u.account or GLOBAL_ACCOUNT, az.default_permissions)
        for acc in opts.accounts:
            for u in acc.users:
                add(u, acc.name, acc.default_permissions)

        operator_mode = bool(opts.operators or opts.trusted_keys)
        system_account = None if opts.no_system_account else opts.system_account
        account_names = {GLOBAL_ACCOUNT, *(a.name for a in opts.accounts)}
        if system_account:
            account_names.add(system_account)
        has_identities = bool(users or nkeys or az.token or az.user)
        # §3.4: the accounts block configures the system account and nothing but it
        # (and perhaps $G), and there is no authorization block. The system account
        # must be *configured*: with no accounts at all (``--user``/``--pass`` only)
        # nothing is synthesised, or the CLI credentials would be decorative.
        sys_name = system_account or DEFAULT_SYSTEM_ACCOUNT
        configured = {a.name for a in opts.accounts}
        anonymous_g = (
            not operator_mode
            and has_identities
            and opts.no_auth_user is None
            and not az.present
            and sys_name in configured
            and configured <= {GLOBAL_ACCOUNT, sys_name}
        )
        enforced = operator_mode or has_identities
        verify_and_map = bool(opts.tls and opts.tls.verify_and_map)
        dn_users = tuple(
            (dn, name)
            for name in users
            if verify_and_map and (dn := parse_dn(name)) is not None and dn_unambiguous(dn)
        )
        return cls(
            auth_required=enforced and opts.no_auth_user is None,
            enforced=enforced,
            nonce_required=operator_mode or bool(nkeys),
            operator_mode=operator_mode,
            users=MappingProxyType(users),
            nkeys=MappingProxyType(nkeys),
            token=az.token,
            single_user=az.user,
            single_password=az.password,
            no_auth_user=opts.no_auth_user,
            anonymous_g=anonymous_g,
            verify_and_map=verify_and_map,
            dn_users=dn_users,
            account_names=frozenset(account_names),
            system_account=system_account,
            account_limits=MappingProxyType(
                # A config account's 0 is "no limit", as the server option's.
                {a.name: (a.max_subscriptions or -1, a.max_payload) for a in opts.accounts}
            ),
        )

    def no_auth_fast_path(self, conn_type: str = STANDARD) -> bool:
        """May a client listener skip waiting for CONNECT (spec §1.2 pre-CONNECT rule)?

        True only when ``no_auth_user`` resolves to a configured user or nkey that
        admits ``conn_type`` and is not ``proxy_required``; the acceptor then runs
        :func:`authenticate` with an empty CONNECT. Route, leaf and gateway listeners
        must never ask (advisories 2026-16/2026-24).
        """
        if self.no_auth_user is None:
            return False
        ident = self.users.get(self.no_auth_user) or self.nkeys.get(self.no_auth_user)
        return ident is not None and ident.admits(conn_type)

    def with_jwt_verifier(self, verifier: JWTVerifier) -> AuthConfig:
        """A copy of this config with operator-mode verification attached."""
        return dataclasses.replace(self, jwt_verifier=verifier)

    def _ok(
        self,
        account: str,
        user: str | None,
        permissions: Permissions | None,
        connect: ConnectCredentials,
        warning: str | None = None,
    ) -> AuthOk:
        max_subs, max_payload = self.account_limits.get(account, (-1, -1))
        return AuthOk(
            account=account,
            user=user,
            permissions=permissions,
            auth_digest=credential_digest(connect),
            max_subscriptions=max_subs,
            max_payload=max_payload,
            is_system=account == self.system_account,
            warning=warning,
        )

    def _bind(
        self, ident: _Identity, connect: ConnectCredentials, warning: str | None = None
    ) -> AuthOk:
        return self._ok(ident.account, ident.name, ident.permissions, connect, warning)


def _present(value: str | None) -> bool:
    return bool(value)


def _anonymous(connect: ConnectCredentials) -> bool:
    """No credential at all was presented (a CONNECT ``jwt`` counts only in operator mode)."""
    return not (
        _present(connect.user)
        or _present(connect.password)
        or _present(connect.auth_token)
        or _present(connect.nkey)
    )


def authenticate(
    connect: ConnectCredentials, client: ClientInfo, cfg: AuthConfig, now: float
) -> AuthOk | AuthFail:
    """Authenticate one client CONNECT against ``cfg`` (spec §3.1)."""
    if connect.forbidden:
        return AuthFail("CONNECT carried account or new_account")
    if not cfg.enforced:
        return cfg._ok(GLOBAL_ACCOUNT, None, None, connect)
    if cfg.operator_mode:
        if cfg.jwt_verifier is None:
            return AuthFail("operator mode: no JWT verifier attached")
        return cfg.jwt_verifier.verify(connect, client, now)
    anonymous = _anonymous(connect)
    if cfg.nkeys:
        if anonymous and cfg.no_auth_user is not None and cfg.no_auth_user in cfg.nkeys:
            return _no_auth_bind(cfg.nkeys[cfg.no_auth_user], connect, client, cfg)
        if connect.nkey:
            return _nkey_auth(connect, client, cfg)
    # The §3.4 identity is a (synthesised) username user in nats-server, so it opens
    # this step even when every configured user is an nkey.
    if cfg.users or cfg.anonymous_g:
        if cfg.verify_and_map:
            return _cert_auth(connect, client, cfg)
        if anonymous:
            if cfg.no_auth_user is not None and cfg.no_auth_user in cfg.users:
                return _no_auth_bind(cfg.users[cfg.no_auth_user], connect, client, cfg)
            if cfg.anonymous_g:
                return cfg._ok(GLOBAL_ACCOUNT, None, None, connect)
        if connect.user:
            return _user_auth(connect, client, cfg)
    if cfg.token is not None:
        if check_password(connect.auth_token or "", cfg.token):
            return cfg._ok(GLOBAL_ACCOUNT, None, None, connect)
        return AuthFail("token mismatch")
    if cfg.single_user is not None:
        if connect.user != cfg.single_user:
            return AuthFail(f"user {_q(connect.user or '')} unknown")
        if check_password(connect.password or "", cfg.single_password or ""):
            return cfg._ok(GLOBAL_ACCOUNT, cfg.single_user, None, connect)
        return AuthFail(f"password mismatch for user {_q(cfg.single_user)}")
    if anonymous:
        return AuthFail("no credentials presented")
    return AuthFail("no configured authentication method matches the credentials")


def _no_auth_bind(
    ident: _Identity, connect: ConnectCredentials, client: ClientInfo, cfg: AuthConfig
) -> AuthOk | AuthFail:
    if not ident.admits(client.conn_type):
        return AuthFail(f"no_auth_user {_q(ident.name)} not allowed for this connection type")
    return cfg._bind(ident, connect)


def _nkey_auth(
    connect: ConnectCredentials, client: ClientInfo, cfg: AuthConfig
) -> AuthOk | AuthFail:
    key = connect.nkey or ""
    ident = cfg.nkeys.get(key)
    if ident is None:
        return AuthFail(f"nkey {_q(key)} unknown")
    if not ident.admits(client.conn_type):
        return AuthFail(f"nkey {_q(key)} not allowed for this connection type")
    if not connect.sig:
        return AuthFail(f"nkey {_q(key)} signature missing")
    if not client.nonce:
        return AuthFail("nkey signature invalid: no nonce was issued")
    if not verify_nonce_signature(key, client.nonce, connect.sig):
        return AuthFail("nkey signature invalid")
    return cfg._bind(ident, connect)


def _user_auth(
    connect: ConnectCredentials, client: ClientInfo, cfg: AuthConfig
) -> AuthOk | AuthFail:
    name = connect.user or ""
    ident = cfg.users.get(name)
    if ident is None:
        return AuthFail(f"user {_q(name)} unknown")
    if not ident.admits(client.conn_type):
        return AuthFail(f"user {_q(name)} not allowed for this connection type")
    if not check_password(connect.password or "", ident.password or ""):
        return AuthFail(f"password mismatch for user {_q(name)}")
    return cfg._bind(ident, connect)


def _cert_auth(
    connect: ConnectCredentials, client: ClientInfo, cfg: AuthConfig
) -> AuthOk | AuthFail:
    peer = client.tls
    if peer is None or not peer.verified:
        return AuthFail("verify_and_map: no verified client certificate")
    if ambiguous(peer):
        return AuthFail("verify_and_map: certificate subject is ambiguous")
    warning = None
    if connect.user:
        warning = f"user {_q(connect.user)} in CONNECT ignored, user required from certificate"
    # SAN candidates: like nats-server, a user that exists but does not admit this
    # connection type does not end the search; the next candidate is tried.
    for candidate in (*peer.email_sans, *peer.dns_sans, *peer.uri_sans):
        ident = cfg.users.get(candidate)
        if ident is not None and ident.admits(client.conn_type):
            return cfg._bind(ident, connect, warning)
    # The DN: ``subject_rdns`` is None when the subject holds a non-string value, and
    # then the DN is no identity at all. Two configured names equal to one DN
    # (``CN=a`` and ``cn=a``) make the mapping ambiguous, whatever their types allow.
    if peer.subject_rdns is not None:
        hits = [name for dn, name in cfg.dn_users if dn_equal(dn, peer.subject_rdns)]
        if len(hits) > 1:
            return AuthFail("verify_and_map: certificate subject matches several users")
        if hits and cfg.users[hits[0]].admits(client.conn_type):
            return cfg._bind(cfg.users[hits[0]], connect, warning)
    return AuthFail("verify_and_map: no user matches the certificate")

"""Operator (JWT) mode in the supervisor: trust, resolvers, live updates.

Theory of operation
-------------------
In operator mode the server stores no user secrets: a client presents a user
JWT and signs the INFO nonce; :class:`natsd.auth.operator.JwtAuthenticator`
verifies the chain up to a trusted operator, fetching the account JWT from
the resolver (``MEMORY`` with ``resolver_preload``, or the ``full``
directory resolver). Account names are account public keys, so sharding
places accounts that appear at runtime without any table.

The system account's clients manage accounts through ``$SYS.REQ.`` subjects.
The worker that owns the system account forwards those publishes to the
supervisor (:class:`~natsd.ipc.messages.SysRequest`); the supervisor, which
alone holds the resolver, stores the update, answers with nats-server's reply
body, and re-evaluates every live connection of the updated account: revoked
users are closed with ``User Authentication Revoked``, users whose signing
key disappeared with ``Authorization Violation``, and so on
(``natsd.auth.operator.reevaluate``). Updates whose issuer is not trusted
are never applied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from natsd.auth.jwt import AccountClaims
from natsd.auth.operator import (
    AccountInfo,
    JwtAuthenticator,
    OperatorConfigError,
    TrustedOperators,
    reevaluate,
    to_schema_permissions,
)
from natsd.auth.resolver import (
    DirResolver,
    MemoryResolver,
    claims_lookup_reply,
    claims_update_reply,
    process_claims_update,
)
from natsd.auth.sysreq import CLAIMS_DELETE, CLAIMS_LIST, GENERIC_UPDATE
from natsd.auth.sysreq import LOOKUP as _LOOKUP
from natsd.auth.sysreq import UPDATE as _UPDATE
from natsd.config import schema
from natsd.config.schema import Options
from natsd.ipc import messages as M
from natsd.proto import errors as E

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger("natsd.operator")



def build_authenticator(opts: Options) -> JwtAuthenticator | None:
    """The JWT verifier for operator mode, or None when not in operator mode.

    Raises :class:`OperatorConfigError` for an unusable trust configuration.
    """
    if not (opts.operators or opts.trusted_keys):
        return None
    trusted = TrustedOperators(opts.operators, opts.trusted_keys)
    resolver: MemoryResolver | DirResolver
    r = opts.resolver
    if r is not None and r.type == "full":
        if not r.dir:
            raise OperatorConfigError("resolver of type full requires a dir")
        resolver = DirResolver(r.dir, allow_delete=r.allow_delete, hard_delete=r.hard_delete, limit=r.limit)
        now = time.time()
        for pub, token in opts.resolver_preload:
            resolver.store(token, now, pubkey=pub)
    elif r is None or r.type == "memory":
        resolver = MemoryResolver(dict(opts.resolver_preload))
    else:
        raise OperatorConfigError(f"resolver type {r.type!r} is not supported by natsd yet")
    sys_acc = opts.system_account if opts.system_account != "$SYS" else None
    return JwtAuthenticator(trusted, resolver, sys_acc or trusted.system_account, opts.resolver_pinned_accounts)


def account_routes_from_jwt(info: AccountInfo) -> schema.Account:
    """The exports and authorised imports of a JWT account, in config form.

    Imports the exporter does not authorise (missing or invalid activation
    token, revoked, wrong account) are left out here, so the worker's tables
    never see them; exports are then public to the table, which only ever
    meets vetted imports.
    """
    stream_exports = []
    service_exports = []
    for e in info.exports:
        if e.type == "service":
            rt = (e.response_type or "singleton").lower()
            service_exports.append(
                schema.ServiceExport(
                    subject=e.subject,
                    response_type=rt if rt in ("singleton", "stream", "chunked") else "singleton",
                    response_threshold=e.response_threshold / 1e9 if e.response_threshold else 120.0,
                    account_token_position=e.account_token_position,
                )
            )
        else:
            stream_exports.append(schema.StreamExport(subject=e.subject, account_token_position=e.account_token_position))
    stream_imports = []
    service_imports = []
    for g in info.imports:
        if not g.authorized:
            continue
        imp = g.spec
        if imp.type == "service":
            local = imp.local_subject or imp.to or None
            service_imports.append(schema.ServiceImport(account=imp.account, subject=imp.subject, to=local))
        elif imp.local_subject:
            stream_imports.append(schema.StreamImport(account=imp.account, subject=imp.subject, to=imp.local_subject))
        else:
            stream_imports.append(schema.StreamImport(account=imp.account, subject=imp.subject, prefix=imp.to or None))
    return schema.Account(
        name=info.name,
        stream_exports=tuple(stream_exports),
        service_exports=tuple(service_exports),
        stream_imports=tuple(stream_imports),
        service_imports=tuple(service_imports),
    )


class OperatorMode:
    def __init__(self, sup: Supervisor, authn: JwtAuthenticator) -> None:
        self.sup = sup
        self.authn = authn
        # JWT accounts seen so far, in config form, for the workers' import tables.
        self.routes: dict[str, schema.Account] = {}
        # The account JWT last applied per account (to compare signing keys).
        self.applied: dict[str, AccountClaims] = {}

    async def watch_dir(self, interval: float) -> None:
        """``full`` resolver: notice JWT files changed in the directory by
        other tools (or peers) and apply them to live connections."""
        resolver = self.authn.resolver
        if not isinstance(resolver, DirResolver):
            return
        seen = _mtimes(resolver)
        while True:
            await asyncio.sleep(interval)
            now = _mtimes(resolver)
            for key, stamp in now.items():
                if seen.get(key) != stamp:
                    self._file_changed(key)
            seen = now

    def _file_changed(self, key: str) -> None:
        token = self.authn.resolver.lookup(key)
        if not token:
            return
        claims = self.authn.verify_account_jwt(token, key)
        if isinstance(claims, str):
            log.warning("account %s: JWT in the resolver directory not applied: %s", key, claims)
            return
        log.info("account %s: JWT changed in the resolver directory", key)
        self.apply(key, claims, self.applied.get(key))
        if key in self.routes and self._load(key):
            self.sup.broadcast_accounts()

    def ensure_account(self, pubkey: str) -> None:
        """Make sure the workers know ``pubkey``'s exports/imports (first use)."""
        if pubkey in self.routes:
            return
        if self._load(pubkey):
            self.sup.broadcast_accounts()

    def _load(self, pubkey: str, depth: int = 0) -> bool:
        info = self.authn.account_info(pubkey, time.time())
        if info is None:
            return False
        acc = account_routes_from_jwt(info)
        self.routes[pubkey] = acc
        if depth == 0:
            # The exporters it imports from, so their export details are known.
            for imp in acc.stream_imports + acc.service_imports:  # type: ignore[operator]
                if imp.account not in self.routes:
                    self._load(imp.account, 1)
        return True

    @property
    def system_account(self) -> str | None:
        return self.authn.system_account

    def name_tags(self, account: str, user_jwt: str | None) -> tuple[str, str]:
        """The ``name`` claims of ``account``'s JWT and of ``user_jwt``."""
        from natsd.auth.jwt import JwtError, decode

        claims = self.authn.account_claims(account)
        account_name = claims.name if claims is not None and claims.name else account
        user_name = ""
        if user_jwt:
            try:
                user_name = decode(user_jwt).name or ""
            except JwtError:
                pass
        return account_name, user_name

    def _server_info(self) -> dict[str, Any]:
        return self.sup.sysapi.server_info()

    def handle(self, req: M.SysRequest) -> None:
        if req.account != self.system_account:
            return  # only system-account clients may manage accounts
        subject = req.subject
        reply_body: bytes | None = None
        m = _LOOKUP.match(subject)
        if m is not None:
            acc = m.group(1).decode()
            reply_body = claims_lookup_reply(self.authn.resolver, acc)  # type: ignore[arg-type]
        elif subject == CLAIMS_LIST:
            keys = self.authn.resolver.keys()  # type: ignore[attr-defined]
            reply_body = msgspec.json.encode({"server": self._server_info(), "data": keys})
        elif subject == CLAIMS_DELETE:
            reply_body = self._delete(req.payload)
        else:
            m = _UPDATE.match(subject)
            target = m.group(1).decode() if m is not None else None
            if m is None and subject != GENERIC_UPDATE:
                return
            reply_body = self._update(req.payload, target)
        if req.reply and reply_body is not None:
            self.sup.publish(req.account, req.reply, reply_body)

    def _update(self, body: bytes, target: str | None) -> bytes:
        authn = self.authn
        try:
            token = body.decode("ascii").strip()
        except UnicodeDecodeError:
            token = ""
        checked = authn.verify_account_jwt(token, target) if token else "account_invalid"
        if checked == "account_untrusted":
            # nats-server refuses to store what no trusted operator signed.
            account = target or _subject_of(token) or "n/a"
            log.info("account %s: update refused: issuer not trusted", account)
            return claims_update_reply(
                self._server_info(), account, "jwt update resulted in error", "account validation failed"
            )
        key = target or (checked.sub if isinstance(checked, AccountClaims) else None)
        before = authn.resolver.lookup(key) if key else None
        account, message, error, _ = process_claims_update(
            authn.resolver,  # type: ignore[arg-type]
            body,
            target,
            time.time(),
            operator_key=authn.trusted.operator_key,
            strict=authn.trusted.strict,
        )
        if error is None and isinstance(checked, AccountClaims):
            old = authn.verify_account_jwt(before, account) if before else None
            self.apply(account, checked, old if isinstance(old, AccountClaims) else None)
            if account in self.routes and self._load(account):
                self.sup.broadcast_accounts()
            log.info("account %s: %s", account, message)
        else:
            log.info("account %s: %s - %s", account, message, error or checked)
        return claims_update_reply(self._server_info(), account, message, error)

    def _delete(self, body: bytes) -> bytes:
        """``$SYS.REQ.CLAIMS.DELETE``: a generic JWT self-signed by a trusted
        operator key naming the accounts to delete (``nsc push --prune``)."""
        try:
            deleted = self._delete_checked(body)
        except _DeleteRefused as e:
            return msgspec.json.encode(
                {
                    "server": self._server_info(),
                    "error": {"code": 500, "description": f"delete accounts request by {e.issuer} failed - {e.reason}"},
                }
            )
        log.info("deleted %d account JWT(s) from the resolver directory", deleted)
        return msgspec.json.encode(
            {"server": self._server_info(), "data": {"code": 200, "message": f"deleted {deleted} accounts"}}
        )

    def _delete_checked(self, body: bytes) -> int:
        from natsd.auth.jwt import JwtError, decode

        token = body.decode("ascii", "replace").strip()
        if token.count(".") != 2:
            raise _DeleteRefused("", "expected 3 chunks")
        try:
            claims = decode(token)
        except JwtError:
            raise _DeleteRefused("", "malformed request") from None
        trusted = self.authn.trusted
        if not trusted.is_trusted_issuer(claims.iss):
            raise _DeleteRefused(claims.iss, "not trusted")
        if claims.sub != claims.iss:
            raise _DeleteRefused(claims.iss, "not self signed")
        nats = claims.nats if isinstance(claims.nats, dict) else {}
        accounts = nats.get("accounts")
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            raise _DeleteRefused(claims.iss, "malformed request")
        if self.system_account in accounts:
            raise _DeleteRefused(claims.iss, "not allowed to delete system account")
        resolver = self.authn.resolver
        if not isinstance(resolver, DirResolver) or not resolver.allow_delete:
            raise _DeleteRefused(claims.iss, "delete must be enabled in server config")
        deleted = 0
        for acc in accounts:
            err = resolver.delete(acc)
            if err is not None:
                raise _DeleteRefused(claims.iss, err)
            deleted += 1
            self.routes.pop(acc, None)
            self.applied.pop(acc, None)
            self._expire_connections(acc)
        return deleted

    def _expire_connections(self, account: str) -> None:
        """A deleted account's live clients are closed the way nats-server
        closes them (it expires the account): ``Account Authentication Expired``."""
        sup = self.sup
        for cid, entry in sorted(sup.clients.items()):
            if entry.account == account:
                log.info("cid:%d - closing: account %s deleted", cid, account)
                sup.arbiter.send(entry.worker, M.Disconnect(client_id=cid, error=E.ERR_ACCOUNT_EXPIRED))

    def apply(self, account: str, claims: AccountClaims, old: AccountClaims | None) -> None:
        """Re-evaluate every live connection of ``account`` after an update:
        close the ones the new JWT no longer admits, give users without
        permissions of their own the new default permissions, and close the
        newest connections past a lowered ``conn`` limit (as nats-server)."""
        self.applied[account] = claims
        sup = self.sup
        now = time.time()
        strict = account in self.authn.trusted.strict_keys or self.authn.trusted.strict
        survivors = []
        for cid, entry in sorted(sup.clients.items()):
            if entry.account != account or not entry.jwt:
                continue
            verdict = reevaluate(entry.jwt, claims, now, old_account=old, strict=strict)
            if verdict is not None:
                log.info("cid:%d - closing after account update: %s", cid, verdict)
                sup.arbiter.send(entry.worker, M.Disconnect(client_id=cid, error=verdict))
            else:
                survivors.append((cid, entry))
        default = to_schema_permissions(claims.nats.default_permissions)
        if old is None or default != to_schema_permissions(old.nats.default_permissions):
            for cid, entry in survivors:
                if _follows_account_defaults(entry.jwt or "", claims) and entry.permissions != default:
                    entry.permissions = default
                    sup.arbiter.send(
                        entry.worker,
                        M.UpdatePermissions(account=account, user=entry.user or "", permissions=default, client_id=cid),
                    )
        limit = claims.nats.limits.conn
        if 0 <= limit < len(survivors):
            for cid, entry in survivors[limit:]:
                log.info("cid:%d - closing: account %s connection limit lowered to %d", cid, account, limit)
                sup.arbiter.send(entry.worker, M.Disconnect(client_id=cid, error=E.ERR_MAX_ACCOUNT_CONNS))


def _subject_of(token: str) -> str | None:
    from natsd.auth.jwt import JwtError, decode

    try:
        return decode(token).sub
    except JwtError:
        return None


def _mtimes(resolver: DirResolver) -> dict[str, int]:
    out = {}
    for key in resolver.keys():  # noqa: SIM118 - a resolver, not a dict
        try:
            out[key] = (resolver.dir / f"{key}.jwt").stat().st_mtime_ns
        except FileNotFoundError:
            continue
    return out


def _follows_account_defaults(user_jwt: str, account: AccountClaims) -> bool:
    """True for users with no permissions of their own (nor from a scoped
    signing key): their permissions are the account's defaults."""
    from natsd.auth.jwt import JwtError, UserClaims, UserScope, decode

    try:
        user = decode(user_jwt)
    except JwtError:
        return False
    if not isinstance(user, UserClaims):
        return False
    own = user.nats
    if own.pub.allow or own.pub.deny or own.sub.allow or own.sub.deny or own.resp is not None:
        return False
    for key in account.nats.signing_keys:
        if isinstance(key, UserScope) and key.key == user.iss:
            return False
    return True


class _DeleteRefused(Exception):
    def __init__(self, issuer: str, reason: str) -> None:
        super().__init__(reason)
        self.issuer = issuer
        self.reason = reason

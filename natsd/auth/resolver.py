"""Account resolvers (MEMORY and the directory-backed ``full``) and claim replies.

Theory of operation
-------------------
A resolver maps an account public key to that account's JWT text. It does not
decide trust: :class:`natsd.auth.operator.JwtAuthenticator` re-verifies every JWT it
gets. Resolvers only enforce what keeps their *storage* sane:

* keys are validated as account nkeys before use; for :class:`DirResolver` this is
  what stops a crafted subject from becoming a path (CVE-2022-28357);
* a stored JWT must decode as account claims whose ``sub`` is the key it is stored
  under;
* the store rule of nats-server's ``saveIfNewer``: when a JWT for the account already
  exists, keep it if its ``jti`` equals the new one's or its ``iat`` is newer.

:func:`claims_update_reply` / :func:`claims_lookup_reply` build the exact reply
bodies for ``$SYS.REQ.[ACCOUNT.<acc>.]CLAIMS.UPDATE`` and ``...CLAIMS.LOOKUP`` (spec
section 3.9); :func:`process_claims_update` is the update handler's decision logic,
with the order nats-server uses. Only this module touches files.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from natsd.auth.jwt import PREFIX_ACCOUNT, AccountClaims, JwtError, decode, is_public_key
from natsd.auth.jwt_validate import validation_errors

__all__ = [
    "DirResolver",
    "MemoryResolver",
    "StoreResult",
    "claims_lookup_reply",
    "claims_update_reply",
    "process_claims_update",
]

StoreOutcome = Literal["stored", "unchanged", "kept_newer", "rejected"]


@dataclass(frozen=True, slots=True)
class StoreResult:
    outcome: StoreOutcome
    account: str = ""
    error: str = ""  # for "rejected": the nats-server error text

    @property
    def ok(self) -> bool:
        return self.outcome != "rejected"

    @property
    def changed(self) -> bool:
        return self.outcome == "stored"


def _account_claims(token: str) -> AccountClaims | str:
    try:
        claims = decode(token)
    except JwtError as exc:
        return str(exc)
    if not isinstance(claims, AccountClaims):
        return "not account claim"
    return claims


def _keep_existing(existing: str | None, new: AccountClaims) -> bool:
    if existing is None:
        return False
    old = _account_claims(existing)
    if isinstance(old, str):
        return False  # an undecodable stored JWT is replaced
    return old.jti == new.jti or old.iat > new.iat


class MemoryResolver:
    """``resolver: MEMORY`` seeded from ``resolver_preload``."""

    def __init__(self, preload: Mapping[str, str] | None = None) -> None:
        self._jwts: dict[str, str] = {}
        for pubkey, token in (preload or {}).items():
            result = self.store(token.strip(), 0.0, pubkey=pubkey)
            if not result.ok:
                raise ValueError(f"invalid account JWT for {pubkey}: {result.error}")

    def lookup(self, pubkey: str) -> str | None:
        return self._jwts.get(pubkey) if is_public_key(pubkey, PREFIX_ACCOUNT) else None

    def store(self, token: str, now: float, *, pubkey: str | None = None) -> StoreResult:
        claims = _account_claims(token)
        if isinstance(claims, str):
            return StoreResult("rejected", pubkey or "", claims)
        key = claims.sub if pubkey is None else pubkey
        if not is_public_key(key, PREFIX_ACCOUNT):
            return StoreResult("rejected", key, "invalid public key")
        if claims.sub != key:
            return StoreResult("rejected", key, "jwt subject nkey and provided nkey do not match")
        existing = self._jwts.get(key)
        if existing == token:
            return StoreResult("unchanged", key)
        if _keep_existing(existing, claims):
            return StoreResult("kept_newer", key)
        self._jwts[key] = token
        return StoreResult("stored", key)

    def keys(self) -> list[str]:
        return sorted(self._jwts)


class DirResolver:
    """``resolver { type: full, dir: ... }``: one ``<pubkey>.jwt`` file per account."""

    def __init__(
        self,
        dir: str | os.PathLike[str],
        *,
        allow_delete: bool = False,
        hard_delete: bool = False,
        limit: int = 1000,
        create: bool = True,
    ) -> None:
        self.dir = Path(dir)
        if create:
            self.dir.mkdir(parents=True, exist_ok=True)
        if not self.dir.is_dir():
            raise ValueError(f"resolver dir {self.dir} is not a directory")
        self.allow_delete = allow_delete
        self.hard_delete = hard_delete
        self.limit = limit

    def _path(self, pubkey: str) -> Path | None:
        # The only gate between a request subject and the file system.
        if not is_public_key(pubkey, PREFIX_ACCOUNT):
            return None
        return self.dir / f"{pubkey}.jwt"

    def lookup(self, pubkey: str) -> str | None:
        path = self._path(pubkey)
        if path is None:
            return None
        try:
            return path.read_text("ascii").strip() or None
        except (FileNotFoundError, UnicodeDecodeError):
            return None

    def keys(self) -> list[str]:
        return sorted(
            p.name[: -len(".jwt")]
            for p in self.dir.glob("*.jwt")
            if is_public_key(p.name[: -len(".jwt")], PREFIX_ACCOUNT)
        )

    def store(self, token: str, now: float, *, pubkey: str | None = None) -> StoreResult:
        claims = _account_claims(token)
        if isinstance(claims, str):
            return StoreResult("rejected", pubkey or "", claims)
        key = claims.sub if pubkey is None else pubkey
        path = self._path(key)
        if path is None:
            return StoreResult("rejected", key, "invalid public key")
        if claims.sub != key:
            return StoreResult("rejected", key, "jwt subject nkey and provided nkey do not match")
        existing = self.lookup(key)
        if existing == token:
            return StoreResult("unchanged", key)
        if _keep_existing(existing, claims):
            return StoreResult("kept_newer", key)
        if existing is None and len(self.keys()) >= self.limit:
            return StoreResult("rejected", key, "jwt store is full")
        tmp = path.with_suffix(".jwt.tmp")
        tmp.write_text(token, "ascii")
        os.replace(tmp, path)  # readers never see a half-written JWT
        return StoreResult("stored", key)

    def delete(self, pubkey: str) -> str | None:
        """Delete an account's JWT; None on success, else the error text."""
        if not self.allow_delete:
            return "delete must be enabled in server config"
        path = self._path(pubkey)
        if path is None:
            return "malformed request"
        try:
            if self.hard_delete:
                path.unlink()
            else:
                path.rename(path.with_name(path.name + ".deleted"))
        except FileNotFoundError:
            pass
        return None


# -- reply bodies ---------------------------------------------------------------------


def claims_update_reply(
    server: Mapping[str, Any], account: str, message: str, error: str | None = None
) -> bytes:
    """nats-server ``respondToUpdate``: 200 ``data`` on success, 500 ``error`` else."""
    body: dict[str, Any] = {"server": dict(server)}
    if error is None:
        body["data"] = {"account": account, "code": 200, "message": message}
    else:
        body["error"] = {"account": account, "code": 500, "description": f"{message} - {error}"}
    return msgspec.json.encode(body)


def claims_lookup_reply(resolver: MemoryResolver | DirResolver, pubkey: str) -> bytes:
    """The stored JWT, or an empty body when unknown (so peers learn it is absent)."""
    token = resolver.lookup(pubkey)
    return token.encode("ascii") if token else b""


def process_claims_update(
    resolver: MemoryResolver | DirResolver,
    body: bytes,
    subject_account: str | None,
    now: float,
    *,
    operator_key: str | None = None,
    strict: bool = False,
) -> tuple[str, str, str | None, StoreResult | None]:
    """Decide a ``CLAIMS.UPDATE`` for a storing resolver.

    ``subject_account`` is ``<acc>`` from ``$SYS.REQ.ACCOUNT.<acc>.CLAIMS.UPDATE``
    (None for ``$SYS.REQ.CLAIMS.UPDATE``). Returns ``(account, message, error,
    result)`` for :func:`claims_update_reply`. Trust is *not* decided here: applying
    the stored JWT to a live account re-verifies it (untrusted => not applied).
    """
    if not body:
        return subject_account or "n/a", "jwt update error", "request body is empty", None
    try:
        claims = _account_claims(body.decode("ascii"))
    except UnicodeDecodeError:
        claims = "invalid token"
    if isinstance(claims, str):
        return subject_account or "n/a", "jwt update resulted in error", claims, None
    if errors := validation_errors(claims):
        return claims.sub, "jwt validation failed", "validation errors: " + "; ".join(errors), None
    account = subject_account or claims.sub
    if subject_account is not None and claims.sub != subject_account:
        return account, "jwt update resulted in error", "subject does not match jwt content", None
    if strict and operator_key is not None and claims.iss == operator_key:
        err = "operator requires issuer to be a signing key"
        return account, "jwt update resulted in error", err, None
    result = resolver.store(body.decode("ascii"), now, pubkey=account)
    if not result.ok:
        return account, "jwt update resulted in error", result.error, result
    return account, "jwt updated", None, result

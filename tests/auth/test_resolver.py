"""natsd.auth.resolver: store rules, path safety, reply bodies."""

from __future__ import annotations

import json
from pathlib import Path

import nkeys
import pytest

from natsd.auth.resolver import (
    DirResolver,
    MemoryResolver,
    claims_lookup_reply,
    claims_update_reply,
    process_claims_update,
)
from tests.auth import jwt_fixtures as fx

OP = fx.keypair(nkeys.PREFIX_BYTE_OPERATOR)
ACC = fx.keypair(nkeys.PREFIX_BYTE_ACCOUNT)
LIMITS = {"conn": -1, "subs": -1, "payload": -1, "imports": -1, "exports": -1}


def account(iat: int, jti: str, **nats: object) -> str:
    return fx.mint(OP, fx.pub(ACC), {"type": "account", "limits": LIMITS, **nats}, iat=iat, jti=jti)


@pytest.fixture(params=["memory", "dir"])
def resolver(request: pytest.FixtureRequest, tmp_path: Path) -> MemoryResolver | DirResolver:
    return MemoryResolver() if request.param == "memory" else DirResolver(tmp_path / "jwt")


def test_store_rule_keeps_same_jti_or_newer_iat(resolver: MemoryResolver | DirResolver) -> None:
    key = fx.pub(ACC)
    first = account(100, "one")
    assert resolver.store(first, 0).outcome == "stored"
    assert resolver.store(account(200, "one"), 0).outcome == "kept_newer"  # same jti
    assert resolver.store(account(50, "two"), 0).outcome == "kept_newer"  # older
    assert resolver.lookup(key) == first
    newer = account(300, "three")
    assert resolver.store(newer, 0).outcome == "stored"
    assert resolver.lookup(key) == newer
    assert resolver.store(newer, 0).outcome == "unchanged"


def test_store_rejects_mismatched_key(resolver: MemoryResolver | DirResolver) -> None:
    other = fx.pub(fx.keypair(nkeys.PREFIX_BYTE_ACCOUNT))
    result = resolver.store(account(1, "x"), 0, pubkey=other)
    assert not result.ok and "do not match" in result.error
    assert resolver.lookup(other) is None


@pytest.mark.parametrize("bad", ["../../etc/passwd", "A" * 56, "", fx.pub(OP), "x/../y"])
def test_dir_resolver_never_uses_unvalidated_names(tmp_path: Path, bad: str) -> None:
    res = DirResolver(tmp_path / "jwt")
    assert res.lookup(bad) is None
    assert not res.store(account(1, "x"), 0, pubkey=bad).ok
    assert list((tmp_path / "jwt").iterdir()) == []


def test_dir_resolver_file_layout_and_limit(tmp_path: Path) -> None:
    res = DirResolver(tmp_path, limit=1)
    assert res.store(account(1, "x"), 0).ok
    assert (tmp_path / f"{fx.pub(ACC)}.jwt").is_file()
    other = fx.keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    full = fx.mint(OP, fx.pub(other), {"type": "account"})
    assert res.store(full, 0).error == "jwt store is full"


def test_update_reply_bodies() -> None:
    server = {"name": "n1", "id": "NID"}
    ok = json.loads(claims_update_reply(server, "AX", "jwt updated"))
    assert ok == {
        "server": server,
        "data": {"account": "AX", "code": 200, "message": "jwt updated"},
    }
    err = json.loads(claims_update_reply(server, "AX", "jwt update resulted in error", "boom"))
    assert err["error"] == {
        "account": "AX",
        "code": 500,
        "description": "jwt update resulted in error - boom",
    }


def test_process_update_paths() -> None:
    res = MemoryResolver()
    key = fx.pub(ACC)
    token = account(10, "a").encode()
    assert process_claims_update(res, b"", key, 0)[1:3] == (
        "jwt update error",
        "request body is empty",
    )
    other = fx.pub(fx.keypair(nkeys.PREFIX_BYTE_ACCOUNT))
    assert process_claims_update(res, token, other, 0)[2] == "subject does not match jwt content"
    assert process_claims_update(res, token, key, 0, operator_key=fx.pub(OP), strict=True)[2] == (
        "operator requires issuer to be a signing key"
    )
    acc, msg, error, _ = process_claims_update(res, token, None, 0)
    assert (acc, msg, error) == (key, "jwt updated", None)
    assert claims_lookup_reply(res, key) == token
    assert claims_lookup_reply(res, other) == b""
    assert process_claims_update(res, b"garbage", key, 0)[1] == "jwt update resulted in error"


def test_fixture_preload_and_live_update() -> None:
    _, _, preload = fx.memory_conf()
    res = MemoryResolver(preload)
    a = fx.expected()["accounts"]["A"]["public"]
    update = fx.read("accounts/A-update-revokes-live-revoked.jwt").encode()
    acc, msg, error, result = process_claims_update(res, update, a, 0)
    assert (acc, msg, error) == (a, "jwt updated", None) and result is not None and result.changed
    # the older original no longer replaces it
    assert res.store(fx.read("accounts/A.jwt"), 0).outcome == "kept_newer"

"""JwtAuthenticator on freshly minted trust chains: the rules fixtures don't cover."""

from __future__ import annotations

import datetime as dt
from typing import Any

import nkeys
import pytest

from natsd.auth.authenticate import AuthFail, AuthOk, ClientInfo
from natsd.auth.jwt import TimeRange, UserTemplate
from natsd.auth.operator import (
    JwtAuthenticator,
    OperatorConfigError,
    TrustedOperators,
    validate_times,
)
from natsd.auth.resolver import MemoryResolver
from tests.auth import jwt_fixtures as fx

NONCE = "nonce-123"
NOW = 1748779200.0  # 2025-06-01 12:00:00 UTC
LIMITS = {"conn": -1, "subs": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True}


class Chain:
    def __init__(self, *, strict: bool = False, **acc_nats: Any) -> None:
        self.op = fx.keypair(nkeys.PREFIX_BYTE_OPERATOR)
        self.op_sk = fx.keypair(nkeys.PREFIX_BYTE_OPERATOR)
        self.acc = fx.keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        self.sk = fx.keypair(nkeys.PREFIX_BYTE_ACCOUNT)
        self.user = fx.keypair(nkeys.PREFIX_BYTE_USER)
        self.op_jwt = fx.mint(
            self.op,
            fx.pub(self.op),
            {
                "type": "operator",
                "signing_keys": [fx.pub(self.op_sk)],
                "strict_signing_key_usage": strict,
            },
        )
        nats = {"type": "account", "limits": LIMITS, "signing_keys": [fx.pub(self.sk)], **acc_nats}
        self.acc_jwt = fx.mint(self.op_sk, fx.pub(self.acc), nats, name="ACC")

    def auth(self, **kw: Any) -> JwtAuthenticator:
        res = MemoryResolver({fx.pub(self.acc): self.acc_jwt})
        return JwtAuthenticator(TrustedOperators([self.op_jwt]), res, None, local_zone=dt.UTC, **kw)

    def user_jwt(self, signer: nkeys.KeyPair | None = None, **nats: Any) -> str:
        signer = signer or self.acc
        top = nats.pop("_top", {})
        if signer is not self.acc:
            nats.setdefault("issuer_account", fx.pub(self.acc))
        return fx.mint(
            signer,
            fx.pub(self.user),
            {"type": "user", "subs": -1, "payload": -1, **nats},
            name="bob",
            **top,
        )

    def verify(
        self,
        token: str,
        *,
        auth: JwtAuthenticator | None = None,
        conn_type: str = "STANDARD",
        sig: bool = True,
    ) -> AuthOk | AuthFail:
        seed = self.user.seed.decode()
        connect = fx.Connect(jwt=token, sig=fx.sign_nonce(seed, NONCE) if sig else None)
        client = ClientInfo(host="127.0.0.1", port=1, nonce=NONCE, conn_type=conn_type)
        return (auth or self.auth()).verify(connect, client, NOW)


def reason(result: AuthOk | AuthFail) -> str:
    return "ok" if isinstance(result, AuthOk) else result.reason


def test_identity_and_signing_key_users() -> None:
    c = Chain()
    assert reason(c.verify(c.user_jwt())) == "ok"
    assert reason(c.verify(c.user_jwt(c.sk))) == "ok"
    # signing key without issuer_account => the sk itself is looked up as an account
    bare = fx.mint(c.sk, fx.pub(c.user), {"type": "user"})
    assert reason(c.verify(bare)) == "account_missing"


def test_strict_operator_forbids_account_identity_key_for_users() -> None:
    c = Chain(strict=True)
    assert reason(c.verify(c.user_jwt())) == "issuer_unknown"
    assert reason(c.verify(c.user_jwt(c.sk))) == "ok"


def test_untrusted_operator() -> None:
    c, other = Chain(), Chain()
    res = MemoryResolver({fx.pub(c.acc): c.acc_jwt})
    auth = JwtAuthenticator(TrustedOperators([other.op_jwt]), res, None)
    assert reason(c.verify(c.user_jwt(), auth=auth)) == "account_untrusted"


def test_user_scope_template_expansion() -> None:
    c = Chain()
    scope = {
        "kind": "user_scope",
        "key": fx.pub(c.sk),
        "role": "r",
        "template": {
            "pub": {"allow": ["u.{{name()}}.>", "t.{{tag(team)}}"]},
            "sub": {"allow": ["{{account-name()}}.x"]},
            "subs": 5,
        },
    }
    c.acc_jwt = fx.mint(
        c.op_sk,
        fx.pub(c.acc),
        {"type": "account", "limits": LIMITS, "signing_keys": [scope]},
        name="ACC",
    )
    scoped = fx.mint(
        c.sk,
        fx.pub(c.user),
        {"type": "user", "issuer_account": fx.pub(c.acc), "tags": ["team:red", "team:blue"]},
        name="bob",
    )
    result = c.verify(scoped)
    assert isinstance(result, AuthOk) and result.permissions is not None
    assert result.permissions.publish is not None and result.permissions.subscribe is not None
    assert result.permissions.publish.allow == ("u.bob.>", "t.red", "t.blue")
    assert result.permissions.subscribe.allow == ("ACC.x",)
    assert result.max_subscriptions == 5
    # a scoped user must not carry its own permissions or limits
    assert reason(c.verify(c.user_jwt(c.sk, pub={"allow": [">"]}))) == "scoped_user_invalid"


def test_bearer_and_disallow_bearer() -> None:
    c = Chain()
    assert reason(c.verify(c.user_jwt(bearer_token=True), sig=False)) == "ok"
    assert reason(c.verify(c.user_jwt(), sig=False)) == "signature_missing"
    c2 = Chain(limits={**LIMITS, "disallow_bearer": True})
    assert reason(c2.verify(c2.user_jwt(bearer_token=True), sig=False)) == "bearer_disallowed"


def test_allowed_connection_types() -> None:
    c = Chain()
    ws_only = c.user_jwt(allowed_connection_types=["websocket"])
    assert reason(c.verify(ws_only)) == "conn_type_not_allowed"
    assert reason(c.verify(ws_only, conn_type="WEBSOCKET")) == "ok"
    assert (
        reason(c.verify(c.user_jwt(allowed_connection_types=["FUTURE"]))) == "conn_type_not_allowed"
    )
    mixed = c.user_jwt(allowed_connection_types=["STANDARD", "FUTURE"])
    assert reason(c.verify(mixed)) == "ok"


def test_pinned_accounts() -> None:
    c = Chain()
    assert (
        reason(c.verify(c.user_jwt(), auth=c.auth(pinned_accounts=["AOTHER"])))
        == "account_not_pinned"
    )
    assert reason(c.verify(c.user_jwt(), auth=c.auth(pinned_accounts=[fx.pub(c.acc)]))) == "ok"


def test_wildcard_revocation_and_limits_min() -> None:
    c = Chain(revocations={"*": int(fx.FIXED_IAT)}, limits={**LIMITS, "subs": 10, "payload": 100})
    assert reason(c.verify(c.user_jwt())) == "revoked"
    later = c.user_jwt(subs=20, payload=50, _top={"iat": fx.FIXED_IAT + 1})
    result = c.verify(later)
    assert isinstance(result, AuthOk)
    assert (result.max_subscriptions, result.max_payload) == (10, 50)


def test_default_permissions_apply_without_user_permissions() -> None:
    c = Chain(default_permissions={"pub": {"deny": ["secret.>"]}})
    result = c.verify(c.user_jwt())
    assert isinstance(result, AuthOk) and result.permissions is not None
    assert result.permissions.publish is not None and result.permissions.publish.deny == (
        "secret.>",
    )


def test_expired_account() -> None:
    c = Chain()
    c.acc_jwt = fx.mint(c.op_sk, fx.pub(c.acc), {"type": "account", "limits": LIMITS}, exp=1000)
    assert reason(c.verify(c.user_jwt())) == "account_expired"


@pytest.mark.parametrize(
    ("start", "end", "hour", "inside"),
    [
        ("09:00:00", "17:00:00", 12, True),
        ("09:00:00", "17:00:00", 18, False),
        ("22:00:00", "06:00:00", 23, True),
        ("22:00:00", "06:00:00", 5, True),
        ("22:00:00", "06:00:00", 12, False),
        ("00:00:00", "00:00:00", 0, False),
    ],
)
def test_time_windows(start: str, end: str, hour: int, inside: bool) -> None:
    now = dt.datetime(2025, 6, 1, hour, 0, 1, tzinfo=dt.UTC).timestamp()
    ok, left = validate_times(UserTemplate(times=(TimeRange(start=start, end=end),)), now, dt.UTC)
    assert ok is inside and (left > 0) is inside


def test_times_location() -> None:
    t = UserTemplate(
        times=(TimeRange(start="09:00:00", end="17:00:00"),), times_location="Asia/Tokyo"
    )
    now = dt.datetime(2025, 6, 1, 1, 0, 0, tzinfo=dt.UTC).timestamp()  # 10:00 in Tokyo
    assert validate_times(t, now, dt.UTC)[0]
    assert not validate_times(UserTemplate(times=t.times), now, dt.UTC)[0]


def test_operator_config_errors() -> None:
    c = Chain()
    with pytest.raises(OperatorConfigError):
        TrustedOperators([c.op_jwt], [fx.pub(c.op)])
    not_self = fx.mint(c.op_sk, fx.pub(c.op), {"type": "operator"})
    with pytest.raises(OperatorConfigError):
        TrustedOperators([not_self])
    future = fx.mint(c.op, fx.pub(c.op), {"type": "operator", "assert_server_version": "9.0.0"})
    with pytest.raises(OperatorConfigError):
        TrustedOperators([future], server_version="2.11.0")
    keys_only = TrustedOperators(trusted_keys=[fx.pub(c.op)])
    assert keys_only.is_trusted_issuer(fx.pub(c.op)) and keys_only.system_account is None

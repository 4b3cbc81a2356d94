"""Every connect-time case of the fixture set, decided by JwtAuthenticator alone.

The expected outcomes come from expected.json (what nats-server 2.15.1 did); the
authenticator is built from server-memory-resolver.conf's own values.
"""

from __future__ import annotations

import datetime as dt

import pytest

from natsd.auth.authenticate import AuthFail, AuthOk, ClientInfo
from natsd.auth.jwt import AccountClaims, decode, parse_creds
from natsd.auth.operator import JwtAuthenticator, TrustedOperators, is_revoked, reevaluate
from natsd.auth.resolver import MemoryResolver
from tests.auth import jwt_fixtures as fx

NONCE = "pE2d1H0DzCSIuA4GkdKbKw"
# 2025-06-01 12:00:00 UTC: after every fixture iat, before the not-yet-valid nbf.
NOW = 1748779200.0
UTC = dt.UTC


def authenticator() -> JwtAuthenticator:
    op_jwt, sys_acc, preload = fx.memory_conf()
    trusted = TrustedOperators([op_jwt])
    return JwtAuthenticator(trusted, MemoryResolver(preload), sys_acc, local_zone=UTC)


def client(host: str = "127.0.0.1") -> ClientInfo:
    return ClientInfo(host=host, port=4222, nonce=NONCE)


def outcome(result: AuthOk | AuthFail) -> str:
    return "ok" if isinstance(result, AuthOk) else f"-ERR '{result.wire_text}'"


def _connect_cases() -> list[dict[str, str]]:
    if not (fx.FIXTURES / "expected.json").is_file():
        return []
    return list(fx.expected()["connect_cases"])


@pytest.mark.parametrize("case", _connect_cases(), ids=lambda c: c["user"])
def test_connect_case_matches_nats_server(case: dict[str, str]) -> None:
    jwt, seed = parse_creds(fx.read(case["creds"]))
    connect = fx.Connect(jwt=jwt, sig=fx.sign_nonce(seed, NONCE))
    assert outcome(authenticator().verify(connect, client(), NOW)) == case["expect"]


def test_fixture_set_is_present_or_skipped() -> None:
    fx.fixtures_dir()
    assert len(_connect_cases()) >= 20


def _alice() -> tuple[str, str]:
    return parse_creds(fx.read("users/A/alice.creds"))


def test_protocol_cases() -> None:
    auth = authenticator()
    jwt, seed = _alice()
    carol_seed = parse_creds(fx.read("users/C/carol.creds"))[1]
    cases = {c["id"]: c["expect"] for c in fx.expected()["protocol_cases"]}
    raw_sig = fx.sign_nonce(seed, NONCE)
    std_sig = raw_sig.replace("-", "+").replace("_", "/") + "=" * (-len(raw_sig) % 4)
    bearer = parse_creds(fx.read("users/A/bearer.creds"))[0]
    got = {
        "alice-no-sig": auth.verify(fx.Connect(jwt=jwt), client(), NOW),
        "alice-wrong-sig": auth.verify(
            fx.Connect(jwt=jwt, sig=fx.sign_nonce(carol_seed, NONCE)), client(), NOW
        ),
        "alice-sig-std-base64": auth.verify(fx.Connect(jwt=jwt, sig=std_sig), client(), NOW),
        "bearer-no-sig": auth.verify(fx.Connect(jwt=bearer), client(), NOW),
        "no-jwt": auth.verify(fx.Connect(), client(), NOW),
    }
    assert {k: outcome(v) for k, v in got.items()} == cases


def test_signature_over_another_nonce_fails() -> None:
    jwt, seed = _alice()
    connect = fx.Connect(jwt=jwt, sig=fx.sign_nonce(seed, "another-connections-nonce"))
    result = authenticator().verify(connect, client(), NOW)
    assert isinstance(result, AuthFail) and result.reason == "signature_invalid"


def test_ok_result_binds_account_pubkey_and_permissions() -> None:
    jwt, seed = parse_creds(fx.read("users/A/restricted.creds"))
    result = authenticator().verify(
        fx.Connect(jwt=jwt, sig=fx.sign_nonce(seed, NONCE)), client(), NOW
    )
    assert isinstance(result, AuthOk)
    assert result.account == fx.expected()["accounts"]["A"]["public"]
    assert result.user == fx.expected()["users"]["A/restricted"]["public"]
    perms = result.permissions
    assert perms is not None and perms.publish is not None and perms.subscribe is not None
    assert perms.publish.allow == ("a.ok.>",) and perms.publish.deny == ("a.ok.secret",)
    assert perms.subscribe.allow == ("_INBOX.>", "a.ok.>")
    assert perms.allow_responses is not None and perms.allow_responses.max_msgs == 1
    assert not result.is_system


def test_system_account_user_is_system() -> None:
    jwt, seed = parse_creds(fx.read("users/SYS/sysuser.creds"))
    result = authenticator().verify(
        fx.Connect(jwt=jwt, sig=fx.sign_nonce(seed, NONCE)), client(), NOW
    )
    assert isinstance(result, AuthOk) and result.is_system


def test_cidr_user_admitted_from_inside_its_network() -> None:
    jwt, seed = parse_creds(fx.read("users/A/cidr.creds"))
    connect = fx.Connect(jwt=jwt, sig=fx.sign_nonce(seed, NONCE))
    assert isinstance(authenticator().verify(connect, client("10.1.2.3"), NOW), AuthOk)
    assert isinstance(authenticator().verify(connect, client("::ffff:10.1.2.3"), NOW), AuthOk)


def test_times_ok_expires_at_window_end() -> None:
    jwt, seed = parse_creds(fx.read("users/A/times-ok.creds"))
    result = authenticator().verify(
        fx.Connect(jwt=jwt, sig=fx.sign_nonce(seed, NONCE)), client(), NOW
    )
    assert isinstance(result, AuthOk) and result.expires is not None
    end = dt.datetime.fromtimestamp(NOW, UTC).replace(hour=23, minute=59, second=59)
    assert result.expires == pytest.approx(end.timestamp())


def test_untampered_original_is_accepted() -> None:
    seed = fx.read("users/A/tampered.nk")
    jwt = fx.read("users/A/tampered.untampered.jwt")
    result = authenticator().verify(
        fx.Connect(jwt=jwt, sig=fx.sign_nonce(seed, NONCE)), client(), NOW
    )
    assert isinstance(result, AuthOk)


def test_account_info_imports_and_limits() -> None:
    e = fx.expected()["accounts"]
    auth = authenticator()
    b = auth.account_info(e["B"]["public"], NOW)
    assert b is not None and b.max_connections == -1
    assert [g.authorized for g in b.imports] == [True, True, True, True]
    d = auth.account_info(e["D"]["public"], NOW)
    assert d is not None
    granted = {g.spec.subject: g.authorized for g in d.imports}
    assert granted == {"a.public.>": True, "a.private.>": False, "a.psvc": False}
    a = auth.account_info(e["A"]["public"], NOW)
    assert a is not None and a.jetstream["mem_storage"] == 16777216
    f = auth.account_info(e["F"]["public"], NOW)
    assert f is not None and f.max_connections == 0
    for unusable in ("E", "W"):
        assert auth.account_info(e[unusable]["public"], NOW) is None
    # The connection limit read on every CONNECT agrees with the full info.
    assert auth.max_connections(e["B"]["public"]) == -1
    assert auth.max_connections(e["F"]["public"]) == 0
    assert auth.max_connections("A" + "B" * 55) == -1  # unknown account


def test_live_revocation_decision() -> None:
    update = decode(fx.read("accounts/A-update-revokes-live-revoked.jwt"))
    original = decode(fx.read("accounts/A.jwt"))
    assert isinstance(update, AccountClaims) and isinstance(original, AccountClaims)
    live = fx.read("users/A/live-revoked.jwt")
    live_claims = decode(live)
    assert not is_revoked(live_claims, original)  # type: ignore[arg-type]
    assert is_revoked(live_claims, update)  # type: ignore[arg-type]
    assert reevaluate(live, original, NOW) is None
    assert reevaluate(live, update, NOW, old_account=original) == "User Authentication Revoked"
    assert reevaluate(fx.read("users/A/alice.jwt"), update, NOW, old_account=original) is None


def test_live_expiry_decision() -> None:
    original = decode(fx.read("accounts/A.jwt"))
    assert isinstance(original, AccountClaims)
    expired = fx.read("users/A/expired.jwt")
    exp = decode(expired).exp
    assert reevaluate(expired, original, exp - 1) is None
    assert reevaluate(expired, original, exp + 1) == "User Authentication Expired"

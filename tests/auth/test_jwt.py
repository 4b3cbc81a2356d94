"""natsd.auth.jwt: framing, signatures, claim typing, creds parsing."""

from __future__ import annotations

import json

import nkeys
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.auth.jwt import (
    AccountClaims,
    JwtError,
    UserClaims,
    decode,
    is_expired,
    not_yet_valid,
    parse_creds,
)
from natsd.auth.jwt_validate import validation_errors
from tests.auth import jwt_fixtures as fx

ACC = fx.keypair(nkeys.PREFIX_BYTE_ACCOUNT)
USER = fx.keypair(nkeys.PREFIX_BYTE_USER)
OP = fx.keypair(nkeys.PREFIX_BYTE_OPERATOR)


def user_jwt(**nats: object) -> str:
    return fx.mint(ACC, fx.pub(USER), {"type": "user", "subs": -1, **nats})


def test_roundtrip_user_claims() -> None:
    claims = decode(user_jwt(pub={"allow": ["a.>"]}, src="10.0.0.0/8, 192.168.0.0/16"))
    assert isinstance(claims, UserClaims)
    assert claims.nats.pub.allow == ("a.>",)
    assert claims.nats.src == ("10.0.0.0/8", "192.168.0.0/16")
    assert claims.nats.payload == 0  # absent numbers read as 0, as in Go


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("a.b", "malformed"),
        ("a.b.c.d", "malformed"),
        ("!!.!!.!!", "malformed"),
    ],
)
def test_framing_errors(token: str, reason: str) -> None:
    with pytest.raises(JwtError) as err:
        decode(token)
    assert err.value.reason == reason


def test_oversized_and_truncated() -> None:
    token = user_jwt()
    with pytest.raises(JwtError) as err:
        decode(token, max_size=len(token) - 1)
    assert err.value.reason == "too_large"
    for cut in (1, 10, len(token) // 2):
        with pytest.raises(JwtError):
            decode(token[:-cut])


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ({"typ": "jwt", "alg": "ED25519-NKEY"}, True),
        ({"typ": "JWT", "alg": "RS256"}, False),
        ({"typ": "JWS", "alg": "ed25519-nkey"}, False),
        ({"alg": "ed25519-nkey"}, False),
    ],
)
def test_header_rules(header: dict[str, str], ok: bool) -> None:
    token = fx.mint(ACC, fx.pub(USER), {"type": "user"}, header=header)
    if ok:
        assert isinstance(decode(token), UserClaims)
    else:
        with pytest.raises(JwtError) as err:
            decode(token)
        assert err.value.reason == "bad_header"


def test_version_above_two_rejected() -> None:
    with pytest.raises(JwtError) as err:
        decode(fx.mint(ACC, fx.pub(USER), {"type": "user", "version": 3}))
    assert err.value.reason == "unsupported_version"


def test_wrong_issuer_role() -> None:
    # A user JWT must be issued by an account key, an account JWT by an operator/account.
    with pytest.raises(JwtError) as err:
        decode(fx.mint(OP, fx.pub(USER), {"type": "user"}))
    assert err.value.reason == "bad_issuer"
    with pytest.raises(JwtError) as err:
        decode(fx.mint(USER, fx.pub(ACC), {"type": "account"}))
    assert err.value.reason == "bad_issuer"


def test_tampered_payload_fails_signature() -> None:
    head, _body, sig = user_jwt().split(".")
    other = user_jwt(pub={"allow": ["x"]}).split(".")[1]
    with pytest.raises(JwtError) as err:
        decode(f"{head}.{other}.{sig}")
    assert err.value.reason == "bad_signature"


def test_fixture_tampered_user_fails() -> None:
    with pytest.raises(JwtError) as err:
        decode(fx.read("users/A/tampered.jwt"))
    assert err.value.reason == "bad_signature"


def test_v1_signature_covers_payload_only() -> None:
    head = fx.b64(json.dumps({"typ": "JWT", "alg": "ed25519"}).encode())
    body = fx.b64(
        json.dumps({"iss": fx.pub(ACC), "sub": fx.pub(USER), "type": "user", "nats": {}}).encode()
    )
    token = f"{head}.{body}.{fx.b64(ACC.sign(body.encode()))}"
    claims = decode(token)
    assert isinstance(claims, UserClaims) and claims.version == 1 and claims.nats.subs == -1


def test_times() -> None:
    claims = decode(fx.mint(ACC, fx.pub(USER), {"type": "user"}, exp=2000, nbf=1000))
    assert not_yet_valid(claims, 999) and not not_yet_valid(claims, 1000)
    assert not is_expired(claims, 2000) and is_expired(claims, 2001)


def test_account_without_limits_reads_zero_and_scope_defaults() -> None:
    scope = {"kind": "user_scope", "key": fx.pub(ACC), "template": {"pub": {"allow": ["x"]}}}
    claims = decode(fx.mint(OP, fx.pub(ACC), {"type": "account", "signing_keys": [scope]}))
    assert isinstance(claims, AccountClaims)
    assert claims.nats.limits.conn == 0
    keys = claims.nats.signing_key_map()
    assert keys[fx.pub(ACC)] is not None and keys[fx.pub(ACC)].template.subs == -1  # type: ignore[union-attr]


def test_validation_catches_bad_permissions_and_cidr() -> None:
    bad = decode(
        user_jwt(
            pub={"allow": ["a b"]}, src=["nonsense"], times=[{"start": "25:00:00", "end": "x"}]
        )
    )
    assert len(validation_errors(bad)) >= 3
    assert validation_errors(decode(user_jwt(sub={"allow": ["a q"]}))) == []


def test_fixture_E_account_is_invalid_and_B_valid() -> None:
    assert validation_errors(decode(fx.read("accounts/E.jwt")))
    assert validation_errors(decode(fx.read("accounts/B.jwt"))) == []


def test_parse_creds_tolerates_whitespace_and_crlf() -> None:
    text = fx.read("users/A/alice.creds")
    jwt, seed = parse_creds(text)
    messy = "\r\n\r\n  " + text.replace("\n", "\r\n  \r\n") + "\n\n"
    assert parse_creds(messy) == (jwt, seed)
    assert seed == fx.read("users/A/alice.nk")
    assert jwt == fx.read("users/A/alice.jwt")
    with pytest.raises(JwtError):
        parse_creds(text.split("************************")[0])


GOOD = user_jwt(pub={"allow": ["a.>"]}, resp={"max": 1, "ttl": 5})


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutations_never_verify_and_only_raise_jwt_error(data: st.DataObject) -> None:
    token = GOOD
    pos = data.draw(st.integers(0, len(token) - 1))
    kind = data.draw(st.sampled_from(["replace", "delete", "insert"]))
    char = data.draw(st.characters(codec="ascii"))
    if kind == "replace":
        if char == token[pos]:
            return
        mutated = token[:pos] + char + token[pos + 1 :]
    elif kind == "delete":
        mutated = token[:pos] + token[pos + 1 :]
    else:
        mutated = token[:pos] + char + token[pos:]
    with pytest.raises(JwtError):
        decode(mutated)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_garbage_only_raises_jwt_error(text: str) -> None:
    with pytest.raises(JwtError):
        decode(text)


@pytest.mark.parametrize("depth", [10, 400, 900, 990, 1500, 5000])
def test_deeply_nested_claims_are_malformed_never_a_crash(depth: int) -> None:
    """Nesting that passes the JSON decoder but not a recursive walk (or
    neither) is a JwtError like any other malformed token."""
    import base64

    def b64(b: bytes) -> str:
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

    head = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = b64(b'{"sub":"x","x":' + b"[" * depth + b"]" * depth + b"}")
    with pytest.raises(JwtError):
        decode(f"{head}.{body}.{b64(b'sig')}")

"""verify_and_map through the pipeline: candidate order and natsd's strict DN rule."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from natsd.auth.authenticate import AuthConfig, AuthFail, AuthOk, ClientInfo, authenticate
from natsd.auth.dn import parse_dn
from natsd.auth.tlspeer import TLSPeer
from natsd.config.schema import Authorization, Options, TLSOptions, User


@dataclass(frozen=True)
class Connect:
    user: str | None = None
    password: str | None = None
    auth_token: str | None = None
    nkey: str | None = None
    sig: str | None = None
    jwt: str | None = None
    forbidden: bool = False


DN_USER = "CN=svc.example.com,OU=NATS.io,O=Synadia"


def _peer(
    dn: str | None = None,
    *,
    verified: bool = True,
    structured: bool = True,
    **sans: tuple[str, ...],
) -> TLSPeer:
    return TLSPeer(
        verified=verified,
        subject_dn_rfc2253=dn,
        subject_rdns=parse_dn(dn) if dn and structured else None,
        email_sans=sans.get("email", ()),
        dns_sans=sans.get("dns", ()),
        uri_sans=sans.get("uri", ()),
    )


def _cfg(*users: User, verify_and_map: bool = True) -> AuthConfig:
    return AuthConfig.from_options(
        Options(
            authorization=Authorization(users=users),
            tls=TLSOptions(verify=True, verify_and_map=verify_and_map),
        )
    )


CFG = _cfg(
    User(user="alice@example.com"),
    User(user="host.example.com"),
    User(user="spiffe://example.com/svc"),
    User(user=DN_USER),
    User(user="bob", password="bpw"),
)


def _run(
    peer: TLSPeer | None, connect: Connect = Connect(), cfg: AuthConfig = CFG
) -> AuthOk | AuthFail:
    return authenticate(connect, ClientInfo("h", 1, None, tls=peer), cfg, 0.0)


def _user(result: AuthOk | AuthFail) -> str | None:
    return result.user if isinstance(result, AuthOk) else None


@pytest.mark.parametrize(
    ("peer", "expected"),
    [
        (_peer(email=("alice@example.com",)), "alice@example.com"),
        (_peer(dns=("host.example.com",)), "host.example.com"),
        (_peer(uri=("spiffe://example.com/svc",)), "spiffe://example.com/svc"),
        (_peer(DN_USER), DN_USER),
        (_peer("cn=svc.example.com, ou=NATS.io, o=Synadia"), DN_USER),
        (_peer("2.5.4.3=svc.example.com,2.5.4.11=NATS.io,2.5.4.10=Synadia"), DN_USER),
        # Candidate order: email, then DNS, then URI, then the DN.
        (
            _peer(DN_USER, email=("alice@example.com",), dns=("host.example.com",)),
            "alice@example.com",
        ),
        (_peer(DN_USER, email=("nobody@x",), dns=("host.example.com",)), "host.example.com"),
        (_peer(DN_USER, email=("nobody@x",), uri=("nope:",)), DN_USER),
        # SANs compare byte for byte.
        (_peer(email=("Alice@example.com",)), None),
        (_peer(dns=("HOST.example.com",)), None),
    ],
)
def test_identity_candidates(peer: TLSPeer, expected: str | None) -> None:
    assert _user(_run(peer)) == expected


@pytest.mark.parametrize(
    "dn",
    [
        "OU=NATS.io,O=Synadia,CN=svc.example.com",  # reordered RDNs
        "CN=svc.example.com,OU=NATS.io,O=Synadia,DC=example,DC=com",  # DC= appended
        "CN=svc.example.com,OU=NATS.io",  # prefix
        "CN=svc.example.com,OU=NATS.io,O=Synadia,C=US",  # extra attribute
        "CN=SVC.example.com,OU=NATS.io,O=Synadia",  # values are exact
        "CN=svc.example.com+UID=1,OU=NATS.io,O=Synadia",  # multi-valued RDN
        "CN=evil,CN=svc.example.com,OU=NATS.io,O=Synadia",  # two CNs
        "CN=svc.example.com,OU=NATS.io,O=Synadia,CN=evil",
    ],
)
def test_dn_strictness(dn: str) -> None:
    result = _run(_peer(dn))
    assert isinstance(result, AuthFail) and result.wire_text == "Authorization Violation"


def test_ambiguous_certificate_maps_to_nobody_even_by_san() -> None:
    peer = _peer("CN=a,CN=b", email=("alice@example.com",))
    result = _run(peer)
    assert isinstance(result, AuthFail) and "ambiguous" in result.reason


def test_dn_without_structured_rdns_is_no_identity() -> None:
    assert _user(_run(_peer(DN_USER, structured=False))) is None


@pytest.mark.parametrize("peer", [None, _peer(DN_USER, verified=False)])
def test_unverified_or_missing_certificate_fails(peer: TLSPeer | None) -> None:
    assert isinstance(_run(peer), AuthFail)


def test_connect_credentials_are_ignored_under_tls_map() -> None:
    # A password user cannot log in without a certificate...
    assert isinstance(_run(None, Connect(user="bob", password="bpw")), AuthFail)
    # ...and a CONNECT user does not override the certificate's identity.
    ok = _run(_peer(email=("alice@example.com",)), Connect(user="bob", password="bpw"))
    assert isinstance(ok, AuthOk) and ok.user == "alice@example.com"
    assert ok.warning is not None and "bob" in ok.warning and "bpw" not in ok.warning


def test_dn_equal_to_two_users_is_refused() -> None:
    cfg = _cfg(User(user="CN=a,O=b"), User(user="cn=a, o=b"))
    result = _run(_peer("CN=a,O=b"), cfg=cfg)
    assert isinstance(result, AuthFail) and "several" in result.reason


def test_san_user_with_disallowed_type_falls_through_to_next_candidate() -> None:
    cfg = _cfg(
        User(user="alice@example.com", allowed_connection_types=("WEBSOCKET",)),
        User(user=DN_USER),
    )
    assert _user(_run(_peer(DN_USER, email=("alice@example.com",)), cfg=cfg)) == DN_USER


def test_without_verify_and_map_certificates_are_not_identities() -> None:
    cfg = _cfg(User(user=DN_USER), User(user="bob", password="bpw"), verify_and_map=False)
    assert isinstance(_run(_peer(DN_USER), cfg=cfg), AuthFail)
    assert _user(_run(_peer(DN_USER), Connect(user="bob", password="bpw"), cfg)) == "bob"

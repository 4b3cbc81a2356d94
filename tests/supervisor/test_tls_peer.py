"""TLSPeer extraction, identities, DN mapping, pins and leaf checks (no sockets)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from tlscerts import PKI, make_pki

from natsd.auth.tlspeer import (
    TLSPeer,
    ambiguous,
    identities,
    map_identity,
    parse_dn,
    peer_from_der,
    spki_sha256_hex,
)
from supervisor.tls import check_client_leaf, check_pinned

CN, ORG, OU, C, DC = "2.5.4.3", "2.5.4.10", "2.5.4.11", "2.5.4.6", "0.9.2342.19200300.100.1.25"
EMAIL = "1.2.840.113549.1.9.1"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _peer(pki: PKI, subject: object, **kw: object) -> TLSPeer:
    name = f"c{abs(hash((repr(subject), repr(kw))))}"
    return peer_from_der(pki.client(name, subject, **kw).der, verified=True)  # type: ignore[arg-type]


def test_simple_subject_prints_like_go(pki: PKI) -> None:
    p = _peer(pki, [[("C", "US")], [("O", "Acme")], [("CN", "alice")]])
    assert p.subject_dn_rfc2253 == "CN=alice,O=Acme,C=US"
    assert p.subject_rdns == (((CN, "alice"),), ((ORG, "Acme"),), ((C, "US"),))
    assert not ambiguous(p)
    assert identities(p) == ["CN=alice,O=Acme,C=US"]


def test_sans_in_spec_order(pki: PKI) -> None:
    p = _peer(
        pki,
        "CN=svc",
        emails=["a@example.com", "b@example.com"],
        dns=["svc.example.com"],
        uris=["spiffe://example.org/svc"],
        ips=["10.0.0.1"],
    )
    assert p.email_sans == ("a@example.com", "b@example.com")
    assert p.dns_sans == ("svc.example.com",)
    assert p.uri_sans == ("spiffe://example.org/svc",)
    assert identities(p) == [
        "a@example.com",
        "b@example.com",
        "svc.example.com",
        "spiffe://example.org/svc",
        "CN=svc",
    ]


def test_escaping_round_trips_through_parse_dn(pki: PKI) -> None:
    nasty = ' lead,plus+quote"semi;eq=back\\lt<gt> #hash trail '
    p = _peer(pki, [[("O", "#start")], [("CN", nasty)], [("OU", "tab\tnl\n")]])
    assert p.subject_dn_rfc2253 is not None
    assert "\n" not in p.subject_dn_rfc2253 and "\t" not in p.subject_dn_rfc2253
    assert p.subject_dn_rfc2253.endswith(",O=\\#start")
    assert parse_dn(p.subject_dn_rfc2253) == p.subject_rdns
    assert p.subject_rdns == (((OU, "tab\tnl\n"),), ((CN, nasty),), ((ORG, "#start"),))


def test_dc_and_email_attributes_are_kept_in_place(pki: PKI) -> None:
    p = _peer(
        pki,
        [[("DC", "org")], [("DC", "example")], [("CN", "grace")], [("emailAddress", "g@x.org")]],
    )
    assert p.subject_dn_rfc2253 == "emailAddress=g@x.org,CN=grace,DC=example,DC=org"
    assert parse_dn(p.subject_dn_rfc2253) == p.subject_rdns
    assert p.subject_rdns == (
        ((EMAIL, "g@x.org"),),
        ((CN, "grace"),),
        ((DC, "example"),),
        ((DC, "org"),),
    )


def test_multi_valued_rdn_is_ambiguous(pki: PKI) -> None:
    p = _peer(pki, [[("O", "Acme")], [("CN", "frank"), ("OU", "eng")]], emails=["f@x.org"])
    assert p.subject_rdns is not None and len(p.subject_rdns[0]) == 2
    assert "+" in (p.subject_dn_rfc2253 or "")
    assert parse_dn(p.subject_dn_rfc2253 or "") == p.subject_rdns
    assert ambiguous(p)
    assert identities(p) == []
    # Even the SAN does not map: the certificate as a whole is ambiguous.
    assert map_identity(p, ["f@x.org", p.subject_dn_rfc2253 or ""]) is None


def test_two_cns_are_ambiguous(pki: PKI) -> None:
    p = _peer(pki, [[("CN", "eve")], [("CN", "eve2")]])
    assert p.subject_dn_rfc2253 == "CN=eve2,CN=eve"
    assert ambiguous(p)
    assert map_identity(p, ["CN=eve2,CN=eve", "CN=eve2", "CN=eve"]) is None


def test_empty_subject(pki: PKI) -> None:
    p = _peer(pki, [], emails=["x@example.com"])
    assert p.subject_dn_rfc2253 is None and p.subject_rdns is None
    assert not ambiguous(p)
    assert identities(p) == ["x@example.com"]
    assert map_identity(p, ["x@example.com"]) == "x@example.com"


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("CN=alice,O=Acme,C=US", True),
        ("cn=alice, o=Acme, c=US", True),  # types are case-insensitive, spaces trimmed
        ("2.5.4.3=alice,O=Acme,C=US", True),
        ("CN=Alice,O=Acme,C=US", False),  # values are exact
        ("O=Acme,CN=alice,C=US", False),  # no reordering
        ("CN=alice,O=Acme", False),  # no prefix match
        ("CN=alice,O=Acme,C=US,DC=x", False),
        ("CN=alice+O=Acme,C=US", False),
    ],
)
def test_map_identity_dn_is_exact(pki: PKI, user: str, expected: bool) -> None:
    p = _peer(pki, [[("C", "US")], [("O", "Acme")], [("CN", "alice")]])
    assert map_identity(p, ["someone-else", user]) == (user if expected else None)


def test_map_identity_order_and_rules(pki: PKI) -> None:
    p = _peer(pki, "CN=bob,O=Acme", emails=["bob@acme.io"], dns=["bob.acme.io"])
    users = ["CN=bob,O=Acme", "bob.acme.io", "bob@acme.io"]
    assert map_identity(p, users) == "bob@acme.io"  # email before DNS before DN
    assert map_identity(p, users[:2]) == "bob.acme.io"
    assert map_identity(p, users[:1]) == "CN=bob,O=Acme"
    assert map_identity(p, ["BOB@acme.io"]) is None  # SANs match byte for byte
    # Two configured spellings of the same DN: refuse rather than pick one.
    assert map_identity(p, ["CN=bob,O=Acme", "cn=bob,o=Acme"]) is None
    unverified = TLSPeer(False, p.subject_dn_rfc2253, p.subject_rdns, p.email_sans)
    assert map_identity(unverified, users) is None


def test_spki_hash_matches_reencoded_key(pki: PKI) -> None:
    for issued in (
        pki.server,
        pki.client("spki-ec", "CN=x"),
        pki.client("spki-rsa", "CN=y", key_type="rsa"),
    ):
        spki = issued.cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert spki_sha256_hex(issued.der) == hashlib.sha256(spki).hexdigest()


def test_spki_rejects_garbage() -> None:
    for bad in (b"", b"\x30", b"\x30\x03\x30\x01\x02", b"\x30\x80\x00\x00"):
        with pytest.raises(ValueError):
            spki_sha256_hex(bad)


def test_check_pinned(pki: PKI) -> None:
    der = pki.client("pin", "CN=pin").der
    other = pki.client("pin2", "CN=pin2").der
    pin = spki_sha256_hex(der)
    assert check_pinned(der, [])
    assert check_pinned(der, [pin.upper()])
    assert not check_pinned(other, [pin])
    assert not check_pinned(None, [pin])
    assert not check_pinned(b"junk", [pin])


def test_check_client_leaf(pki: PKI, tmp_path: Path) -> None:
    assert check_client_leaf(pki.client("leaf", "CN=ok").der) is None
    ca_reason = check_client_leaf(pki.ca.issued.der)
    assert ca_reason is not None and "CA" in ca_reason
    sub_ca = pki.client("subca", "CN=sub", is_ca=True)
    assert check_client_leaf(sub_ca.der) is not None
    server_only = pki.ca.issue("srv-only", "CN=s", server=True, client=False)
    assert "client authentication" in (check_client_leaf(server_only.der) or "")
    assert check_client_leaf(b"not a cert") is not None

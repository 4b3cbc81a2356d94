"""Strict RFC 2253 DN parsing and equality (the verify_and_map DN rule)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.auth.dn import dn_equal, dn_unambiguous, parse_dn

CN, ORG, OU, DC = "2.5.4.3", "2.5.4.10", "2.5.4.11", "0.9.2342.19200300.100.1.25"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("CN=foo,O=Bar", (((CN, "foo"),), ((ORG, "Bar"),))),
        ("cn=foo, o=Bar", (((CN, "foo"),), ((ORG, "Bar"),))),
        ("2.5.4.3=foo;OID.2.5.4.10=Bar", (((CN, "foo"),), ((ORG, "Bar"),))),
        ("CN=a\\,b", (((CN, "a,b"),),)),
        ("CN=a\\2Cb", (((CN, "a,b"),),)),
        ("CN=caf\\C3\\A9", (((CN, "café"),),)),
        ('CN="a,b"', (((CN, "a,b"),),)),
        ("CN=  padded  ,O=x", (((CN, "padded"),), ((ORG, "x"),))),
        ("CN=keep\\ ", (((CN, "keep "),),)),
        ("CN=a+OU=b", (((CN, "a"), (OU, "b")),)),
        ("DC=example,DC=com", (((DC, "example"),), ((DC, "com"),))),
        ("CN=#04024869", (((CN, "#04024869"),),)),
    ],
)
def test_parse(text: str, expected: tuple[object, ...]) -> None:
    assert parse_dn(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "CN",
        "=foo",
        "CN=a,",
        "CN=a=b",
        "CN=a\\",
        "CN=a\\zz",
        'CN="open',
        "CN=#0",
        "C N=x",
    ],
)
def test_parse_rejects_malformed(text: str) -> None:
    assert parse_dn(text) is None


@pytest.mark.parametrize(
    ("configured", "cert", "match"),
    [
        ("CN=example.com,OU=NATS.io", "CN=example.com,OU=NATS.io", True),
        ("cn=example.com, ou=NATS.io", "CN=example.com,OU=NATS.io", True),
        ("CN=example.com,OU=NATS.io", "2.5.4.3=example.com,2.5.4.11=NATS.io", True),
        # Values are exact: no case folding.
        ("CN=Example.com,OU=NATS.io", "CN=example.com,OU=NATS.io", False),
        # Order matters: no reordered-RDN match (nats-server accepts this one).
        ("OU=NATS.io,CN=example.com", "CN=example.com,OU=NATS.io", False),
        # No DC= appended forms, no prefix/suffix matches.
        ("CN=example.com,OU=NATS.io,DC=org", "CN=example.com,OU=NATS.io", False),
        ("CN=example.com", "CN=example.com,OU=NATS.io", False),
        ("CN=example.com,OU=NATS.io", "CN=example.com", False),
        # Ambiguous shapes never match, even when textually identical.
        ("CN=a+OU=b", "CN=a+OU=b", False),
        ("CN=a,CN=b", "CN=a,CN=b", False),
    ],
)
def test_dn_equal(configured: str, cert: str, match: bool) -> None:
    a, b = parse_dn(configured), parse_dn(cert)
    assert a is not None and b is not None
    assert dn_equal(a, b) is match


def test_unambiguous() -> None:
    assert dn_unambiguous(parse_dn("CN=a,OU=b,OU=c") or ())
    assert not dn_unambiguous(parse_dn("CN=a,OU=b,CN=c") or ())
    assert not dn_unambiguous(parse_dn("OU=b+O=c,CN=a") or ())


_value = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=12)


def _escape(v: str) -> str:
    out = []
    for i, c in enumerate(v):
        if c in ',+"\\<>;=' or (c == "#" and i == 0) or (c == " " and i in (0, len(v) - 1)):
            out.append("\\" + c)
        else:
            out.append(c)
    return "".join(out)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["CN", "O", "OU", "L", "DC"]), _value), min_size=1, max_size=5
    )
)
def test_escaped_values_roundtrip(rdns: list[tuple[str, str]]) -> None:
    text = ",".join(f"{t}={_escape(v)}" for t, v in rdns)
    parsed = parse_dn(text)
    assert parsed is not None
    assert [rdn[0][1] for rdn in parsed] == [v for _, v in rdns]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_parse_never_raises(text: str) -> None:
    parsed = parse_dn(text)
    assert parsed is None or len(parsed) >= 1

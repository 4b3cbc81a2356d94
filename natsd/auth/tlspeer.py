"""What a client certificate says about its holder, as plain data.

Theory of operation
-------------------
The supervisor terminates TLS. After the handshake it takes the leaf certificate's DER
bytes from the ``ssl`` object and calls :func:`peer_from_der`; from then on the
authentication code sees only a frozen :class:`TLSPeer`. This module therefore imports
neither ``socket`` nor ``ssl``: it is a function of bytes, testable without a network.

``verify_and_map`` (spec §3.5) turns the certificate into a user name. The candidate
identities are, in order: each email SAN, each DNS SAN, each URI SAN (as written in the
certificate), then the subject DN. :func:`identities` lists them in that order and
:func:`map_identity` picks the configured user.

natsd is stricter than nats-server here, on purpose:

* SANs match a user name byte for byte; no case folding, no normalisation.
* The DN matches component for component and in order
  (:func:`natsd.auth.dn.dn_equal`): no reordered RDNs, no ``DC=`` list appended at the
  end, no match on a shorter string that omits attributes Go's ``pkix`` does not print
  (``DC``, ``emailAddress``, ``UID`` …), which is how nats-server can map
  ``CN=a,DC=example`` to the user ``CN=a``.
* An *ambiguous* certificate — two CN attributes, or any multi-valued RDN
  (``CN=a+OU=b``) — maps to nobody, not even through its SANs: which name it "really"
  carries depends on who reads it.
* A certificate whose subject holds a non-string value (a BIT STRING
  ``x500UniqueIdentifier``, say) keeps a printable DN for the logs but no
  ``subject_rdns``: its DN is never an identity.

Representation. ``subject_rdns`` lists the RDNs in RFC 2253 order (most specific
first, the reverse of the DER order), each a tuple of ``(type, value)`` pairs. The type
is the attribute's dotted OID, which is exactly the canonical type that
:func:`natsd.auth.dn.parse_dn` produces for both ``CN`` and ``2.5.4.3``, so a
configured user name parsed by ``parse_dn`` compares directly with ``subject_rdns``.
Multi-valued RDNs keep their DER (SET OF) order. ``subject_dn_rfc2253`` prints the same
sequence with the short names nats-server prints (``CN``, ``O``, ``OU``, ``C``, ``ST``,
``L``, ``STREET``, ``POSTALCODE``, ``SERIALNUMBER``, ``DC``) plus ``UID`` and
``emailAddress``; other types print as dotted OIDs. For the usual ``C, O, OU, CN``
subjects the string is byte-identical to Go's ``pkix.Name.String()``; values are
escaped so that ``parse_dn(peer.subject_dn_rfc2253) == peer.subject_rdns`` always holds
(tests pin this), and control characters are hex-escaped so a DN is safe to log.

Pinned certificates hash the DER ``SubjectPublicKeyInfo`` exactly as it appears in the
certificate (Go's ``RawSubjectPublicKeyInfo``); :func:`spki_sha256_hex` walks the DER
by hand rather than re-encoding the parsed key, because a re-encoding need not be
byte-identical.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509

from natsd.auth.dn import DN, dn_equal, dn_unambiguous, parse_dn

__all__ = [
    "DN",
    "TLSPeer",
    "ambiguous",
    "dn_equal",
    "identities",
    "map_identity",
    "parse_dn",
    "peer_from_der",
    "spki_sha256_hex",
]

_CN_OID = "2.5.4.3"

# OID -> the name printed in subject_dn_rfc2253. Every name here must be one that
# natsd.auth.dn folds back onto the same OID, or the round-trip promise breaks.
_SHORT_NAMES: dict[str, str] = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "SERIALNUMBER",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "STREET",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "TITLE",
    "2.5.4.17": "POSTALCODE",
    "2.5.4.42": "GIVENNAME",
    "0.9.2342.19200300.100.1.25": "DC",
    "0.9.2342.19200300.100.1.1": "UID",
    "1.2.840.113549.1.9.1": "emailAddress",
}

# Escaped anywhere in a value. '=' is not required by RFC 4514 but natsd.auth.dn
# refuses it unescaped, and escaping it is always legal.
_ALWAYS_ESCAPE = frozenset(',+"\\<>;=')


@dataclass(frozen=True, slots=True)
class TLSPeer:
    """The identity-relevant parts of a client's leaf certificate.

    ``verified`` is whether the chain was verified during the handshake (``verify`` or
    ``verify_and_map``); an unverified certificate is never an identity.
    ``subject_dn_rfc2253`` and ``subject_rdns`` are ``None`` for an empty subject;
    ``subject_rdns`` alone is ``None`` when the subject holds a non-string value.
    """

    verified: bool
    subject_dn_rfc2253: str | None
    subject_rdns: DN | None
    email_sans: tuple[str, ...] = ()
    dns_sans: tuple[str, ...] = ()
    uri_sans: tuple[str, ...] = ()


def peer_from_der(der: bytes, verified: bool) -> TLSPeer:
    """Extract a :class:`TLSPeer` from a DER certificate; ``ValueError`` if unparseable."""
    cert = x509.load_der_x509_certificate(der)
    dn_string, rdns = _subject(cert.subject)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return TLSPeer(verified, dn_string, rdns)
    return TLSPeer(
        verified=verified,
        subject_dn_rfc2253=dn_string,
        subject_rdns=rdns,
        email_sans=tuple(san.get_values_for_type(x509.RFC822Name)),
        dns_sans=tuple(san.get_values_for_type(x509.DNSName)),
        uri_sans=tuple(san.get_values_for_type(x509.UniformResourceIdentifier)),
    )


def _subject(name: x509.Name) -> tuple[str | None, DN | None]:
    # cryptography lists RDNs in DER order; RFC 2253 prints the last one first.
    rdns = list(reversed(name.rdns))
    if not rdns:
        return None, None
    printed: list[str] = []
    parsed: list[tuple[tuple[str, str], ...]] = []
    usable = True
    for rdn in rdns:
        parts: list[str] = []
        attrs: list[tuple[str, str]] = []
        for attr in rdn:
            oid = attr.oid.dotted_string
            value = attr.value
            if isinstance(value, bytes):
                usable = False
                parts.append(f"{oid}=#{value.hex()}")
                continue
            parts.append(f"{_SHORT_NAMES.get(oid, oid)}={_escape(value)}")
            attrs.append((oid, value))
        printed.append("+".join(parts))
        parsed.append(tuple(attrs))
    return ",".join(printed), (tuple(parsed) if usable else None)


def _escape(value: str) -> str:
    out: list[str] = []
    last = len(value) - 1
    for i, c in enumerate(value):
        if c in _ALWAYS_ESCAPE or (c == "#" and i == 0) or (c == " " and i in (0, last)):
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\{ord(c):02X}")
        else:
            out.append(c)
    return "".join(out)


def ambiguous(peer: TLSPeer) -> bool:
    """True when the subject has two CNs or a multi-valued RDN: such a peer maps to nobody."""
    return peer.subject_rdns is not None and not dn_unambiguous(peer.subject_rdns)


def identities(peer: TLSPeer) -> list[str]:
    """Candidate user names in spec order: emails, DNS names, URIs, then the DN string.

    The DN string is listed for logging and exact lookups; :func:`map_identity`
    compares DNs structurally instead. An ambiguous peer has no identities.
    """
    if ambiguous(peer):
        return []
    out = [*peer.email_sans, *peer.dns_sans, *peer.uri_sans]
    if peer.subject_rdns is not None and peer.subject_dn_rfc2253 is not None:
        out.append(peer.subject_dn_rfc2253)
    return out


def map_identity(peer: TLSPeer, usernames: Iterable[str]) -> str | None:
    """The configured user name this peer authenticates as, or ``None``.

    SAN identities are looked up by exact string, first hit wins. Then the subject DN
    is compared with every configured name that parses as a DN; if more than one
    configured name is equal to it (``CN=a`` and ``cn=a``), the mapping is ambiguous
    and nobody is chosen. Connection-type checks stay with the caller.
    """
    if not peer.verified or ambiguous(peer):
        return None
    names = list(usernames)
    known = set(names)
    for ident in (*peer.email_sans, *peer.dns_sans, *peer.uri_sans):
        if ident in known:
            return ident
    if peer.subject_rdns is None:
        return None
    hits = [u for u in names if (d := parse_dn(u)) is not None and dn_equal(d, peer.subject_rdns)]
    return hits[0] if len(hits) == 1 else None


def spki_sha256_hex(der: bytes) -> str:
    """Lower-case hex SHA-256 of the certificate's raw DER SubjectPublicKeyInfo."""
    _, start, _ = _tlv(der, 0)  # Certificate
    _, pos, tbs_end = _tlv(der, start)  # tbsCertificate
    tag, _, nxt = _tlv(der, pos)
    if tag == 0xA0:  # [0] EXPLICIT version; absent in v1 certificates
        tag, _, nxt = _tlv(der, nxt)
    if tag != 0x02:
        raise ValueError("certificate: serialNumber expected")
    pos = nxt
    for what in ("signature", "issuer", "validity", "subject"):
        tag, _, pos = _tlv(der, pos)
        if tag != 0x30:
            raise ValueError(f"certificate: {what} expected")
    tag, _, spki_end = _tlv(der, pos)
    if tag != 0x30 or spki_end > tbs_end:
        raise ValueError("certificate: subjectPublicKeyInfo expected")
    return hashlib.sha256(der[pos:spki_end]).hexdigest()


def _tlv(buf: bytes, off: int) -> tuple[int, int, int]:
    """One DER TLV at ``off``: (tag, content start, end). Definite lengths only."""
    if off + 2 > len(buf):
        raise ValueError("certificate: truncated DER")
    tag, first = buf[off], buf[off + 1]
    pos = off + 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(buf):
            raise ValueError("certificate: bad DER length")
        length = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + length > len(buf):
        raise ValueError("certificate: truncated DER")
    return tag, pos, pos + length

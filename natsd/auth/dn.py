"""Strict RFC 2253 distinguished names for ``tls.verify_and_map``.

Theory of operation
-------------------
With ``verify_and_map`` a client certificate *is* the credential: the server looks up
a configured user whose name equals one of the certificate's identities (spec §3.5).
The last candidate is the subject DN, and there nats-server is permissive in three
ways that have produced bypasses (advisory 2026-13, CVE-2026-33248):

* it accepts a DN with the same *set* of RDNs in a different order;
* it tries a Go-specific string with the ``DC=`` components appended at the end;
* its parser treats multi-valued RDNs (``CN=a+O=b``) and repeated attribute types
  loosely, so a certificate can carry two CNs and be mapped by whichever one the
  comparison happens to look at.

natsd accepts exactly one form of equality: both the configured user name and the
certificate's RFC 2253 subject string are parsed by :func:`parse_dn` into a sequence of
RDNs, and the two sequences must be equal element by element, in order. Inside an
attribute, the *type* compares case-insensitively and by OID (``CN``, ``cn``,
``2.5.4.3`` and ``OID.2.5.4.3`` are one type); the *value* compares exactly, after RFC
2253 unescaping (``\\,``, ``\\+``, ``\\2C``...) and trimming of unescaped spaces around
separators. There is no case folding of values, no reordering, no prefix match, and a
DN containing a multi-valued RDN or two CN attributes never matches anything
(:func:`dn_unambiguous`).

Parsing is pure string work: ``None`` means malformed, and a malformed DN also never
matches.
"""

from __future__ import annotations

__all__ = ["DN", "dn_equal", "dn_unambiguous", "parse_dn"]

#: One attribute: (canonical type, unescaped value).
Attribute = tuple[str, str]
#: A parsed DN: RDNs in the order they appear in the RFC 2253 string.
DN = tuple[tuple[Attribute, ...], ...]

_CN_OID = "2.5.4.3"

# Well-known short names folded onto their OIDs so that either spelling compares equal.
# The list follows what certificate tooling (OpenSSL, Go's pkix, Python's
# ``cryptography``) emits in RFC 2253/4514 strings.
_TYPE_OIDS: dict[str, str] = {
    "CN": _CN_OID,
    "SN": "2.5.4.4",
    "SERIALNUMBER": "2.5.4.5",
    "C": "2.5.4.6",
    "L": "2.5.4.7",
    "ST": "2.5.4.8",
    "S": "2.5.4.8",
    "STREET": "2.5.4.9",
    "O": "2.5.4.10",
    "OU": "2.5.4.11",
    "TITLE": "2.5.4.12",
    "POSTALCODE": "2.5.4.17",
    "GIVENNAME": "2.5.4.42",
    "DC": "0.9.2342.19200300.100.1.25",
    "UID": "0.9.2342.19200300.100.1.1",
    "EMAILADDRESS": "1.2.840.113549.1.9.1",
    "E": "1.2.840.113549.1.9.1",
}

# Characters RFC 2253 lets a backslash escape directly (besides two hex digits).
_ESCAPABLE = frozenset(',=+<>#;\\" ')
_HEX = frozenset("0123456789abcdefABCDEF")


def _canonical_type(raw: str) -> str | None:
    t = raw.strip()
    if not t:
        return None
    upper = t.upper()
    if upper.startswith("OID."):
        upper = upper[4:]
    if upper in _TYPE_OIDS:
        return _TYPE_OIDS[upper]
    if all(part.isdigit() for part in upper.split(".")) and "." in upper:
        return upper
    # Any other keyword is kept, upper-cased: unknown names still compare
    # case-insensitively with themselves, but never with an OID they might stand for.
    return upper if upper.replace("-", "").isalnum() else None


def _parse_value(s: str, i: int) -> tuple[str, int] | None:
    """Parse one attribute value starting at ``s[i]``; return (value, next index).

    The next index points at the separator (``,``, ``;``, ``+``) or ``len(s)``.
    """
    n = len(s)
    while i < n and s[i] == " ":
        i += 1
    if i < n and s[i] == "#":
        # BER-encoded value: compared as its (lower-cased) hex text; never decoded.
        j = i + 1
        while j < n and s[j] in _HEX:
            j += 1
        if j == i + 1 or (j - i - 1) % 2:
            return None
        value = "#" + s[i + 1 : j].lower()
        while j < n and s[j] == " ":
            j += 1
        return (value, j) if j == n or s[j] in ",;+" else None
    if i < n and s[i] == '"':
        return _parse_quoted(s, i + 1)
    out: list[str] = []
    pending = bytearray()  # consecutive \XX escapes form one UTF-8 sequence
    trailing_spaces = 0  # unescaped spaces at the end, trimmed below
    while i < n and s[i] not in ",;+":
        c = s[i]
        if c == "\\":
            pair = s[i + 1 : i + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                pending.append(int(pair, 16))
                i += 3
                trailing_spaces = 0
                continue
            if i + 1 < n and s[i + 1] in _ESCAPABLE:
                c = s[i + 1]
                i += 2
                trailing_spaces = 0
            else:
                return None
        elif c in '"=<>':
            # Must be escaped outside quotes (RFC 2253 §3).
            return None
        else:
            i += 1
            trailing_spaces = trailing_spaces + 1 if c == " " else 0
        if pending:
            try:
                out.append(pending.decode("utf-8"))
            except UnicodeDecodeError:
                return None
            pending.clear()
        out.append(c)
    if pending:
        try:
            out.append(pending.decode("utf-8"))
        except UnicodeDecodeError:
            return None
    value = "".join(out)
    if trailing_spaces:
        value = value[:-trailing_spaces]
    return value, i


def _parse_quoted(s: str, i: int) -> tuple[str, int] | None:
    out: list[str] = []
    n = len(s)
    while i < n and s[i] != '"':
        if s[i] == "\\":
            if i + 1 >= n:
                return None
            out.append(s[i + 1])
            i += 2
        else:
            out.append(s[i])
            i += 1
    if i >= n:
        return None
    i += 1
    while i < n and s[i] == " ":
        i += 1
    if i < n and s[i] not in ",;+":
        return None
    return "".join(out), i


def parse_dn(text: str) -> DN | None:
    """Parse an RFC 2253 DN string; ``None`` when malformed or empty."""
    rdns: list[tuple[Attribute, ...]] = []
    current: list[Attribute] = []
    i, n = 0, len(text)
    if not text.strip():
        return None
    while i < n:
        eq = text.find("=", i)
        if eq < 0:
            return None
        attr_type = _canonical_type(text[i:eq])
        if attr_type is None:
            return None
        parsed = _parse_value(text, eq + 1)
        if parsed is None:
            return None
        value, i = parsed
        current.append((attr_type, value))
        if i < n and text[i] == "+":
            i += 1
            continue
        rdns.append(tuple(current))
        current = []
        if i < n:
            i += 1  # skip , or ;
            if i >= n:
                return None  # trailing separator
    return tuple(rdns)


def dn_unambiguous(dn: DN) -> bool:
    """True when every RDN is single-valued and at most one CN is present."""
    if any(len(rdn) != 1 for rdn in dn):
        return False
    return sum(1 for rdn in dn if rdn[0][0] == _CN_OID) <= 1


def dn_equal(a: DN, b: DN) -> bool:
    """Strict equality: same RDNs, same order, both unambiguous."""
    return bool(a) and a == b and dn_unambiguous(a)

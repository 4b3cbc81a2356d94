"""NKEY challenge verification: did the holder of a user key sign our nonce?

Theory of operation
-------------------
When nkey users (or operator mode) are configured, INFO carries a fresh ``nonce``
string. The client signs the nonce's **ASCII bytes exactly as sent in INFO** (not the
bytes it base64-decodes to) with its Ed25519 seed and returns the signature in CONNECT
as ``sig``, next to its public key ``nkey`` (spec §3.6).

Verification runs in a fixed order, and every step fails closed:

1. Decode the public key and check its envelope: 56 characters of unpadded RFC 4648
   base32 that decode to ``prefix ‖ 32-byte key ‖ crc16``, with the user prefix
   (``U``) and a matching CRC-16/XMODEM. This happens *before* any curve arithmetic:
   a truncated or mistyped key must never reach Ed25519 (advisory 2026-23 /
   GHSA-g33f-6538-grxh, where a short key reached verify and hung the server).
2. Decode the signature: base64url without padding (what the Go and Python clients
   send), falling back to standard padded base64 as nats-server does. Both decoders
   are strict; characters outside the alphabet are an error, not skipped. A valid
   Ed25519 signature is exactly 64 bytes.
3. Verify with PyNaCl's ``VerifyKey`` (the library the ``nkeys`` package is built on;
   ``nkeys.KeyPair`` can only verify when it holds a seed, so we build the verify key
   from the decoded public key ourselves and reuse ``nkeys.crc16``).

The functions return ``bool`` and never raise on hostile input.
"""

from __future__ import annotations

import base64
import binascii
import re

import nacl.exceptions
import nacl.signing
import nkeys

__all__ = ["decode_public_key", "decode_signature", "verify_nonce_signature"]

_PUBLIC_KEY_LEN = 56  # base32 chars of 35 bytes: prefix + 32-byte key + crc16
_RAW_KEY_LEN = 32
_SIG_LEN = 64
_B32_ALPHABET = re.compile(r"[A-Z2-7]{56}")
_B64URL_RAW = re.compile(r"[A-Za-z0-9_-]*")
_B64_STD = re.compile(r"[A-Za-z0-9+/]*={0,2}")


def decode_public_key(public_key: str, prefix: int = nkeys.PREFIX_BYTE_USER) -> bytes | None:
    """The raw 32-byte Ed25519 key inside an encoded nkey, or None if malformed.

    ``prefix`` is the role byte the key must carry (user keys by default).
    """
    if len(public_key) != _PUBLIC_KEY_LEN or not _B32_ALPHABET.fullmatch(public_key):
        return None
    try:
        # 56 characters are exactly 35 bytes: no padding, no leftover bits to check.
        raw = base64.b32decode(public_key.encode("ascii"))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 1 + _RAW_KEY_LEN + 2 or raw[0] != prefix:
        return None
    body, crc = raw[:-2], raw[-2:]
    if nkeys.crc16(body) != int.from_bytes(crc, "little"):
        return None
    return bytes(body[1:])


def decode_signature(sig: str) -> bytes | None:
    """Decode a CONNECT ``sig``: raw base64url first, then standard base64."""
    if not sig.isascii():
        return None
    decoded: bytes | None = None
    if _B64URL_RAW.fullmatch(sig) and len(sig) % 4 != 1:
        try:
            decoded = base64.urlsafe_b64decode(sig + "=" * (-len(sig) % 4))
        except (binascii.Error, ValueError):
            decoded = None
    if decoded is None and _B64_STD.fullmatch(sig) and len(sig) % 4 == 0:
        try:
            decoded = base64.b64decode(sig, validate=True)
        except (binascii.Error, ValueError):
            decoded = None
    if decoded is None or len(decoded) != _SIG_LEN:
        return None
    return decoded


def verify_nonce_signature(public_key: str, nonce: str, sig: str) -> bool:
    """True when ``sig`` is the user key ``public_key``'s signature over ``nonce``."""
    raw_key = decode_public_key(public_key)
    if raw_key is None:
        return False
    raw_sig = decode_signature(sig)
    if raw_sig is None or not nonce or not nonce.isascii():
        return False
    try:
        nacl.signing.VerifyKey(raw_key).verify(nonce.encode("ascii"), raw_sig)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.CryptoError, ValueError):
        return False
    return True

"""NKEY nonce signatures: encodings accepted, envelopes and signatures rejected."""

from __future__ import annotations

import base64

import nkeys
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.auth.nkey import decode_public_key, decode_signature, verify_nonce_signature

NONCE = "AbCdEfGhIjK-_0z"  # 15 chars: what 11 random bytes look like in INFO


def _keypair(raw_seed: bytes, prefix: int = nkeys.PREFIX_BYTE_USER) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(raw_seed, prefix))


def _sign_url(kp: nkeys.KeyPair, data: bytes) -> str:
    return base64.urlsafe_b64encode(kp.sign(data)).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def user() -> nkeys.KeyPair:
    return _keypair(bytes(range(32)))


def test_signature_over_ascii_nonce_accepted(user: nkeys.KeyPair) -> None:
    pub = user.public_key.decode()
    assert verify_nonce_signature(pub, NONCE, _sign_url(user, NONCE.encode()))


def test_standard_base64_signature_accepted(user: nkeys.KeyPair) -> None:
    pub = user.public_key.decode()
    sig = base64.b64encode(user.sign(NONCE.encode())).decode()
    assert sig.endswith("=")
    assert verify_nonce_signature(pub, NONCE, sig)


def test_signature_over_decoded_nonce_rejected(user: nkeys.KeyPair) -> None:
    pub = user.public_key.decode()
    decoded = base64.urlsafe_b64decode(NONCE + "=")
    assert not verify_nonce_signature(pub, NONCE, _sign_url(user, decoded))


def test_signature_for_another_nonce_rejected(user: nkeys.KeyPair) -> None:
    pub = user.public_key.decode()
    assert not verify_nonce_signature(pub, NONCE, _sign_url(user, b"other-nonce-123"))


def test_signature_by_another_key_rejected(user: nkeys.KeyPair) -> None:
    other = _keypair(bytes(32))
    assert not verify_nonce_signature(
        user.public_key.decode(), NONCE, _sign_url(other, NONCE.encode())
    )


def test_non_user_key_rejected_even_with_valid_signature() -> None:
    acct = _keypair(bytes(range(1, 33)), nkeys.PREFIX_BYTE_ACCOUNT)
    pub = acct.public_key.decode()
    assert pub.startswith("A")
    assert decode_public_key(pub) is None
    assert not verify_nonce_signature(pub, NONCE, _sign_url(acct, NONCE.encode()))


def test_malformed_public_keys_rejected(user: nkeys.KeyPair) -> None:
    pub = user.public_key.decode()
    sig = _sign_url(user, NONCE.encode())
    flipped = pub[:10] + ("A" if pub[10] != "A" else "B") + pub[11:]
    for bad in (pub[:-1], pub + "A", pub.lower(), flipped, "", "U" * 56, pub[:20]):
        assert decode_public_key(bad) is None, bad
        assert not verify_nonce_signature(bad, NONCE, sig)


@pytest.mark.parametrize(
    "bad_sig",
    ["", "!!!!", "A", "AAAA", "a" * 85 + "=", "é" * 86, "AA==AA=="],
)
def test_malformed_signatures_rejected(user: nkeys.KeyPair, bad_sig: str) -> None:
    assert decode_signature(bad_sig) is None
    assert not verify_nonce_signature(user.public_key.decode(), NONCE, bad_sig)


def test_missing_or_non_ascii_nonce_rejected(user: nkeys.KeyPair) -> None:
    pub = user.public_key.decode()
    assert not verify_nonce_signature(pub, "", _sign_url(user, b""))
    assert not verify_nonce_signature(pub, "nönce", _sign_url(user, "nönce".encode()))


@settings(max_examples=30, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    nonce=st.from_regex(r"[A-Za-z0-9_-]{1,24}", fullmatch=True),
)
def test_roundtrip_any_key_and_nonce(seed: bytes, nonce: str) -> None:
    kp = _keypair(seed)
    pub = kp.public_key.decode()
    assert decode_public_key(pub) is not None
    assert verify_nonce_signature(pub, nonce, _sign_url(kp, nonce.encode()))
    assert not verify_nonce_signature(pub, nonce + "x", _sign_url(kp, nonce.encode()))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_decode_public_key_never_raises(text: str) -> None:
    result = decode_public_key(text)
    assert result is None or len(result) == 32


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=100))
def test_decode_signature_never_raises(text: str) -> None:
    result = decode_signature(text)
    assert result is None or len(result) == 64

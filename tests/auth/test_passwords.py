"""Password and token comparison: bcrypt shapes, variants, and plain secrets."""

from __future__ import annotations

import bcrypt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.auth.passwords import check_password, is_bcrypt

# Low cost keeps the suite fast; the comparison logic does not depend on the cost.
_SALT = bcrypt.gensalt(4)


def _hash(secret: str, variant: bytes = b"2b") -> str:
    h = bcrypt.hashpw(secret.encode(), _SALT)
    return (b"$" + variant + h[3:]).decode()


@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ("$2a$10$abcdefghijklmnopqrstuu", True),
        ("$2b$04$x", True),
        ("$2x$12$", True),
        ("$2y$31$", True),
        ("$2c$10$abc", False),
        ("$2b$4$abc", False),
        ("$2b$100abc", False),
        ("x$2b$10$abc", False),
        ("$1$10$abc", False),
        ("", False),
        ("s3cr3t", False),
    ],
)
def test_is_bcrypt_shape(stored: str, expected: bool) -> None:
    assert is_bcrypt(stored) is expected


@pytest.mark.parametrize("variant", [b"2a", b"2b", b"2y"])
def test_bcrypt_variants_accept_right_and_reject_wrong(variant: bytes) -> None:
    stored = _hash("pa55word", variant)
    assert stored.startswith("$" + variant.decode() + "$")
    assert check_password("pa55word", stored)
    assert not check_password("pa55worD", stored)
    assert not check_password("", stored)
    # The client sends clear text; sending the hash itself must not work.
    assert not check_password(stored, stored)


def test_corrupt_bcrypt_is_a_mismatch_not_an_error() -> None:
    assert not check_password("x", "$2b$04$short")
    assert not check_password("x", "$2b$04$" + "!" * 53)


def test_bcrypt_over_72_bytes_is_a_mismatch() -> None:
    stored = _hash("a" * 72)
    assert check_password("a" * 72, stored)
    assert not check_password("a" * 73, stored)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.text(max_size=40))
def test_plain_comparison_is_equality(given_secret: str, stored: str) -> None:
    if is_bcrypt(stored):
        return
    assert check_password(given_secret, stored) is (given_secret == stored)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40))
def test_plain_secret_matches_itself(secret: str) -> None:
    if not is_bcrypt(secret):
        assert check_password(secret, secret)

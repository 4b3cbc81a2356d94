"""Shared helpers for the JWT tests: the fixture set in place, and a test-only minter.

The fixtures live in ``shared/fixtures/jwt`` beside the repository (never copied in);
tests that need them call :func:`fixtures_dir`, which skips with a reason if absent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nkeys
import pytest

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "jwt"
FIXED_IAT = 1735689600


def fixtures_dir() -> Path:
    if not (FIXTURES / "expected.json").is_file():
        pytest.skip(f"JWT fixture set not found at {FIXTURES}")
    return FIXTURES


def read(rel: str) -> str:
    return (fixtures_dir() / rel).read_text().strip()


def expected() -> dict[str, Any]:
    return json.loads(read("expected.json"))


def memory_conf() -> tuple[str, str, dict[str, str]]:
    """(operator JWT, system account, preload map) from server-memory-resolver.conf."""
    text = read("server-memory-resolver.conf")
    op = re.search(r"^\s*operator\s*[:=]\s*\"?(eyJ[\w.-]+)", text, re.M)
    sys_acc = re.search(r"^\s*system_account\s*[:=]\s*\"?([A-Z0-9]{56})", text, re.M)
    block = re.search(r"resolver_preload\s*[:=]?\s*\{(.*?)\}", text, re.S)
    assert op and sys_acc and block
    preload = dict(re.findall(r"([A-Z0-9]{56})\s*[:=]\s*\"?(eyJ[\w.-]+)", block.group(1)))
    return op.group(1), sys_acc.group(1), preload


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def keypair(kind: int) -> nkeys.KeyPair:
    seed = nkeys.encode_seed(hashlib.sha256(str(kind).encode() + _counter()).digest(), kind)
    return nkeys.from_seed(seed)


_n = [0]


def _counter() -> bytes:
    _n[0] += 1
    return _n[0].to_bytes(4, "big")


def pub(kp: nkeys.KeyPair) -> str:
    return kp.public_key.decode()


def mint(
    signer: nkeys.KeyPair,
    sub: str,
    nats: dict[str, Any],
    *,
    header: dict[str, Any] | None = None,
    **top: Any,
) -> str:
    """Encode and sign a v2 NATS JWT (test-only; natsd never mints JWTs)."""
    head = b64(json.dumps(header or {"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = {"iat": FIXED_IAT, "iss": pub(signer), "sub": sub, "jti": "t", **top}
    claims["nats"] = {"version": 2, **nats}
    body = b64(json.dumps(claims).encode())
    sig = signer.sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{b64(sig)}"


def sign_nonce(seed: str, nonce: str) -> str:
    return b64(nkeys.from_seed(seed.encode()).sign(nonce.encode()))


@dataclass(frozen=True)
class Connect:
    jwt: str | None = None
    sig: str | None = None
    nkey: str | None = None
    user: str | None = None
    password: str | None = None
    auth_token: str | None = None
    forbidden: bool = False

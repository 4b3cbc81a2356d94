"""Account administration through the system account, natsd vs nats-server.

`$SYS.REQ.CLAIMS.LIST` / `.DELETE` / `.UPDATE` / `ACCOUNT.<a>.CLAIMS.LOOKUP`
against the full (directory) resolver: the reply bodies (less the `server`
block) must be the same as nats-server's, request for request.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import nkeys
import pytest
from servers import SHARED, running

pytestmark = [pytest.mark.e2e, pytest.mark.differential]

FIX = SHARED / "fixtures" / "jwt"
if not (FIX / "expected.json").exists():
    pytest.skip("shared JWT fixtures not present beside the repo", allow_module_level=True)
EXPECTED: dict[str, Any] = json.loads((FIX / "expected.json").read_text())


def b64(b: bytes) -> str:
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def conf(d: Path) -> str:
    text = (FIX / "server-memory-resolver.conf").read_text()
    op = re.search(r"^operator:\s*(\S+)", text, re.M)
    assert op is not None
    sys_acc = EXPECTED["operator"]["system_account"]
    sys_jwt = (FIX / EXPECTED["accounts"]["SYS"]["jwt"]).read_text().strip()
    path = d / "admin.conf"
    path.write_text(
        f"operator: {op.group(1)}\nsystem_account: {sys_acc}\n"
        f'resolver: {{ type: full, dir: "{d / "jwts"}", allow_delete: true }}\n'
        f"resolver_preload: {{ {sys_acc}: {sys_jwt} }}\n"
    )
    return str(path)


def generic(accounts: list[str], signer_file: str) -> bytes:
    kp = nkeys.from_seed((FIX / "keys" / signer_file).read_bytes().strip())
    key = kp.public_key.decode()
    head = b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    claims = {"iat": 1735689700, "iss": key, "sub": key, "jti": "del", "nats": {"accounts": accounts, "type": "generic", "version": 2}}
    body = b64(json.dumps(claims).encode())
    return f"{head}.{body}.{b64(kp.sign(f'{head}.{body}'.encode()))}".encode()


def session(port: int, requests: list[tuple[bytes, bytes]]) -> list[Any]:
    from natsd.auth.jwt import parse_creds

    jwt, seed = parse_creds((FIX / "users" / "SYS" / "sysuser.creds").read_text())
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    f = s.makefile("rb")
    info = json.loads(f.readline()[5:])
    sig = b64(nkeys.from_seed(seed.encode()).sign(info["nonce"].encode()))
    s.sendall(b"CONNECT " + json.dumps({"jwt": jwt, "sig": sig, "verbose": False}).encode() + b"\r\nSUB _INBOX.a 1\r\nPING\r\n")
    assert f.readline() == b"PONG\r\n"
    out = []
    for subject, payload in requests:
        s.sendall(b"PUB %s _INBOX.a %d\r\n%s\r\n" % (subject, len(payload), payload))
        line = f.readline()
        while line.startswith(b"INFO") or line == b"PING\r\n":
            line = f.readline()
        assert line.startswith(b"MSG _INBOX.a 1"), line
        body = f.readline().rstrip(b"\r\n")
        try:
            doc = json.loads(body)
            doc.pop("server", None)
        except ValueError:
            doc = body.decode()
        out.append(doc)
        time.sleep(0.05)
    s.close()
    return out


def test_claims_admin_replies_match_nats_server(tmp_path: Path) -> None:
    a_key = EXPECTED["accounts"]["A"]["public"]
    sys_key = EXPECTED["operator"]["system_account"]
    a_jwt = (FIX / EXPECTED["accounts"]["A"]["jwt"]).read_bytes().strip()
    requests = [
        (b"$SYS.REQ.CLAIMS.LIST", b""),
        (b"$SYS.REQ.CLAIMS.UPDATE", a_jwt),
        (b"$SYS.REQ.CLAIMS.LIST", b""),
        (b"$SYS.REQ.ACCOUNT.%s.CLAIMS.LOOKUP" % a_key.encode(), b""),
        (b"$SYS.REQ.CLAIMS.DELETE", b"abc"),
        (b"$SYS.REQ.CLAIMS.DELETE", generic([sys_key], "operator/O.nk")),
        (b"$SYS.REQ.CLAIMS.DELETE", generic([a_key], "account/A.nk")),
        (b"$SYS.REQ.CLAIMS.DELETE", generic([a_key], "operator/O.nk")),
        (b"$SYS.REQ.CLAIMS.LIST", b""),
    ]
    results = {}
    for kind in ("natsd", "nats-server"):
        d = tmp_path / kind
        d.mkdir()
        with running(kind, config=conf(d)) as server:
            results[kind] = session(server.port, requests)
    assert results["natsd"] == results["nats-server"]


def test_deleted_account_closes_its_live_clients(tmp_path: Path) -> None:
    """CLAIMS.DELETE of an account with a connected user: nats-server expires
    the account, so the user gets `Account Authentication Expired` and is
    closed; logging in again is refused."""
    from jwtraw import Raw, creds

    a_key = EXPECTED["accounts"]["A"]["public"]
    a_jwt = (FIX / EXPECTED["accounts"]["A"]["jwt"]).read_bytes().strip()
    jwt, seed = creds("users/A/alice.creds")
    for kind in ("natsd", "nats-server"):
        d = tmp_path / kind
        d.mkdir()
        with running(kind, config=conf(d)) as server:
            assert session(server.port, [(b"$SYS.REQ.CLAIMS.UPDATE", a_jwt)])[0]["data"]["code"] == 200
            alice = Raw(server.port)
            try:
                assert alice.connect(jwt, seed) == "ok", kind
                deleted = session(server.port, [(b"$SYS.REQ.CLAIMS.DELETE", generic([a_key], "operator/O.nk"))])
                assert deleted[0]["data"] == {"code": 200, "message": "deleted 1 accounts"}, kind
                alice.sock.settimeout(5)
                line = alice.line()
                while line.startswith("INFO") or line == "PING":
                    line = alice.line()
                assert line == "-ERR 'Account Authentication Expired'", kind
                assert alice.closed(), kind
            finally:
                alice.close()
            again = Raw(server.port)
            try:
                assert again.connect(jwt, seed) == "-ERR 'Authorization Violation'", kind
            finally:
                again.close()

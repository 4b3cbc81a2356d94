"""TLS end to end: server TLS, mutual TLS, verify_and_map, TLS-first, refusals.

The same certificates and config go to natsd and to nats-server; natsd's
deliberate strictness (DN order, ambiguous certificates, CA as client leaf)
is covered in tests/supervisor/test_tls_differential.py.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from servers import Server, running
from tlscerts import PKI, client_context, make_pki

pytestmark = [pytest.mark.e2e, pytest.mark.differential]

KINDS = ["natsd", "nats-server"]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def conf(tmp: Path, pki: PKI, name: str, body: str) -> str:
    p = tmp / name
    p.write_text(
        f'tls {{\n  cert_file: "{pki.server.cert_path}"\n  key_file: "{pki.server.key_path}"\n'
        f'  ca_file: "{pki.ca.cert_path}"\n  timeout: 1\n{body}\n}}\n'
    )
    return str(p)


def extra(p: str, text: str) -> str:
    with open(p, "a") as f:
        f.write(text)
    return p


@pytest.fixture
def tls_server(request: pytest.FixtureRequest, tmp_path: Path, pki: PKI) -> Iterator[Server]:
    kind, body, tail = request.param
    path = extra(conf(tmp_path, pki, "tls.conf", body), tail)
    with running(kind, config=path) as s:
        yield s


def run(coro) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(asyncio.wait_for(coro, 20))


async def roundtrip(url: str, ctx: ssl.SSLContext) -> bytes:
    nc = await nats.connect(url, tls=ctx, allow_reconnect=False, max_reconnect_attempts=0)
    sub = await nc.subscribe("tls.x")
    await nc.publish("tls.x", b"secret" * 1000)
    data = (await sub.next_msg(timeout=3)).data
    await nc.close()
    return data


@pytest.mark.parametrize("tls_server", [(k, "", "") for k in KINDS], indirect=True, ids=KINDS)
def test_server_tls(tls_server: Server, pki: PKI) -> None:
    ctx = client_context(pki.ca.cert_path)
    ctx.check_hostname = False
    run(_expect(roundtrip(f"tls://127.0.0.1:{tls_server.port}", ctx), b"secret" * 1000))


async def _expect(coro, value) -> None:  # type: ignore[no-untyped-def]
    assert await coro == value


@pytest.mark.parametrize("tls_server", [(k, "verify: true", "") for k in KINDS], indirect=True, ids=KINDS)
def test_mutual_tls(tls_server: Server, pki: PKI) -> None:
    good = pki.client("mtls-good", "CN=good")
    ctx = client_context(pki.ca.cert_path, good.cert_path, good.key_path)
    ctx.check_hostname = False
    run(_expect(roundtrip(f"tls://127.0.0.1:{tls_server.port}", ctx), b"secret" * 1000))
    # No client certificate, or one from another CA: refused during the handshake.
    foreign = pki.other_ca.issue("foreign", "CN=foreign")
    for bad in (client_context(pki.ca.cert_path), client_context(pki.ca.cert_path, foreign.cert_path, foreign.key_path)):
        bad.check_hostname = False
        assert not raw_tls_ok(tls_server.port, bad)


MAP_USERS = """
authorization { users = [
  { user: "CN=alice,O=Acme", permissions: { publish: "alice.>", subscribe: "alice.>" } }
  { user: "dave@example.com" }
] }
"""


@pytest.mark.parametrize("tls_server", [(k, "verify_and_map: true", MAP_USERS) for k in KINDS], indirect=True, ids=KINDS)
def test_verify_and_map(tls_server: Server, pki: PKI) -> None:
    alice = pki.client("alice", "CN=alice,O=Acme")
    dave = pki.client("dave", "CN=dave", emails=["dave@example.com"])
    mallory = pki.client("mallory", "CN=mallory")
    for who, ok in ((alice, True), (dave, True), (mallory, False)):
        ctx = client_context(pki.ca.cert_path, who.cert_path, who.key_path)
        ctx.check_hostname = False
        assert raw_tls_ok(tls_server.port, ctx) == ok, who.cert_path
    # alice's permissions come from the mapped user.
    ctx = client_context(pki.ca.cert_path, alice.cert_path, alice.key_path)
    ctx.check_hostname = False
    lines = raw_tls_script(tls_server.port, ctx, b"SUB alice.x 1\r\nSUB bob.x 2\r\nPUB alice.x 1\r\nx\r\nPING\r\n")
    assert lines == ["-ERR 'Permissions Violation for Subscription to \"bob.x\"'", "MSG alice.x 1 1", "x", "PONG"]


@pytest.mark.parametrize("tls_server", [(k, "handshake_first: true", "") for k in KINDS], indirect=True, ids=KINDS)
def test_tls_first(tls_server: Server, pki: PKI) -> None:
    ctx = client_context(pki.ca.cert_path)
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        info = json.loads(_line(s)[5:])
        assert info.get("tls_required") is True


@pytest.mark.parametrize("tls_server", [(k, "", "") for k in KINDS], indirect=True, ids=KINDS)
def test_plain_text_on_tls_port_is_closed(tls_server: Server) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as s:
        assert json.loads(_line(s)[5:])["tls_required"] is True
        s.sendall(b"CONNECT {}\r\nPING\r\n")
        s.settimeout(5)
        got = b""
        try:
            while chunk := s.recv(4096):
                got += chunk
        except (ConnectionResetError, TimeoutError):
            pass
        assert b"PONG" not in got


def _line(s: socket.socket) -> str:
    buf = b""
    while not buf.endswith(b"\r\n"):
        c = s.recv(1)
        if not c:
            raise ConnectionError("closed")
        buf += c
    return buf[:-2].decode()


def raw_tls_script(port: int, ctx: ssl.SSLContext, script: bytes) -> list[str]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        _line(raw)  # INFO in plain text, then the handshake
        with ctx.wrap_socket(raw) as s:
            s.sendall(b'CONNECT {"verbose":false}\r\n' + script)
            out = []
            while True:
                line = _line(s)
                out.append(line)
                if line == "PONG":
                    return out


def raw_tls_ok(port: int, ctx: ssl.SSLContext) -> bool:
    try:
        lines = raw_tls_script(port, ctx, b"PING\r\n")
    except (OSError, ssl.SSLError, ConnectionError):
        return False
    return lines == ["PONG"]


def _server_cert_der(port: int) -> bytes:
    ctx = client_context()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        _line(raw)
        with ctx.wrap_socket(raw) as s:
            der = s.getpeercert(binary_form=True)
            assert der is not None
            return der


def test_certificates_reloaded_on_sighup(tmp_path: Path, pki: PKI) -> None:
    import shutil
    import signal
    import time
    import urllib.error
    import urllib.request

    from servers import free_port
    from tlscerts import make_pki as fresh_pki

    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    shutil.copy(pki.server.cert_path, cert)
    shutil.copy(pki.server.key_path, key)
    mport = free_port()
    path = tmp_path / "reload.conf"
    path.write_text(f'https: {mport}\ntls {{ cert_file: "{cert}", key_file: "{key}", timeout: 1 }}\n')
    with running("natsd", config=str(path)) as server:
        before = _server_cert_der(server.port)
        assert before == pki.server.der
        # The monitor is served over TLS too (client certificates not asked).
        deadline = time.monotonic() + 10
        while True:  # 503 until every worker has booted
            try:
                body = urllib.request.urlopen(f"https://127.0.0.1:{mport}/healthz", context=client_context(), timeout=5).read()
                break
            except urllib.error.HTTPError as e:
                assert e.code == 503 and time.monotonic() < deadline
                time.sleep(0.1)
        assert json.loads(body) == {"status": "ok"}
        other = fresh_pki(tmp_path / "rotated")
        shutil.copy(other.server.cert_path, cert)
        shutil.copy(other.server.key_path, key)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "Reloaded TLS certificates" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _server_cert_der(server.port) == other.server.der


@pytest.mark.parametrize("tls_server", [(k, 'handshake_first: "auto"', "") for k in KINDS], indirect=True, ids=KINDS)
def test_tls_first_auto_falls_back_to_classic(tls_server: Server, pki: PKI) -> None:
    ctx = client_context(pki.ca.cert_path)
    ctx.check_hostname = False
    # A TLS-first client is answered TLS-first...
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=5) as raw, ctx.wrap_socket(raw) as s:
        assert _line(s).startswith("INFO ")
    # ...and a classic client, silent at first, gets INFO in plain text, then upgrades.
    assert raw_tls_ok(tls_server.port, ctx)

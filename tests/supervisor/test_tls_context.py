"""The server context's policy, checked with real handshakes over loopback.

Each handshake test runs ``accept_tls`` (uvloop) against a blocking Python ``ssl``
client and asserts on both ends: the server must raise ``TLSHandshakeFailed`` and the
client must see the failure, or both must agree on the negotiated parameters.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from tlscerts import PKI, client_context, connect_tls, make_pki, pair, run

from natsd.config.schema import TLSOptions
from supervisor.tls import (
    TLSConfigError,
    TLSConn,
    TLSHandshakeFailed,
    build_server_context,
    check_client_leaf,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def opts(pki: PKI, **kw: object) -> TLSOptions:
    base: dict[str, object] = {
        "cert_file": str(pki.server.cert_path),
        "key_file": str(pki.server.key_path),
    }
    return TLSOptions(**{**base, **kw})  # type: ignore[arg-type]


def handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext) -> tuple[object, object]:
    """Handshake, then one round trip so TLS 1.3 client-cert failures surface client-side."""

    def client(port: int) -> tuple[str | None, bytes]:
        with connect_tls(port, client_ctx) as s:
            s.sendall(b"PING\r\n")
            return s.version(), s.recv(64)

    async def server_after(conn: TLSConn) -> None:
        assert await conn.recv() == b"PING\r\n"
        conn.send(b"PONG\r\n")

    return run("uvloop", pair(server_ctx, client, server_after=server_after))


# -- configuration ----------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.4", "tls1.2"])
def test_min_version_below_1_2_is_a_config_error(pki: PKI, version: str) -> None:
    with pytest.raises(TLSConfigError, match="unsupported minimum TLS version"):
        build_server_context(opts(pki, min_version=version))


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ("TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "not allowed"),
        ("TLS_RSA_WITH_AES_128_GCM_SHA256", "not allowed"),  # AEAD but no forward secrecy
        ("TLS_RSA_WITH_3DES_EDE_CBC_SHA", "not allowed"),
        ("TLS_FANCY_NEW_SUITE", "unrecognized cipher"),
    ],
)
def test_weak_or_unknown_cipher_suites_refused(pki: PKI, suite: str, message: str) -> None:
    with pytest.raises(TLSConfigError, match=message):
        build_server_context(opts(pki, cipher_suites=("TLS_AES_128_GCM_SHA256", suite)))


def test_go_cipher_names_map_to_openssl(pki: PKI) -> None:
    ctx = build_server_context(
        opts(pki, cipher_suites=("TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",))
    )
    tls12 = {c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert tls12 == {"ECDHE-ECDSA-CHACHA20-POLY1305"}


def test_default_suites_are_all_aead_ecdhe(pki: PKI) -> None:
    ctx = build_server_context(opts(pki))
    for c in ctx.get_ciphers():
        assert c["aead"], c["name"]
        if c["protocol"] == "TLSv1.2":
            assert c["kea"] == "kx-ecdhe", c["name"]
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION
    assert ctx.num_tickets == 0


def test_curves(pki: PKI) -> None:
    notes: list[str] = []
    build_server_context(opts(pki, curve_preferences=("CurveP256",)), notes.append)
    assert notes == []
    build_server_context(opts(pki, curve_preferences=("X25519", "CurveP384")), notes.append)
    assert len(notes) == 1
    with pytest.raises(TLSConfigError, match="unrecognized curve"):
        build_server_context(opts(pki, curve_preferences=("brainpool",)))


def test_missing_files(pki: PKI, tmp_path: Path) -> None:
    with pytest.raises(TLSConfigError, match="cert_file and key_file"):
        build_server_context(TLSOptions(cert_file=str(pki.server.cert_path)))
    with pytest.raises(TLSConfigError, match="cannot load cert_file"):
        build_server_context(opts(pki, key_file=str(tmp_path / "nope.pem")))
    with pytest.raises(TLSConfigError, match="cannot load ca_file"):
        build_server_context(opts(pki, verify=True, ca_file=str(tmp_path / "nope.pem")))


# -- protocol versions and suites --------------------------------------------------------


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1:DeprecationWarning")
@pytest.mark.parametrize("max_version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_old_tls_clients_refused(pki: PKI, max_version: ssl.TLSVersion) -> None:
    client = client_context()
    client.minimum_version = ssl.TLSVersion.TLSv1
    client.maximum_version = max_version
    client.set_ciphers("DEFAULT:@SECLEVEL=0")
    server, result = handshake(build_server_context(opts(pki)), client)
    assert isinstance(server, TLSHandshakeFailed)
    assert isinstance(result, ssl.SSLError)


def test_non_aead_tls12_client_refused(pki: PKI) -> None:
    client = client_context()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA384:AES128-SHA")
    server, result = handshake(build_server_context(opts(pki)), client)
    assert isinstance(server, TLSHandshakeFailed)
    assert isinstance(result, ssl.SSLError)


def test_tls12_and_tls13_negotiate_aead(pki: PKI) -> None:
    ctx = build_server_context(opts(pki))
    for version in (ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3):
        client = client_context(pki.ca.cert_path)
        client.maximum_version = version
        server, result = handshake(ctx, client)
        assert isinstance(server, TLSConn), server
        assert result == (version.name.replace("v1_", "v1."), b"PONG\r\n")
        assert server.tls_version == result[0]
        assert server.cipher is not None and ("GCM" in server.cipher or "CHACHA" in server.cipher)


def test_min_version_1_3_refuses_tls12_client(pki: PKI) -> None:
    client = client_context()
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    server, result = handshake(build_server_context(opts(pki, min_version="1.3")), client)
    assert isinstance(server, TLSHandshakeFailed)
    assert isinstance(result, ssl.SSLError)


# -- mutual TLS --------------------------------------------------------------------------


def _mtls(pki: PKI, cert: Path | None, key: Path | None) -> tuple[object, object]:
    ctx = build_server_context(opts(pki, verify=True, ca_file=str(pki.ca.cert_path)))
    return handshake(ctx, client_context(pki.ca.cert_path, cert, key))


def test_mtls_accepts_cert_from_ca(pki: PKI) -> None:
    good = pki.client("good", "CN=good")
    server, result = _mtls(pki, good.cert_path, good.key_path)
    assert isinstance(server, TLSConn), server
    assert result[1] == b"PONG\r\n"  # type: ignore[index]
    assert server.peer_der() == good.der


@pytest.mark.parametrize("case", ["none", "expired", "not_yet_valid", "wrong_ca"])
def test_mtls_refuses_bad_client_certs(pki: PKI, case: str) -> None:
    if case == "none":
        paths: tuple[Path | None, Path | None] = (None, None)
    elif case == "wrong_ca":
        bad = pki.other_ca.issue("foreign", "CN=foreign")
        paths = (bad.cert_path, bad.key_path)
    else:
        bad = pki.client(case, f"CN={case}", **{case: True})  # type: ignore[arg-type]
        paths = (bad.cert_path, bad.key_path)
    server, result = _mtls(pki, *paths)
    assert isinstance(server, TLSHandshakeFailed), server
    # TLS 1.3: the client learns about the refusal on its first read, as an alert or
    # (asyncio's SSL protocol drops the pending alert on failure) as a bare EOF.
    assert isinstance(result, (ssl.SSLError, ConnectionError)) or result[1] == b"", result  # type: ignore[index]


def test_ca_cert_as_leaf_passes_openssl_but_not_natsd(pki: PKI) -> None:
    server, _ = _mtls(pki, pki.ca.cert_path, pki.ca.issued.key_path)
    # OpenSSL verifies it (the CA is in the trust store), so the check must catch it.
    assert isinstance(server, TLSConn), server
    der = server.peer_der()
    assert der == pki.ca.issued.der
    assert check_client_leaf(der) is not None


def test_verify_off_requests_no_client_cert(pki: PKI) -> None:
    good = pki.client("unasked", "CN=unasked")
    server, _ = handshake(
        build_server_context(opts(pki)),
        client_context(pki.ca.cert_path, good.cert_path, good.key_path),
    )
    assert isinstance(server, TLSConn), server
    assert server.peer_der() is None

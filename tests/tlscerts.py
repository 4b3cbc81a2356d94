"""Throw-away test PKI: a CA, server and client certificates in a temporary directory.

Theory of operation
-------------------
Tests that speak TLS need certificates with exact, sometimes deliberately broken,
properties: SANs of every kind, subjects with odd RDN sequences (two CNs, multi-valued
RDNs, DC components), expired or not-yet-valid leaves, leaves from a foreign CA, a CA
certificate presented as a client leaf. Everything is generated here with
``cryptography`` at test time, so no key material is ever committed.

Keys are EC P-256 by default because they are generated in microseconds; pass
``key_type="rsa"`` when a test needs an RSA certificate (e.g. for the
``TLS_ECDHE_RSA_*`` suites). Each :meth:`CA.issue` writes ``<name>.pem`` and
``<name>-key.pem`` next to the CA's own files and returns an :class:`Issued` that
carries the paths, the parsed certificate and its DER bytes.

A subject is either an RFC 4514 string (``"CN=alice,O=Acme"``, most specific first, as
people write them) or a sequence of RDNs in *certificate (DER) order*, each RDN a
sequence of ``(type, value)`` pairs — the only way to build a multi-valued RDN
unambiguously: ``[[("O", "Acme")], [("CN", "x"), ("OU", "y")]]``.

The second half is a loopback harness for TLS tests: :func:`pair` runs one
server-side ``supervisor.tls.accept_tls`` on the test's event loop (uvloop or plain
asyncio) against a blocking ``ssl`` client in a worker thread, so the two never share
a loop and a stuck client cannot hide a stuck server. Outcomes come back as values
(exceptions included) so a test can assert on both ends.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import uvloop
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from supervisor.tls import TLSConn, accept_tls

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
SubjectSpec = str | Sequence[Sequence[tuple[str, str]]]

NAME_OIDS: dict[str, x509.ObjectIdentifier] = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "ST": NameOID.STATE_OR_PROVINCE_NAME,
    "L": NameOID.LOCALITY_NAME,
    "STREET": NameOID.STREET_ADDRESS,
    "DC": NameOID.DOMAIN_COMPONENT,
    "UID": NameOID.USER_ID,
    "SERIALNUMBER": NameOID.SERIAL_NUMBER,
    "POSTALCODE": NameOID.POSTAL_CODE,
    "emailAddress": NameOID.EMAIL_ADDRESS,
}
_OVERRIDES = {k: v for k, v in NAME_OIDS.items() if k in ("emailAddress", "SERIALNUMBER")}

_NOW = dt.datetime.now(dt.UTC)


def make_key(key_type: str = "ec") -> PrivateKey:
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return ec.generate_private_key(ec.SECP256R1())


def make_name(subject: SubjectSpec) -> x509.Name:
    if isinstance(subject, str):
        return x509.Name.from_rfc4514_string(subject, _OVERRIDES)
    return x509.Name(
        [
            x509.RelativeDistinguishedName([x509.NameAttribute(NAME_OIDS[t], v) for t, v in rdn])
            for rdn in subject
        ]
    )


@dataclass(frozen=True)
class Issued:
    cert_path: Path
    key_path: Path
    cert: x509.Certificate
    key: PrivateKey

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)


def _write(directory: Path, name: str, cert: x509.Certificate, key: PrivateKey) -> Issued:
    cert_path = directory / f"{name}.pem"
    key_path = directory / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Issued(cert_path, key_path, cert, key)


class CA:
    """A self-signed root CA (or, with ``parent``, an intermediate) that issues leaves."""

    def __init__(
        self,
        directory: Path,
        name: str = "ca",
        *,
        subject: SubjectSpec | None = None,
        parent: CA | None = None,
        key_type: str = "ec",
    ) -> None:
        self.directory = directory
        self.issued: Issued
        key = make_key(key_type)
        subj = make_name(subject or f"CN=natsd test {name},O=natsd tests")
        issuer_name = parent.cert.subject if parent else subj
        signer = parent.issued.key if parent else key
        builder = (
            x509.CertificateBuilder()
            .subject_name(subj)
            .issuer_name(issuer_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOW - dt.timedelta(days=1))
            .not_valid_after(_NOW + dt.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True, rsa_key=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        )
        if parent:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(parent.issued.key.public_key()),
                critical=False,
            )
        cert = builder.sign(signer, hashes.SHA256())
        self.issued = _write(directory, name, cert, key)

    @property
    def cert(self) -> x509.Certificate:
        return self.issued.cert

    @property
    def cert_path(self) -> Path:
        return self.issued.cert_path

    def issue(
        self,
        name: str,
        subject: SubjectSpec = "CN=client",
        *,
        emails: Sequence[str] = (),
        dns: Sequence[str] = (),
        uris: Sequence[str] = (),
        ips: Sequence[str] = (),
        not_before: dt.datetime | None = None,
        not_after: dt.datetime | None = None,
        expired: bool = False,
        not_yet_valid: bool = False,
        is_ca: bool = False,
        server: bool = False,
        client: bool = True,
        key_type: str = "ec",
    ) -> Issued:
        """Issue a leaf (or, with ``is_ca``, a CA:true certificate used as a leaf)."""
        key = make_key(key_type)
        if expired:
            not_before, not_after = _NOW - dt.timedelta(days=3), _NOW - dt.timedelta(days=1)
        if not_yet_valid:
            not_before, not_after = _NOW + dt.timedelta(days=1), _NOW + dt.timedelta(days=3)
        builder = (
            x509.CertificateBuilder()
            .subject_name(make_name(subject))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or _NOW - dt.timedelta(hours=1))
            .not_valid_after(not_after or _NOW + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
            .add_extension(_key_usage(ca=is_ca, rsa_key=key_type == "rsa"), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.issued.key.public_key()),
                critical=False,
            )
        )
        usages = [ExtendedKeyUsageOID.SERVER_AUTH] if server else []
        usages += [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
        if usages:
            builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        sans: list[x509.GeneralName] = [x509.RFC822Name(e) for e in emails]
        sans += [x509.DNSName(d) for d in dns]
        sans += [x509.UniformResourceIdentifier(u) for u in uris]
        sans += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.issued.key, hashes.SHA256())
        return _write(self.directory, name, cert, key)


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key and not ca,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class PKI:
    """The usual cast: a CA, a server certificate for localhost, and a foreign CA."""

    directory: Path
    ca: CA
    server: Issued
    other_ca: CA

    def client(self, name: str, subject: SubjectSpec = "CN=client", **kw: object) -> Issued:
        return self.ca.issue(name, subject, **kw)  # type: ignore[arg-type]


def make_pki(directory: Path, *, server_key_type: str = "ec") -> PKI:
    directory.mkdir(parents=True, exist_ok=True)
    ca = CA(directory, "ca")
    server = ca.issue(
        "server",
        "CN=localhost",
        dns=["localhost"],
        ips=["127.0.0.1"],
        server=True,
        client=False,
        key_type=server_key_type,
    )
    return PKI(directory, ca, server, CA(directory, "other-ca"))


# -- loopback harness ------------------------------------------------------------

T = TypeVar("T")
INFO = b'INFO {"server_id":"test","tls_required":true}\r\n'
LOOPS = ["uvloop", "asyncio"]


def run(kind: str, coro: Coroutine[Any, Any, T], timeout: float = 30.0) -> T:
    factory = uvloop.new_event_loop if kind == "uvloop" else asyncio.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(asyncio.wait_for(coro, timeout))


def client_context(
    ca: Path | None = None,
    cert: Path | None = None,
    key: Path | None = None,
) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(cafile=str(ca))
    if cert is not None:
        ctx.load_cert_chain(str(cert), str(key))
    return ctx


def read_line(sock: socket.socket) -> bytes:
    buf = b""
    while not buf.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            break
        buf += chunk
    return buf


def listener(bufsize: int | None = None) -> socket.socket:
    """A loopback listener; ``bufsize`` shrinks the kernel buffers accepted sockets inherit."""
    lsock = socket.socket()
    if bufsize is not None:
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, bufsize)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, bufsize)
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(16)
    lsock.setblocking(False)
    return lsock


def connect_tls(
    port: int, ctx: ssl.SSLContext, *, info: bool = True, timeout: float = 10.0
) -> ssl.SSLSocket:
    """Blocking client: read the plain INFO line (default flow), then handshake."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        if info:
            line = read_line(raw)
            assert line.startswith(b"INFO "), line
        return ctx.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


async def accept_one(
    lsock: socket.socket,
    ctx: ssl.SSLContext,
    *,
    info: bool = True,
    timeout: float = 5.0,
) -> TLSConn:
    loop = asyncio.get_running_loop()
    sock, _ = await loop.sock_accept(lsock)
    if info:
        await loop.sock_sendall(sock, INFO)
    return await accept_tls(loop, sock, ctx, timeout)


async def pair(
    server_ctx: ssl.SSLContext,
    client: Callable[[int], T],
    *,
    info: bool = True,
    timeout: float = 5.0,
    server_after: Callable[[TLSConn], Awaitable[object]] | None = None,
) -> tuple[TLSConn | BaseException, T | BaseException]:
    """Run one handshake; return (server outcome, client outcome), exceptions as values."""
    lsock = listener()
    port = lsock.getsockname()[1]
    try:
        client_task = asyncio.ensure_future(asyncio.to_thread(client, port))
        server_result: TLSConn | BaseException
        try:
            server_result = await accept_one(lsock, server_ctx, info=info, timeout=timeout)
            if server_after is not None:
                await server_after(server_result)
        except Exception as e:
            server_result = e
        client_result: T | BaseException
        try:
            client_result = await client_task
        except Exception as e:
            client_result = e
        if isinstance(server_result, TLSConn):
            server_result.close()
        return server_result, client_result
    finally:
        lsock.close()

"""TLS in the supervisor: the server context, post-handshake checks and the plaintext relay.

Theory of operation
-------------------
The supervisor terminates TLS; workers only ever see plaintext stream sockets
(design/python-ceilings.md §2). For one client the supervisor:

1. accepts the TCP socket and, unless ``handshake_first``, writes INFO in plain text
   (the client's ClientHello may already sit in the kernel buffer: nothing here reads
   from the socket before the handshake starts, so those bytes are not lost);
2. calls :func:`accept_tls`, which hands the socket to ``loop.connect_accepted_socket``
   with ``ssl=ctx``: the event loop's SSL protocol (Cython in uvloop, the cheapest path
   we have) owns the socket from its first read, so a ClientHello already queued in
   the kernel is never lost. Each handshake is its own task bounded by
   ``tls.timeout``: a stalled client costs one idle transport, never a blocked loop;
3. checks the peer (:func:`check_client_leaf`, :func:`check_pinned`), reads plaintext
   with :meth:`TLSConn.recv` until it has CONNECT, authenticates, and picks a worker;
4. makes a ``socketpair(AF_UNIX, SOCK_STREAM)``, sends one end to the worker together
   with the plaintext it already read past CONNECT (the worker's ``pre``), and calls
   :meth:`TLSConn.start_relay` with the other end.

From then on two small protocols pump bytes. Back-pressure is symmetric: when one
side's write buffer crosses its high-water mark (``pause_writing``), the *other* side
stops reading until it drains. Both write buffers are bounded by the high-water mark
plus one read chunk, and uvloop's SSL protocol bounds its own incoming buffer, so a
slow worker or a slow client pins a fixed amount of memory, never an unbounded one.

Closing. TLS has no usable half-close through asyncio's SSL transport, so: client EOF
(close_notify or TCP FIN) is forwarded to the worker as ``shutdown(SHUT_WR)`` after the
queued bytes, and the TLS side then finishes; worker EOF makes the TLS side flush what
is queued and send close_notify. Whichever side goes away, the other is closed after
its queued bytes are written, and :attr:`TLSConn.closed` resolves once both are gone.

Context policy (natsd's stance, stricter than nats-server): TLS 1.2 or 1.3 only; TLS
1.2 suites are ECDHE with AES-GCM or ChaCha20-Poly1305 (TLS 1.3 suites are all AEAD);
no compression, no renegotiation, no session tickets (``num_tickets = 0``). Options
use nats-server's Go names and are translated here; anything weaker is a
:class:`TLSConfigError`, not a silent downgrade.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from natsd.auth.tlspeer import spki_sha256_hex
from natsd.config.schema import TLSOptions

__all__ = [
    "RelayLimits",
    "TLSConfigError",
    "TLSConn",
    "TLSHandshakeFailed",
    "TLSHandshakeTimeout",
    "accept_tls",
    "build_server_context",
    "check_client_leaf",
    "check_pinned",
    "peek_first_byte",
]


class TLSConfigError(Exception):
    """The ``tls {}`` block asks for something natsd will not do."""


class TLSHandshakeFailed(Exception):
    """The handshake did not complete; ``reason`` is a short text for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TLSHandshakeTimeout(TLSHandshakeFailed):
    """The handshake did not complete within ``tls.timeout``."""


# -- context ---------------------------------------------------------------------------

# nats-server cipher names (Go's crypto/tls) that natsd accepts, mapped to OpenSSL.
_AEAD_SUITES: dict[str, str] = {
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
}
# TLS 1.3 suites: always AEAD and always enabled; Python cannot narrow them, so
# listing them is accepted and changes nothing.
_TLS13_SUITES = frozenset(
    {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}
)
# Names Go knows that natsd refuses (CBC/RC4/3DES, or no forward secrecy).
_REFUSED_SUITES = frozenset(
    {
        "TLS_RSA_WITH_RC4_128_SHA",
        "TLS_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA",
        "TLS_RSA_WITH_AES_256_CBC_SHA",
        "TLS_RSA_WITH_AES_128_CBC_SHA256",
        "TLS_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_RSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_RC4_128_SHA",
        "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
        "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
        "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256",
    }
)
_DEFAULT_SUITES = ":".join(dict.fromkeys(_AEAD_SUITES.values()))

_CURVES: dict[str, str] = {
    "X25519": "X25519",
    "CURVEP256": "prime256v1",
    "CURVEP384": "secp384r1",
    "CURVEP521": "secp521r1",
}
_UNSUPPORTED_CURVES = frozenset({"X25519MLKEM768", "SECP256R1MLKEM768", "SECP384R1MLKEM1024"})

_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}


def build_server_context(
    tls: TLSOptions, warn: Callable[[str], None] | None = None
) -> ssl.SSLContext:
    """An ``SSLContext`` for the client listener; :class:`TLSConfigError` if refused.

    ``warn`` receives notes about options that are valid but only partly honoured
    (Python can restrict key exchange to a single curve only).
    """
    if not tls.cert_file or not tls.key_file:
        raise TLSConfigError("tls: cert_file and key_file are required")
    minimum = _VERSIONS.get(tls.min_version.strip())
    if minimum is None:
        raise TLSConfigError(
            f"tls: unsupported minimum TLS version: {tls.min_version!r} (natsd accepts 1.2 or 1.3)"
        )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = minimum
    ctx.maximum_version = ssl.TLSVersion.TLSv1_3
    ctx.options |= (
        ssl.OP_NO_COMPRESSION
        | ssl.OP_NO_RENEGOTIATION
        | ssl.OP_CIPHER_SERVER_PREFERENCE
        | ssl.OP_NO_TICKET
        | ssl.OP_SINGLE_ECDH_USE
    )
    ctx.num_tickets = 0
    suites = _map_suites(tls.cipher_suites)
    if suites == "":
        # Only TLS 1.3 names listed: there is no TLS 1.2 suite left to offer.
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        ctx.set_ciphers(suites)
    _apply_curves(ctx, tls.curve_preferences, warn)
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as e:
        raise TLSConfigError(
            f"tls: cannot load cert_file {tls.cert_file!r} / key_file {tls.key_file!r}: {e}"
        ) from None
    if tls.verify or tls.verify_and_map:
        ctx.verify_mode = ssl.CERT_REQUIRED
        try:
            if tls.ca_file:
                ctx.load_verify_locations(cafile=tls.ca_file)
            else:
                ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
        except (OSError, ssl.SSLError) as e:
            raise TLSConfigError(f"tls: cannot load ca_file {tls.ca_file!r}: {e}") from None
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def _map_suites(names: Iterable[str]) -> str:
    """OpenSSL cipher string for TLS 1.2; ``""`` when only TLS 1.3 names are listed."""
    names = [n.strip() for n in names]
    if not names:
        return _DEFAULT_SUITES
    out: list[str] = []
    for name in names:
        key = name.upper()
        if key in _AEAD_SUITES:
            out.append(_AEAD_SUITES[key])
        elif key in _TLS13_SUITES:
            continue
        elif key in _REFUSED_SUITES:
            raise TLSConfigError(
                f"tls: cipher suite {name} is not allowed: natsd accepts only ECDHE suites "
                "with AES-GCM or ChaCha20-Poly1305"
            )
        else:
            raise TLSConfigError(f"tls: unrecognized cipher {name}")
    return ":".join(dict.fromkeys(out))


def _apply_curves(
    ctx: ssl.SSLContext, names: Iterable[str], warn: Callable[[str], None] | None
) -> None:
    curves: list[str] = []
    for name in names:
        key = name.strip().upper()
        if key in _CURVES:
            curves.append(_CURVES[key])
        elif key in _UNSUPPORTED_CURVES:
            if warn:
                warn(f"tls: curve preference {name} is not available here; ignored")
        else:
            raise TLSConfigError(f"tls: unrecognized curve preference {name}")
    if len(curves) == 1:
        ctx.set_ecdh_curve(curves[0])
    elif curves and warn:
        # ssl.SSLContext can only pin one group; OpenSSL's default list is a superset
        # of strong groups, so keeping it is safer than pinning only the first entry.
        warn("tls: curve_preferences with several curves: using OpenSSL's default groups")


# -- post-handshake checks -------------------------------------------------------------


def check_client_leaf(der: bytes) -> str | None:
    """Why a verified client leaf must still be refused, or ``None`` if it is fine.

    OpenSSL happily accepts a CA certificate presented as the client's own (it is in
    the trust store, so the "chain" verifies); natsd never does.
    """
    try:
        cert = x509.load_der_x509_certificate(der)
        ext = cert.extensions
    except ValueError as e:
        return f"client certificate cannot be parsed: {e}"
    try:
        if ext.get_extension_for_class(x509.BasicConstraints).value.ca:
            return "client certificate is a CA certificate (basicConstraints CA:TRUE)"
    except x509.ExtensionNotFound:
        pass
    try:
        ku = ext.get_extension_for_class(x509.KeyUsage).value
        if ku.key_cert_sign or ku.crl_sign:
            return "client certificate may sign certificates (keyUsage keyCertSign/cRLSign)"
    except x509.ExtensionNotFound:
        pass
    try:
        eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
        allowed = {ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
        if not allowed.intersection(eku):
            return "client certificate is not valid for client authentication (extendedKeyUsage)"
    except x509.ExtensionNotFound:
        pass
    return None


def check_pinned(der: bytes | None, pins: Iterable[str]) -> bool:
    """True when no pins are configured or the leaf's SPKI SHA-256 is among them."""
    wanted = {p.strip().lower() for p in pins}
    if not wanted:
        return True
    if der is None:
        return False
    try:
        return spki_sha256_hex(der) in wanted
    except ValueError:
        return False


# -- handshake and relay ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Buffer bounds (bytes) and the close_notify wait (seconds)."""

    recv_buffer: int = 64 * 1024  # plaintext held before hand-off
    high_water: int = 256 * 1024  # per-direction write buffer before pausing the other side
    low_water: int = 64 * 1024
    shutdown_timeout: float = 5.0


async def peek_first_byte(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, timeout: float
) -> bytes | None:
    """The first byte the client sent, left in the socket; ``b""`` at EOF, ``None`` on timeout.

    Serves ``allow_non_tls`` (``0x16`` starts a TLS record) and ``handshake_first:
    auto`` (no ClientHello within the delay ⇒ send INFO and fall back).
    """
    ready: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(sock.fileno(), on_readable)
    try:
        await asyncio.wait_for(ready, timeout)
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(sock.fileno())
    try:
        return sock.recv(1, socket.MSG_PEEK)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""


async def accept_tls(
    loop: asyncio.AbstractEventLoop,
    sock: socket.socket,
    ctx: ssl.SSLContext,
    timeout: float,
    limits: RelayLimits = RelayLimits(),
) -> TLSConn:
    """Run the server-side handshake on an accepted socket; the socket now belongs to us.

    Raises :class:`TLSHandshakeTimeout` or :class:`TLSHandshakeFailed`; either way the
    socket is closed (by the transport, or at the latest by a backstop timer).
    """
    conn = TLSConn(loop, limits)
    try:
        # The SSL protocol owns the socket from the first read. (Attaching a plain
        # transport first and calling start_tls loses a ClientHello that is already
        # queued: uvloop may deliver it to the plain protocol before it can pause.)
        async with asyncio.timeout(timeout):
            tls, _ = await loop.connect_accepted_socket(
                lambda: _TLSSide(conn),
                sock,
                ssl=ctx,
                ssl_handshake_timeout=timeout + 1.0,
                ssl_shutdown_timeout=limits.shutdown_timeout,
            )
    except TimeoutError:
        _backstop_close(loop, sock, limits)
        raise TLSHandshakeTimeout(f"TLS handshake timeout after {timeout:g}s") from None
    except ssl.SSLError as e:
        _backstop_close(loop, sock, limits)
        raise TLSHandshakeFailed(f"TLS handshake error: {e.reason or e}") from None
    except (OSError, EOFError) as e:
        _backstop_close(loop, sock, limits)
        raise TLSHandshakeFailed(f"TLS handshake error: {e!r}") from None
    conn._attach(tls)
    return conn


def _backstop_close(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, limits: RelayLimits
) -> None:
    # The failed transport closes the socket itself. Closing it here at once could
    # pull the fd from under a transport still unwinding; later, the call is a no-op
    # on a closed socket object and a safety net otherwise.
    loop.call_later(limits.shutdown_timeout + 1.0, sock.close)


class TLSConn:
    """One client's TLS session: read CONNECT here, then relay to a worker."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: RelayLimits) -> None:
        self._loop = loop
        self._limits = limits
        self._tls: asyncio.Transport | None = None
        self._unix: asyncio.Transport | None = None
        self._buf = bytearray()  # plaintext not yet handed to recv() or the worker
        self._eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._relaying = False
        self._unix_pending = False
        self._tls_lost = False
        self._unix_lost = False
        self._blockers: set[str] = set()  # why TLS reading is paused
        self.bytes_in = 0  # plaintext from the client
        self.bytes_out = 0  # plaintext to the client
        self.closed: asyncio.Future[None] = loop.create_future()

    # -- public ---------------------------------------------------------------------

    def peer_der(self) -> bytes | None:
        obj = self._tls.get_extra_info("ssl_object") if self._tls else None
        return obj.getpeercert(binary_form=True) if obj is not None else None

    @property
    def tls_version(self) -> str | None:
        obj = self._tls.get_extra_info("ssl_object") if self._tls else None
        return obj.version() if obj is not None else None

    @property
    def cipher(self) -> str | None:
        obj = self._tls.get_extra_info("ssl_object") if self._tls else None
        c = obj.cipher() if obj is not None else None
        return c[0] if c else None

    @property
    def pending_to_client(self) -> int:
        """Plaintext queued for the client (TLS write buffer), for metrics and tests."""
        return self._tls.get_write_buffer_size() if self._tls else 0

    @property
    def pending_to_worker(self) -> int:
        """Bytes queued for the worker: the socketpair's write buffer or the pre-relay buffer."""
        return self._unix.get_write_buffer_size() if self._unix else len(self._buf)

    async def recv(self) -> bytes:
        """Plaintext from the client, ``b""`` at EOF. Only before :meth:`start_relay`."""
        if self._relaying:
            raise RuntimeError("recv() after start_relay()")
        while not self._buf and not self._eof:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        data = bytes(self._buf)
        self._buf.clear()
        self._unblock("recv")
        return data

    def send(self, data: bytes) -> None:
        if self._tls is not None and not self._tls.is_closing():
            self._tls.write(data)
            self.bytes_out += len(data)

    async def start_relay(self, unix_sock: socket.socket) -> None:
        """Pump plaintext between the client and ``unix_sock`` until either side closes.

        Plaintext that arrived after the last :meth:`recv` goes to the worker first, so
        the worker sees: its ``pre`` bytes, then this socket's stream, in order.
        """
        if self._relaying:
            raise RuntimeError("start_relay() called twice")
        self._relaying = True
        if self._tls_lost:
            unix_sock.close()
            self._check_done()
            return
        self._unix_pending = True
        try:
            unix, _ = await self._loop.connect_accepted_socket(lambda: _UnixSide(self), unix_sock)
        except OSError:
            self._unix_pending = False
            unix_sock.close()
            self.close()
            self._check_done()
            return
        self._unix_pending = False
        unix.set_write_buffer_limits(self._limits.high_water, self._limits.low_water)
        self._unix = unix
        if self._buf:
            unix.write(bytes(self._buf))
            self._buf.clear()
        self._unblock("recv")
        if self._eof or self._tls_lost:
            self._on_tls_eof()
        if self._tls_lost:
            unix.close()

    def close(self) -> None:
        """Flush and close both sides (close_notify to the client)."""
        if self._tls is not None:
            self._tls.close()
        if self._unix is not None:
            self._unix.close()

    def abort(self) -> None:
        """Drop both sides now, discarding queued bytes."""
        if self._tls is not None:
            self._tls.abort()
        if self._unix is not None:
            self._unix.abort()

    # -- TLS side -------------------------------------------------------------------

    def _attach(self, tls: asyncio.Transport) -> None:
        self._tls = tls
        tls.set_write_buffer_limits(self._limits.high_water, self._limits.low_water)

    def _on_tls_data(self, data: bytes) -> None:
        self.bytes_in += len(data)
        if self._unix is not None:
            self._unix.write(data)
            return
        self._buf += data
        if len(self._buf) >= self._limits.recv_buffer:
            self._block("recv")
        self._wake()

    def _on_tls_eof(self) -> None:
        self._eof = True
        self._wake()
        if self._unix is not None and not self._unix.is_closing() and self._unix.can_write_eof():
            self._unix.write_eof()

    def _on_tls_lost(self) -> None:
        self._tls_lost = True
        self._eof = True
        self._wake()
        if self._unix is not None:
            self._unix.close()  # after its queued bytes: the worker still gets them
        self._check_done()

    def _block(self, why: str) -> None:
        if not self._blockers and self._tls is not None and not self._tls.is_closing():
            self._tls.pause_reading()
        self._blockers.add(why)

    def _unblock(self, why: str) -> None:
        if why not in self._blockers:
            return
        self._blockers.discard(why)
        if not self._blockers and self._tls is not None and not self._tls.is_closing():
            self._tls.resume_reading()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # -- worker side ----------------------------------------------------------------

    def _on_unix_data(self, data: bytes) -> None:
        if self._tls is not None and not self._tls.is_closing():
            self._tls.write(data)
            self.bytes_out += len(data)

    def _on_unix_eof(self) -> None:
        if self._tls is not None:
            self._tls.close()  # flushes, then close_notify

    def _on_unix_lost(self) -> None:
        self._unix_lost = True
        if self._tls is not None:
            self._tls.close()
        self._check_done()

    def _check_done(self) -> None:
        unix_done = self._unix_lost or (self._unix is None and not self._unix_pending)
        if self._tls_lost and unix_done and not self.closed.done():
            self.closed.set_result(None)


class _TLSSide(asyncio.Protocol):
    def __init__(self, conn: TLSConn) -> None:
        self._conn = conn

    def data_received(self, data: bytes) -> None:
        self._conn._on_tls_data(data)

    def eof_received(self) -> bool:
        self._conn._on_tls_eof()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn._on_tls_lost()

    def pause_writing(self) -> None:
        # The client reads slower than the worker writes: stop reading the worker.
        if self._conn._unix is not None and not self._conn._unix.is_closing():
            self._conn._unix.pause_reading()

    def resume_writing(self) -> None:
        if self._conn._unix is not None and not self._conn._unix.is_closing():
            self._conn._unix.resume_reading()


class _UnixSide(asyncio.Protocol):
    def __init__(self, conn: TLSConn) -> None:
        self._conn = conn

    def data_received(self, data: bytes) -> None:
        self._conn._on_unix_data(data)

    def eof_received(self) -> bool:
        self._conn._on_unix_eof()
        return True  # keep delivering client bytes while the TLS side flushes

    def connection_lost(self, exc: Exception | None) -> None:
        self._conn._on_unix_lost()

    def pause_writing(self) -> None:
        # The worker reads slower than the client writes: stop reading the client.
        self._conn._block("worker")

    def resume_writing(self) -> None:
        self._conn._unblock("worker")

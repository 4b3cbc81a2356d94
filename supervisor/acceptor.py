"""From accept() to hand-off: INFO, CONNECT, authentication.

Theory of operation
-------------------
Each accepted socket gets its own short-lived coroutine, so one slow or
stalled client never blocks another. The steps mirror nats-server:

1. over ``max_connections``: ``-ERR 'maximum connections exceeded'``, close;
2. send INFO (with a fresh ``nonce`` when nkeys or JWTs are in use);
3. when authentication is not enforced, hand the socket to the worker of
   ``$G`` at once: the worker parses everything, CONNECT included, and the
   supervisor never sees a client byte;
4. otherwise read the first control line under the auth timeout, bounded by
   ``max_control_line``. A CONNECT is decoded and authenticated; any other
   first op is ``Authorization Violation`` unless ``no_auth_user`` binds the
   client as if an empty CONNECT had arrived;
5. on success, the :class:`HandOff` (account, user, permissions, connect
   options, credential digest, every byte read after CONNECT) goes to the
   account's worker with the descriptor attached. Nothing reaches a worker
   before authentication has succeeded.

The supervisor only ever *reads up to* the end of the CONNECT line; whatever
the client pipelined after it travels in ``HandOff.pending``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import msgspec

from natsd.auth.authenticate import AuthFail, AuthOk, ClientInfo, authenticate, credential_digest
from natsd.auth.tlspeer import TLSPeer, peer_from_der
from natsd.config.schema import GLOBAL_ACCOUNT
from natsd.ipc import messages as M
from natsd.proto import errors as E
from natsd.proto.connect import ConnectOptions, parse_connect, validate_connect
from natsd.proto.errors import ProtocolError
from natsd.proto.parser import OP_CONNECT, OP_ERROR, Parser
from natsd.proto.writer import info_line
from supervisor.info import new_nonce
from supervisor.tls import (
    TLSConn,
    TLSHandshakeFailed,
    accept_tls,
    check_client_leaf,
    check_pinned,
    peek_first_byte,
)

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger("natsd.acceptor")

READ_CHUNK = 65536


@dataclass(frozen=True)
class _Empty:
    """An empty CONNECT, for clients bound by ``no_auth_user``."""

    user: str | None = None
    password: str | None = None
    auth_token: str | None = None
    nkey: str | None = None
    sig: str | None = None
    jwt: str | None = None
    forbidden: bool = False


def _err(text: str) -> bytes:
    return ProtocolError(text, True).wire()


class Handshake:
    """One client's pre-authentication phase."""

    def __init__(self, sup: Supervisor, sock: socket.socket, addr: tuple[str, int], cid: int) -> None:
        self.sup = sup
        self.sock = sock
        self.tls: TLSConn | None = None
        self.peer: TLSPeer | None = None
        self.host = str(addr[0]) if addr else ""
        self.port = int(addr[1]) if addr and len(addr) > 1 else 0
        self.cid = cid
        self.loop = sup.loop
        self.started = time.time()
        self.attempt: ConnectOptions | None = None  # the parsed CONNECT, for auth-error events

    async def run(self) -> None:
        try:
            await self._run()
        except (ConnectionError, OSError) as e:
            log.debug("cid:%d - %s:%d - connection error before hand-off: %s", self.cid, self.host, self.port, e)
            self._close()
        except Exception:
            # A bug reached by client input: the client is closed (its socket
            # is never leaked) and the traceback logged; the supervisor goes on.
            log.exception("cid:%d - %s:%d - internal error before hand-off", self.cid, self.host, self.port)
            self._close()

    async def _send(self, data: bytes) -> None:
        if self.tls is not None:
            self.tls.send(data)
        else:
            await self.loop.sock_sendall(self.sock, data)

    async def _recv(self) -> bytes:
        if self.tls is not None:
            return await self.tls.recv()
        return await self.loop.sock_recv(self.sock, READ_CHUNK)

    def _close(self) -> None:
        if self.tls is not None:
            self.tls.close()
            return
        try:
            self.sock.close()
        except OSError:
            pass

    async def _start_tls(self) -> bool:
        """Handshake (and client-certificate checks); False if the client is gone."""
        sup = self.sup
        tls = sup.opts.tls
        assert tls is not None and sup.tls_ctx is not None
        try:
            conn = await accept_tls(self.loop, self.sock, sup.tls_ctx, tls.timeout)
        except TLSHandshakeFailed as e:
            log.info("%s:%d - cid:%d - %s", self.host, self.port, self.cid, e)  # e says "TLS handshake ..."
            return False
        self.tls = conn
        sup.track_relay(conn)
        der = conn.peer_der()
        if tls.verify or tls.verify_and_map:
            problem = check_client_leaf(der) if der is not None else "no client certificate"
            if problem is None and tls.pinned_certs and not check_pinned(der, tls.pinned_certs):
                problem = "certificate not in pinned_certs"
            if problem is not None:
                log.info("%s:%d - cid:%d - TLS client certificate refused: %s", self.host, self.port, self.cid, problem)
                conn.abort()
                return False
            assert der is not None
            try:
                self.peer = peer_from_der(der, verified=True)
            except ValueError:
                conn.abort()
                return False
        return True

    async def _refuse(self, text: str | None, reason: str) -> None:
        """Send ``-ERR 'text'`` (none when ``text`` is None, as nats-server) and close."""
        log.info("%s:%d - cid:%d - %s: %s", self.host, self.port, self.cid, text or "closed", reason)
        if text == E.ERR_AUTH_VIOLATION:
            self.sup.stats_auth_failures += 1
            self.sup.sysapi.auth_error_event(self.cid, self.host, self.started, self.attempt)
        if text is not None:
            try:
                await asyncio.wait_for(self._send(_err(text)), 1.0)
            except (TimeoutError, OSError):
                pass
        self._close()

    async def _run(self) -> None:
        sup = self.sup
        opts = sup.opts
        if sup.active_connections() >= opts.max_connections:
            await self._refuse(E.ERR_MAX_CONNS, "server connection limit reached")
            return
        cfg = sup.auth
        nonce = new_nonce() if cfg.nonce_required else None
        info = dict(sup.info)
        info["client_id"] = self.cid
        info["client_ip"] = self.host
        if nonce is not None:
            info["nonce"] = nonce
        tls = opts.tls
        tls_first = tls is not None and tls.handshake_first
        if tls_first and tls is not None and tls.handshake_first_fallback is not None:
            # "auto" / a duration: TLS first if a ClientHello arrives in time,
            # otherwise INFO in plain text and the classic upgrade.
            first = await peek_first_byte(self.loop, self.sock, tls.handshake_first_fallback)
            if first == b"":
                self._close()
                return
            tls_first = first == b"\x16"
        if tls_first:
            if not await self._start_tls():
                return
            await self._send(info_line(info))
        else:
            await self._send(info_line(info))
            if tls is not None:
                first = b"\x16"
                if opts.allow_non_tls:
                    first = await peek_first_byte(self.loop, self.sock, sup.auth_timeout) or b""
                if first[:1] == b"\x16" and not await self._start_tls():
                    return
        if not cfg.enforced:
            self._hand_off(GLOBAL_ACCOUNT, None, None, M.ConnectInfo(), connected=False, pending=b"", digest=b"")
            return
        deadline = self.loop.time() + sup.auth_timeout
        parser = Parser(opts.max_control_line, opts.max_payload, not opts.no_header_support)
        received = bytearray()
        while True:
            remaining = deadline - self.loop.time()
            if remaining <= 0:
                await self._refuse(E.ERR_AUTH_TIMEOUT, "no CONNECT within auth timeout")
                return
            try:
                data = await asyncio.wait_for(self._recv(), remaining)
            except TimeoutError:
                await self._refuse(E.ERR_AUTH_TIMEOUT, "no CONNECT within auth timeout")
                return
            if not data:
                log.debug("cid:%d - client closed before CONNECT", self.cid)
                self._close()
                return
            if not received and data[:1] not in (b"C", b"c"):
                # nats-server decides on the first byte: with authentication
                # required, anything but CONNECT is a violation; with a
                # no_auth_user the client is bound at once, and the worker
                # parses everything it sent (nothing piles up here).
                if cfg.no_auth_fast_path():
                    result = authenticate(_Empty(), self._client_info(nonce), cfg, time.time())
                    if isinstance(result, AuthOk):
                        self._hand_off_ok(result, M.ConnectInfo(), connected=False, pending=bytes(data), digest=result.auth_digest)
                        return
                await self._refuse(E.ERR_AUTH_VIOLATION, "operation before CONNECT")
                return
            received += data
            if len(received) > opts.max_control_line + READ_CHUNK:
                # The parser refuses an over-long CONNECT line before this; the
                # bound is here so that no input can grow the buffer.
                await self._refuse(E.ERR_MAX_CONTROL_LINE, "no complete CONNECT line")
                return
            ops, rest = parser.feed_first(data)
            if ops:
                break
        op = ops[0]
        if op[0] == OP_ERROR:
            err: ProtocolError = op[1]
            await self._refuse(err.text, "protocol error before CONNECT")
            return
        if op[0] == OP_CONNECT:
            await self._connect(op[1], rest, nonce)
            return
        # Input that starts with "C" parses to CONNECT or an error; a
        # no_auth_user client sending anything else was bound on its first byte.
        await self._refuse(E.ERR_AUTH_VIOLATION, "operation before CONNECT")

    def _client_info(self, nonce: str | None) -> ClientInfo:
        return ClientInfo(host=self.host, port=self.port, nonce=nonce, tls=self.peer)

    async def _connect(self, raw: bytes, rest: bytes, nonce: str | None) -> None:
        try:
            c = parse_connect(raw)
        except ProtocolError as e:
            await self._refuse(e.text, "malformed CONNECT")
            return
        self.attempt = c
        if c.forbidden:
            await self._refuse(E.ERR_AUTH_VIOLATION, "CONNECT carries forbidden account fields")
            return
        result = authenticate(c, self._client_info(nonce), self.sup.auth, time.time())
        if isinstance(result, AuthFail):
            await self._refuse(result.wire_text, result.reason)
            return
        err = validate_connect(c)
        if err is not None:
            await self._refuse(err.text, "invalid CONNECT options")
            return
        ci = M.ConnectInfo(**M.connect_fields(c))
        if await self._over_account_limit(result.account):
            return
        if self.sup.operator is not None:
            self.sup.operator.ensure_account(result.account)
        self._hand_off_ok(result, ci, connected=True, pending=rest, digest=credential_digest(c), jwt=c.jwt)

    async def _over_account_limit(self, account: str) -> bool:
        limit = self.sup.account_conn_limit(account)
        if limit >= 0 and self.sup.account_conns.get(account, 0) >= limit:
            await self._refuse(E.ERR_MAX_ACCOUNT_CONNS, f"account {account} connection limit {limit} reached")
            return True
        return False

    def _hand_off_ok(
        self, ok: AuthOk, ci: M.ConnectInfo, *, connected: bool, pending: bytes, digest: bytes, jwt: str | None = None
    ) -> None:
        if ok.warning:
            log.warning("cid:%d - %s", self.cid, ok.warning)
        self.sup.account_connected(ok.account)
        self._hand_off(ok.account, ok, ok.user, ci, connected=connected, pending=pending, digest=digest, jwt=jwt)

    def _hand_off(
        self,
        account: str,
        ok: AuthOk | None,
        user: str | None,
        ci: M.ConnectInfo,
        *,
        connected: bool,
        pending: bytes,
        digest: bytes,
        jwt: str | None = None,
    ) -> None:
        sup = self.sup
        h = M.HandOff(
            client_id=self.cid,
            account=account,
            user=user,
            permissions=ok.permissions if ok else None,
            connect=ci,
            connected=connected,
            auth_required=sup.auth.enforced,
            auth_digest=digest,
            pending=pending,
            host=self.host,
            port=self.port,
            start=time.time(),
            expires=ok.expires if ok else None,
            max_subscriptions=ok.max_subscriptions if ok else -1,
            max_payload=ok.max_payload if ok else -1,
            is_system=ok.is_system if ok else False,
        )
        if self.tls is None:
            sup.hand_off(h, self.sock, jwt)
            return
        # TLS: the worker gets one end of a socketpair; we relay plaintext.
        conn = self.tls
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        ours.setblocking(False)
        h = msgspec.structs.replace(h, tls=True, tls_version=conn.tls_version, tls_cipher=conn.cipher)
        if not sup.hand_off(h, theirs, jwt):
            ours.close()
            conn.close()
            return
        self.loop.create_task(conn.start_relay(ours))

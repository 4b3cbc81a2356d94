"""The supervisor process: listener, authentication, workers, signals.

Theory of operation
-------------------
The supervisor is the only process that holds secrets (passwords, TLS keys,
JWT trust). It binds the client listener, spawns the workers through the
:class:`Arbiter`, accepts connections and runs each one's pre-auth phase
(:mod:`supervisor.acceptor`), then passes the authenticated socket to the
worker that owns the client's account.

Signal handlers only enqueue; :meth:`Supervisor.run` takes them off the
queue one at a time (SIGTERM/SIGINT stop, SIGHUP reload, SIGUSR1 reopen the
log, SIGUSR2 lame duck), so no handler ever runs inside another's state
change (gunicorn's lesson).

Shutdown: stop accepting, tell workers to close their clients (they flush
what is queued), wait for them, exit 0.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any

import msgspec

from natsd import __version__
from natsd import log as natslog
from natsd.auth.authenticate import AuthConfig
from natsd.auth.operator import OperatorConfigError
from natsd.auth.sysreq import is_claims_request
from natsd.config.schema import Account, Options, Permissions
from natsd.ipc import messages as M
from natsd.ipc.ring import create_ring_spec
from supervisor.acceptor import Handshake
from supervisor.arbiter import Arbiter, HaltServer, WorkerSlot
from supervisor.info import COMPAT_VERSION, base_info, new_server_id
from supervisor.monitor import MonitorServer, Snapshots
from supervisor.operator import OperatorMode, build_authenticator
from supervisor.sharding import worker_for
from supervisor.sysapi import SysApi
from supervisor.tls import TLSConfigError, TLSConn, build_server_context

log = logging.getLogger("natsd")

RING_SIZE = 1 << 20  # bytes per direction per worker pair


@dataclass
class ClientEntry:
    """What the supervisor remembers of a handed-off client (no secrets)."""

    worker: int
    account: str
    user: str | None
    permissions: Permissions | None
    jwt: str | None = None  # operator mode: re-evaluated on account updates
    expires: float | None = None  # credentials' expiry (unix time), for USER.INFO
    host: str = ""
    start: float = 0.0
    connect: M.ConnectInfo | None = None  # name, lang, version for events


class Supervisor:
    def __init__(self, opts: Options, loop: asyncio.AbstractEventLoop, argv: list[str] | None = None) -> None:
        self.opts = opts
        self.loop = loop
        self.argv = argv or []
        self.server_id = new_server_id()
        self.auth = AuthConfig.from_options(opts)
        self.operator: OperatorMode | None = None
        authn = build_authenticator(opts)
        if authn is not None:
            self.auth = self.auth.with_jwt_verifier(authn)
            self.operator = OperatorMode(self, authn)
        self.workers = opts.workers or os.cpu_count() or 1
        self.cids = itertools.count(1)
        self.signals: asyncio.Queue[str] = asyncio.Queue()
        self.listener: socket.socket | None = None
        self.port = opts.port
        self.info: dict[str, Any] = {}
        self.start_time = time.time()
        self.stats_auth_failures = 0
        self.total_connections = 0
        self.account_conns: dict[str, int] = {}
        self.clients: dict[int, ClientEntry] = {}
        self.halted: HaltServer | None = None
        self.lame_duck = False
        self._handshakes: set[asyncio.Task[None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()  # background jobs, cancelled at shutdown
        self.monitor: MonitorServer | None = None
        self.https_monitor: MonitorServer | None = None
        self.snapshots = Snapshots(self)  # monitoring data, shared by HTTP and $SYS.REQ
        self.sysapi = SysApi(self)
        self.relays: set[TLSConn] = set()
        self.tls_ctx = None
        if opts.tls is not None:
            try:
                self.tls_ctx = build_server_context(opts.tls, warn=log.warning)
            except (OSError, ssl.SSLError) as e:
                raise TLSConfigError(f"cannot load certificates: {e}") from e
        self.config_load_time = time.time()
        self._stats_seq = 0
        self._stats_waiting: dict[int, dict[int, asyncio.Future[M.Stats]]] = {}
        self._stats_parts: dict[tuple[int, int], list[M.Stats]] = {}
        self.arbiter = Arbiter(loop, self.workers, self._worker_config, self._worker_message, self._halt)
        self.ring_size = RING_SIZE
        if self.workers > 1:
            self.arbiter.on_spawn = self._wire_rings

    # -- configuration ---------------------------------------------------
    @property
    def auth_timeout(self) -> float:
        t = self.opts.authorization.timeout
        if t is not None:
            return t
        if self.opts.tls is not None:
            return self.opts.tls.timeout + 1.0
        return 2.0

    def _worker_config(self, index: int) -> M.WorkerConfig:
        o = self.opts
        return M.WorkerConfig(
            worker_id=index,
            server_id=self.server_id,
            server_name=o.server_name or self.server_id,
            version=COMPAT_VERSION,
            natsd_version=__version__,
            host=o.host,
            port=self.port,
            max_payload=o.max_payload,
            max_control_line=o.max_control_line,
            max_pending=o.max_pending,
            max_subscriptions=o.max_subscriptions,
            max_sub_tokens=o.max_sub_tokens,
            ping_interval=o.ping_interval,
            ping_max=o.ping_max,
            write_deadline=o.write_deadline,
            headers=not o.no_header_support,
            system_account=o.system_account,
            debug=o.debug,
            trace=o.trace,
            logtime=o.logtime,
            log_file=o.log_file,
            syslog=o.syslog,
            remote_syslog=o.remote_syslog,
            lame_duck_duration=o.lame_duck_duration,
            lame_duck_grace_period=o.lame_duck_grace_period,
            info=self.info,
            workers=self.workers,
            accounts=self.account_routes(),
        )

    def account_routes(self) -> tuple[Account, ...]:
        """Every account's exports and imports, without users (no secrets)."""
        routes = tuple(msgspec.structs.replace(a, users=()) for a in self.opts.accounts)
        if self.operator is not None:
            routes += tuple(self.operator.routes.values())
        return routes

    def broadcast_accounts(self) -> None:
        self.arbiter.broadcast(M.UpdateAccounts(accounts=self.account_routes()))

    # -- rings between workers -------------------------------------------
    def _wire_rings(self, index: int) -> None:
        """Create fresh rings between worker ``index`` and every live peer,
        one per direction, and hand each end to its worker."""
        for peer in self.arbiter.slots:
            if peer.index == index or peer.channel is None:
                continue
            self._ring(index, peer.index)
            self._ring(peer.index, index)

    def _ring(self, src: int, dst: int) -> None:
        spec, fd_a, fd_b = create_ring_spec(f"w{src}-w{dst}", self.ring_size)
        blob = msgspec.msgpack.encode(spec)
        dup_a, dup_b = os.dup(fd_a), os.dup(fd_b)
        self.arbiter.send(src, M.RingAttach(peer=dst, role="producer", spec=blob), [fd_a, fd_b])
        self.arbiter.send(dst, M.RingAttach(peer=src, role="consumer", spec=blob), [dup_a, dup_b])
        log.debug("ring %s: %d bytes, worker %d -> worker %d", spec.name, spec.size, src, dst)

    # -- listener --------------------------------------------------------
    def _bind(self) -> None:
        host = self.opts.host
        port = 0 if self.opts.port == -1 else self.opts.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(1024)
        s.setblocking(False)
        self.listener = s
        self.port = s.getsockname()[1]
        self.info = base_info(self.opts, self.server_id, auth_required=self.auth.auth_required, port=self.port)

    def _on_accept(self) -> None:
        assert self.listener is not None
        for _ in range(128):
            try:
                sock, addr = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                # EMFILE and friends: log and keep serving the ones we have.
                log.error("accept error: %s", e)
                return
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            self.total_connections += 1
            task = self.loop.create_task(Handshake(self, sock, addr, next(self.cids)).run())
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    # -- hand-off --------------------------------------------------------
    def active_connections(self) -> int:
        return len(self.clients) + len(self._handshakes) - 1

    def account_connected(self, account: str) -> None:
        self.account_conns[account] = self.account_conns.get(account, 0) + 1

    def system_account_name(self) -> str | None:
        if self.operator is not None:
            return self.operator.system_account
        return None if self.opts.no_system_account else self.opts.system_account

    def name_tags(self, account: str, user_jwt: str | None) -> tuple[str, str]:
        """(account name, user name) as nats-server reports them: the JWTs'
        ``name`` claims in operator mode, the account's name otherwise."""
        if self.operator is None:
            return account, ""
        return self.operator.name_tags(account, user_jwt)

    def account_conn_limit(self, account: str) -> int:
        """The account's connection limit (-1 = unlimited; 0 admits nobody)."""
        if self.operator is not None:
            return self.operator.authn.max_connections(account)
        for acc in self.opts.accounts:
            if acc.name == account:
                return acc.max_connections
        return -1

    def publish(self, account: str, subject: bytes, payload: bytes, reply: bytes | None = None) -> None:
        """Deliver a server-originated message inside ``account``."""
        index = worker_for(account, self.workers)
        self.arbiter.send(index, M.Publish(account=account, subject=subject, reply=reply, payload=payload))

    def hand_off(self, h: M.HandOff, sock: socket.socket, jwt: str | None = None) -> bool:
        index = worker_for(h.account, self.workers)
        fd = sock.detach()
        if not self.arbiter.send(index, h, fd):
            log.error("cid:%d - worker %d unavailable; closing client", h.client_id, index)
            self._client_gone(h.client_id)
            return False
        entry = ClientEntry(index, h.account, h.user, h.permissions, jwt, h.expires, h.host, h.start, h.connect)
        self.clients[h.client_id] = entry
        self.sysapi.client_event(h.client_id, entry)
        self.arbiter.slots[index].clients.add(h.client_id)
        log.debug("cid:%d - handed to worker %d (account %s)", h.client_id, index, h.account)
        return True

    def track_relay(self, conn: TLSConn) -> None:
        """Keep a TLS relay alive (and counted) until both of its sides close."""
        self.relays.add(conn)
        conn.closed.add_done_callback(lambda _: self.relays.discard(conn))

    def _client_gone(self, cid: int) -> None:
        entry = self.clients.pop(cid, None)
        if entry is not None:
            acc = entry.account
            n = self.account_conns.get(acc, 0) - 1
            if n > 0:
                self.account_conns[acc] = n
            else:
                self.account_conns.pop(acc, None)

    async def gather_stats(self, timeout: float = 2.0) -> list[M.Stats]:
        """Ask every live worker for its counters; workers that do not answer
        within ``timeout`` are left out (monitoring never blocks traffic)."""
        self._stats_seq += 1
        rid = self._stats_seq
        waiting: dict[int, asyncio.Future[M.Stats]] = {}
        for slot in self.arbiter.slots:
            fut: asyncio.Future[M.Stats] = self.loop.create_future()
            if self.arbiter.send(slot.index, M.StatsRequest(request_id=rid)):
                waiting[slot.index] = fut
        self._stats_waiting[rid] = waiting
        try:
            if waiting:
                await asyncio.wait(list(waiting.values()), timeout=timeout)
        finally:
            self._stats_waiting.pop(rid, None)
            for key in [k for k in self._stats_parts if k[0] == rid]:
                del self._stats_parts[key]
        return [f.result() for f in waiting.values() if f.done() and not f.cancelled()]

    def _worker_message(self, slot: WorkerSlot, msg: M.WorkerToSupervisor) -> None:
        if isinstance(msg, M.Stats):
            fut = self._stats_waiting.get(msg.request_id, {}).get(slot.index)
            if fut is None or fut.done():
                return
            key = (msg.request_id, slot.index)
            got = self._stats_parts.setdefault(key, [])
            got.append(msg)
            if len(got) >= msg.parts:
                del self._stats_parts[key]
                got.sort(key=lambda m: m.part)
                conns = [c for m in got for c in m.connections]
                closed = [c for m in got for c in m.closed_conns]
                fut.set_result(msgspec.structs.replace(got[0], connections=conns, closed_conns=closed, part=0, parts=1))
        elif isinstance(msg, M.ClientClosed):
            entry = self.clients.get(msg.client_id)
            if entry is not None:
                self.sysapi.client_event(msg.client_id, entry, msg)
            self._client_gone(msg.client_id)
        elif isinstance(msg, M.SysRequest):
            if self.operator is not None and is_claims_request(msg.subject):
                self.operator.handle(msg)
            else:
                self.sysapi.handle(msg)
        elif isinstance(msg, M.Ready):
            log.debug("worker %d ready (pid %d)", msg.worker_id, msg.pid)
            self._forget_dead_clients()

    def _forget_dead_clients(self) -> None:
        live = set()
        for slot in self.arbiter.slots:
            live |= slot.clients
        for cid in [c for c in self.clients if c not in live]:
            self._client_gone(cid)

    def _halt(self, h: HaltServer) -> None:
        self.halted = h
        self.signals.put_nowait("halt")

    # -- signals ---------------------------------------------------------
    def _install_signals(self) -> None:
        names = {
            signal.SIGTERM: "term",
            signal.SIGINT: "int",
            signal.SIGHUP: "hup",
            signal.SIGUSR1: "usr1",
            signal.SIGUSR2: "usr2",
        }
        for sig, name in names.items():
            self.loop.add_signal_handler(sig, self.signals.put_nowait, name)

    async def run(self) -> int:
        o = self.opts
        log.info("Starting natsd (nats-server compatible %s)", COMPAT_VERSION)
        log.info("  Version:  %s", __version__)
        log.info("  Workers:  %d", self.workers)
        log.info("  Name:     %s", o.server_name or self.server_id)
        log.info("  ID:       %s", self.server_id)
        if o.config_file:
            log.info("Using configuration file: %s", o.config_file)
        self._bind()
        self.arbiter.start()
        self._install_signals()
        assert self.listener is not None
        if o.pid_file:
            with open(o.pid_file, "w") as f:
                f.write(str(os.getpid()))
        try:
            await self._start_monitoring()
        except OSError as e:
            log.critical("Can't start monitoring: can't listen to the monitor port: %s", e.strerror or e)
            await self.shutdown()
            return 1
        # Monitoring is up before the first client is accepted (as in
        # nats-server), so whoever sees INFO can also reach /healthz.
        self.loop.add_reader(self.listener.fileno(), self._on_accept)
        log.info("Listening for client connections on %s:%d", o.host, self.port)
        if self.operator is not None and o.resolver is not None and o.resolver.type == "full":
            self._tasks.add(self.loop.create_task(self.operator.watch_dir(max(o.resolver.interval, 0.5))))
        log.info("Server is ready")
        code = 0
        while True:
            sig = await self.signals.get()
            if sig in ("term", "int"):
                log.info("Trapped %s signal", "SIGTERM" if sig == "term" else "SIGINT")
                break
            if sig == "halt":
                assert self.halted is not None
                log.critical("%s", self.halted.reason)
                code = self.halted.exit_code
                break
            if sig == "hup":
                self.reload()
            elif sig == "usr1":
                natslog.reopen()
                log.info("Reopened log file")
            elif sig == "usr2":
                await self.enter_lame_duck()
                break
        await self.shutdown()
        return code

    async def _start_monitoring(self) -> None:
        o = self.opts
        if o.http_port:
            self.monitor = MonitorServer(self, snapshots=self.snapshots)
            mport = await self.monitor.start(o.http_host, o.http_port)
            log.info("Starting http monitor on %s:%d", o.http_host, mport)
        if o.https_port:
            if o.tls is None:
                log.error("https monitoring requires a tls {} block; not started")
                return
            # Client-certificate settings do not apply to monitoring.
            mctx = build_server_context(msgspec.structs.replace(o.tls, verify=False, verify_and_map=False))
            self.https_monitor = MonitorServer(self, snapshots=self.snapshots)
            hport = await self.https_monitor.start(o.http_host, o.https_port, ssl_ctx=mctx)
            log.info("Starting https monitor on %s:%d", o.http_host, hport)

    def reload(self) -> None:
        from supervisor.reload import apply_reload

        if apply_reload(self):
            self.config_load_time = time.time()

    async def enter_lame_duck(self) -> None:
        o = self.opts
        log.info("Entering lame duck mode, stop accepting new clients")
        self.lame_duck = True
        self._stop_accepting()
        self.sysapi.server_event("LAMEDUCK")
        info = dict(self.info)
        info["ldm"] = True
        self.arbiter.broadcast(M.LameDuck(duration=o.lame_duck_duration, grace=o.lame_duck_grace_period, info=info))
        deadline = time.monotonic() + o.lame_duck_duration + 1.0
        while self.clients and time.monotonic() < deadline:
            try:
                sig = await asyncio.wait_for(self.signals.get(), 0.1)
            except TimeoutError:
                continue
            if sig in ("term", "int"):
                break

    def _stop_accepting(self) -> None:
        if self.listener is not None:
            try:
                self.loop.remove_reader(self.listener.fileno())
            except (ValueError, RuntimeError):
                pass
            self.listener.close()
            self.listener = None

    async def shutdown(self) -> None:
        self._stop_accepting()
        # Ahead of the workers' Shutdown on the same ordered channel, so the
        # system account's subscribers get it before their connections close.
        self.sysapi.server_event("SHUTDOWN")
        for m in (self.monitor, self.https_monitor):
            if m is not None:
                m.close()
        self.sysapi.close()
        self.snapshots.close()
        for t in list(self._handshakes) + list(self._tasks):
            t.cancel()
        await self.arbiter.stop()
        if self.opts.pid_file:
            try:
                os.unlink(self.opts.pid_file)
            except OSError:
                pass
        log.info("Server Exiting..")


def run(opts: Options, argv: list[str] | None = None) -> int:
    import uvloop

    try:
        natslog.configure(opts)
    except OSError as e:
        natslog.setup(logtime=opts.logtime)
        if opts.log_file:  # nats-server's wording for each
            log.critical("error opening file: %s", e)
        else:
            log.critical("error connecting to syslog: %s", e.strerror or e)
        return 1

    async def amain() -> int:
        try:
            sup = Supervisor(opts, asyncio.get_running_loop(), argv)
        except OperatorConfigError as e:
            log.critical("operator configuration error: %s", e)
            return 1
        except TLSConfigError as e:
            log.critical("TLS configuration error: %s", e)
            return 1
        return await sup.run()

    try:
        return uvloop.run(amain())
    except OSError as e:
        log.critical("Error listening on port: %s:%d, %s", opts.host, opts.port, e.strerror or e)
        return 1

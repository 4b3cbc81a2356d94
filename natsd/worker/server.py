"""A worker process: owns the accounts the supervisor assigns to it.

Theory of operation
-------------------
The worker is started by the supervisor with one end of a SEQPACKET control
channel (``--control-fd``). The first message is :class:`Hello` with the
secret-free :class:`WorkerConfig`; the worker answers :class:`Ready` and
from then on adopts every :class:`HandOff` it receives: the attached fd is
wrapped in a socket and given to ``loop.connect_accepted_socket`` with a
:class:`Client` protocol. Accounts are created on first use, so accounts
that appear at runtime (JWT resolvers) need no restart.

``dirty`` collects the clients whose outbound buffer grew while handling one
read; :meth:`flush` writes each of them once. That keeps the cost at one
``transport.write`` per connection per read batch, whatever the fan-out.

If the control channel closes (the supervisor died), the worker closes every
client and exits: a worker never outlives its supervisor.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import socket
import time

import msgspec

from natsd import log as natslog
from natsd.auth.sysreq import is_claims_request
from natsd.config.schema import Account as Account_
from natsd.ipc import messages as M
from natsd.ipc.channel import Channel, ChannelClosed, ChannelFull, MessageTooLarge, _close_all
from natsd.ipc.ring import (
    AnyConsumer,
    AnyProducer,
    Producer,
    RingSpec,
    open_consumer,
    open_producer,
)
from natsd.proto.errors import ClosedReason
from natsd.worker.account import Account
from natsd.worker.client import Client
from natsd.worker.router import Router

MAX_API_OPTIONS = 64 * 1024  # bytes of a monitoring request's JSON options forwarded

log = logging.getLogger("natsd.worker")

EXIT_BOOT_ERROR = 3
_stats_enc = msgspec.msgpack.Encoder()


class Worker:
    def __init__(self, control: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Set by Hello, before any hand-off can be adopted.
        self.config: M.WorkerConfig = None  # type: ignore[assignment]
        self.server_id = ""  # $SYS.REQ.SERVER.<id>.<EP> is ours only with this id
        self.up_dropped = 0  # messages to the supervisor that could not be sent
        self.api_limited = 0  # $SYS.REQ requests over an account's rate
        self._up_drop_log = natslog.Throttle()
        self.accounts: dict[str, Account] = {}
        self.clients: dict[int, Client] = {}
        self.dirty: list[Client] = []
        self.slow_consumers = 0
        self.closed_count = 0
        self.done: asyncio.Future[int] = loop.create_future()
        self.lame_duck = False
        self.router: Router = None  # type: ignore[assignment]  # set by Hello
        self.producers: dict[int, AnyProducer] = {}
        self.consumers: dict[int, AnyConsumer] = {}
        self.ring_dirty: set[int] = set()
        # traffic of closed connections: in msgs, out msgs, in bytes, out bytes
        self.gone = [0, 0, 0, 0]
        self.closed_conns: collections.deque[M.ConnStats] = collections.deque(maxlen=M.CLOSED_CONNS_KEPT)
        self._last_drop_log = 0.0
        self.channel = Channel(control, loop, self._on_message, self._on_control_closed, "supervisor")

    # -- control channel -------------------------------------------------
    def _on_message(self, data: bytes, fds: list[int]) -> None:
        try:
            msg = M.decode_for_worker(data)
        except Exception as e:  # a malformed control message is a bug: log it loudly
            log.error("undecodable control message: %s", e)
            _close_all(fds)
            return
        if isinstance(msg, M.HandOff):
            if len(fds) != 1:
                log.error("hand-off for cid %d arrived with %d descriptors", msg.client_id, len(fds))
                _close_all(fds)
                return
            self._adopt(msg, fds[0])
            return
        if isinstance(msg, M.RingAttach):
            self._attach_ring(msg, fds)
            return
        _close_all(fds)
        if isinstance(msg, M.Hello):
            self._hello(msg)
        elif isinstance(msg, M.Shutdown):
            self.shutdown()
        elif isinstance(msg, M.StatsRequest):
            self._send_up(*self.stats_parts(msg.request_id))
        elif isinstance(msg, M.LameDuck):
            self._lame_duck(msg)
        elif isinstance(msg, M.Disconnect):
            self._disconnect(msg)
        elif isinstance(msg, M.UpdatePermissions):
            self._update_permissions(msg)
        elif isinstance(msg, M.UpdateAccounts):
            self._update_accounts(msg.accounts)
        elif isinstance(msg, M.Publish):
            acc = self.accounts.get(msg.account)
            if acc is not None:
                acc.route(None, msg.subject, msg.reply, -1, msg.payload)
                self.flush()

    def _hello(self, msg: M.Hello) -> None:
        if msg.protocol_version != M.PROTOCOL_VERSION:
            log.error("control protocol %d, expected %d", msg.protocol_version, M.PROTOCOL_VERSION)
            self.done.set_result(EXIT_BOOT_ERROR) if not self.done.done() else None
            return
        cfg = msg.config
        self.config = cfg
        self.server_id = str(cfg.info.get("server_id", ""))
        try:
            natslog.configure(cfg)
        except OSError as e:
            # The supervisor opened the same destination a moment ago; keep
            # serving and say where this worker's lines went instead.
            natslog.setup(debug=cfg.debug, trace=cfg.trace, logtime=cfg.logtime)
            log.error("worker %d: cannot open the log destination (%s); logging to stderr", cfg.worker_id, e)
        self.router = Router(cfg.worker_id, cfg.workers, self._ring_send)
        self.router.accounts_of = self.account
        self.router.configure(cfg.accounts)
        self._expiry_tick()
        self.channel.send(M.encode(M.Ready(worker_id=cfg.worker_id, pid=os.getpid())))
        log.debug("worker %d ready", cfg.worker_id)

    def _on_control_closed(self) -> None:
        if not self.done.done():
            self.shutdown()

    # -- clients ---------------------------------------------------------
    def _adopt(self, h: M.HandOff, fd: int) -> None:
        # Every way out that does not adopt the client tells the supervisor,
        # which counts it against the server's and the account's limits.
        refused = M.ClientClosed(client_id=h.client_id, account=h.account, reason=ClosedReason.ServerShutdown.text)
        try:
            sock = socket.socket(fileno=fd)
        except OSError as e:
            os.close(fd)
            log.error("cid:%d - cannot adopt socket: %s", h.client_id, e)
            self._send_up(refused)
            return
        if self.config is None or self.lame_duck:
            sock.close()
            self._send_up(refused)
            return
        acc = self.account(h.account)
        try:
            client = Client(self, h, acc)
        except Exception:
            # A hand-off record this worker cannot act on is a bug upstream
            # (the supervisor validates what it authenticates); the client
            # goes, the worker stays.
            log.exception("cid:%d - cannot adopt client", h.client_id)
            sock.close()
            self._send_up(msgspec.structs.replace(refused, reason=ClosedReason.ProtocolViolation.text))
            return
        self.clients[client.cid] = client
        acc.clients[client.cid] = client
        self.loop.create_task(self._connect(client, sock))

    async def _connect(self, client: Client, sock: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(lambda: client, sock)
        except OSError as e:
            log.debug("cid:%d - adoption failed: %s", client.cid, e)
            sock.close()
            if not client.closed:
                client._teardown(ClosedReason.ReadError)

    def account(self, name: str) -> Account:
        """The account object, created on first use (accounts appear at runtime)."""
        acc = self.accounts.get(name)
        if acc is None:
            acc = self.accounts[name] = Account(name, self.router)
        return acc

    def _update_accounts(self, accounts: tuple[Account_, ...]) -> None:
        """New export/import tables: drop the interest the old ones implied,
        then re-derive it for every live subscription."""
        held = [(c, s) for c in self.clients.values() for s in c.subs.values() if s.interest]
        for _, sub in held:
            self.router.unsubscribe(sub.interest or [])
            sub.interest = None
        self.router.configure(accounts)
        for a in self.accounts.values():
            a.stream_imports = self.router.has_stream_imports(a.name)
            a.service_imports = self.router.has_service_imports(a.name)
            a.exports_services = self.router.exports_services(a.name)
        for c in self.clients.values():
            if c.account.stream_imports:
                for sub in c.subs.values():
                    sub.interest = self.router.subscribe(c.account.name, sub)
        self.flush()

    def _expiry_tick(self) -> None:
        if self.done.done():
            return
        self.router.expire()
        self.loop.call_later(1.0, self._expiry_tick)

    # -- rings to peer workers -------------------------------------------
    def _attach_ring(self, msg: M.RingAttach, fds: list[int]) -> None:
        if len(fds) != 2:
            log.error("ring attach for peer %d with %d descriptors", msg.peer, len(fds))
            _close_all(fds)
            return
        try:
            spec = msgspec.msgpack.decode(msg.spec, type=RingSpec)
        except msgspec.DecodeError as e:
            log.error("ring attach for peer %d: bad spec: %s", msg.peer, e)
            _close_all(fds)
            return
        if msg.role == "producer":
            old = self.producers.pop(msg.peer, None)
            if old is not None:
                old.close()
            self.producers[msg.peer] = open_producer(fds[0], fds[1], spec, on_drop=self._ring_dropped)
            # The peer is new (or restarted): tell it what we subscribe to.
            self.router.resend_interest(msg.peer)
            self.ring_dirty.add(msg.peer)
        else:
            old_c = self.consumers.pop(msg.peer, None)
            if old_c is not None:
                self.loop.remove_reader(old_c.fileno())
                old_c.close()
                self.router.forget_peer(msg.peer)
            consumer = open_consumer(fds[0], fds[1], spec)
            self.consumers[msg.peer] = consumer
            self.loop.add_reader(consumer.fileno(), self._drain_ring, msg.peer)
        # The ring ends own the descriptors from here on (the memfd is closed
        # once mapped, the eventfd when the end closes).
        self.flush()

    def _ring_dropped(self, records: int, nbytes: int) -> None:
        """A ring to a peer was full (or a record too large): counted, and
        logged at most once a second; the event loop never waits for room."""
        self.router.counters["dropped"] += records
        now = time.monotonic()
        if now - self._last_drop_log >= 1.0:
            self._last_drop_log = now
            log.warning("ring full: %d record(s), %d bytes dropped", records, nbytes)

    def _ring_send(self, peer: int, kind: int, payload: bytes) -> bool:
        prod = self.producers.get(peer)
        if prod is None:
            # The peer is down (or not attached yet): nothing to queue into.
            self.router.counters["dropped"] += 1
            return False
        ok = prod.stage(kind, payload)
        self.ring_dirty.add(peer)
        return ok

    def _drain_ring(self, peer: int) -> None:
        consumer = self.consumers.get(peer)
        if consumer is None:
            return
        receive = self.router.receive
        for kind, payload in consumer.drain():
            receive(kind, bytes(payload))
        self.flush()

    def client_closed(self, client: Client, reason: ClosedReason) -> None:
        self.clients.pop(client.cid, None)
        g = self.gone
        g[0] += client.in_msgs
        g[1] += client.out_msgs
        g[2] += client.in_bytes
        g[3] += client.out_bytes
        acc = client.account
        acc.clients.pop(client.cid, None)
        self.closed_count += 1
        log.debug("cid:%d - client closed: %s", client.cid, reason.text)
        if not self.channel.closed:
            self._send_up(
                M.ClientClosed(
                    client_id=client.cid,
                    account=acc.name,
                    reason=reason.text,
                    in_msgs=client.in_msgs,
                    in_bytes=client.in_bytes,
                    out_msgs=client.out_msgs,
                    out_bytes=client.out_bytes,
                    rtt=client.rtt,
                )
            )
        if not acc.clients and acc.sublist.count() == 0:
            self.accounts.pop(acc.name, None)

    def forward_system_request(self, client: Client, subject: bytes, reply: bytes | None, payload: bytes) -> bool:
        """Hand a ``$SYS.REQ`` request to the supervisor; False (no responder)
        when a non-system account is over its request rate."""
        if not client.is_system and not client.account.take_api_token(time.monotonic()):
            self.api_limited += 1
            return False
        if len(payload) > MAX_API_OPTIONS and not is_claims_request(subject):
            # Monitoring options are a few bytes of JSON; what is cut here
            # fails to decode and the requester gets a 400.
            payload = payload[:MAX_API_OPTIONS]
        req = M.SysRequest(account=client.account.name, subject=subject, reply=reply, payload=payload, client_id=client.cid)
        self._send_up(req)
        return True

    def _send_up(self, *msgs: M._Msg) -> None:
        """Send to the supervisor; a message that cannot go is counted and
        logged (at most once a second, so a tenant flooding ``$SYS.REQ``
        cannot flood the log), never fatal to the worker or to the client
        that caused it."""
        for msg in msgs:
            try:
                self.channel.send(M.encode(msg))
            except (ChannelClosed, ChannelFull, MessageTooLarge) as e:
                self.up_dropped += 1
                if self._up_drop_log.ready():
                    log.warning("message to the supervisor dropped: %r (%d dropped so far)", e, self.up_dropped)

    def flush(self, producer: Client | None = None) -> None:
        """Write every touched connection once; if one of them is over its
        high-water mark, pause the ``producer`` whose read caused it."""
        dirty = self.dirty
        if dirty:
            self.dirty = []
            for c in dirty:
                c.flush()
                if c.blocked and producer is not None and producer is not c and not c.closed:
                    producer.stall_on(c)
        if self.ring_dirty:
            peers, self.ring_dirty = self.ring_dirty, set()
            for peer in peers:
                prod = self.producers.get(peer)
                if prod is not None:
                    prod.publish()
                    # Back-pressure across workers: a publisher filling a
                    # ring past half waits for the peer to drain it.
                    # (shm rings only: a socket ring cannot tell how full it is)
                    if producer is not None and isinstance(prod, Producer) and prod.free() < prod.size // 2:
                        producer.stall_on_ring(prod)

    # -- supervisor requests ---------------------------------------------
    def stats_parts(self, request_id: int) -> list[M.Stats]:
        """The stats split into datagram-sized parts: open and closed
        connections are packed until a part's encoded size would pass
        ``STATS_PART_BYTES``; totals, accounts and rings travel in the first."""
        full = self.stats(request_id)
        items = [(False, c) for c in full.connections] + [(True, c) for c in full.closed_conns]
        chunks: list[list[tuple[bool, M.ConnStats]]] = [[]]
        size = len(M.encode(msgspec.structs.replace(full, connections=[], closed_conns=[])))
        for item in items:
            n = len(_stats_enc.encode(item[1]))
            if chunks[-1] and size + n > M.STATS_PART_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append(item)
            size += n
        parts = []
        for i, chunk in enumerate(chunks):
            base = full if i == 0 else msgspec.structs.replace(full, account_stats=[], rings=[], router={})
            parts.append(
                msgspec.structs.replace(
                    base,
                    connections=[c for closed, c in chunk if not closed],
                    closed_conns=[c for closed, c in chunk if closed],
                    part=i,
                    parts=len(chunks),
                )
            )
        return parts

    def stats(self, request_id: int) -> M.Stats:
        conns = []
        in_msgs = out_msgs = in_bytes = out_bytes = subs = 0
        for c in self.clients.values():
            in_msgs += c.in_msgs
            out_msgs += c.out_msgs
            in_bytes += c.in_bytes
            out_bytes += c.out_bytes
            subs += len(c.subs)
            conns.append(c.snapshot())
        assert self.config is not None
        return M.Stats(
            request_id=request_id,
            worker_id=self.config.worker_id,
            pid=os.getpid(),
            accounts=sorted(self.accounts),
            in_msgs=in_msgs,
            out_msgs=out_msgs,
            in_bytes=in_bytes,
            out_bytes=out_bytes,
            slow_consumers=self.slow_consumers,
            subscriptions=subs,
            connections=conns,
            closed=self.closed_count,
            # With the worker's own drop counters (docs/operations.md).
            router={**self.router.stats(), "api_limited": self.api_limited, "control_dropped": self.up_dropped},
            account_stats=[self._account_stats(a) for a in self.accounts.values()],
            total_in_msgs=self.gone[0] + in_msgs,
            total_out_msgs=self.gone[1] + out_msgs,
            total_in_bytes=self.gone[2] + in_bytes,
            total_out_bytes=self.gone[3] + out_bytes,
            closed_conns=list(self.closed_conns),
            rings=[p.stats() for p in self.producers.values()] + [c.stats() for c in self.consumers.values()],
        )

    @staticmethod
    def _account_stats(a: Account) -> M.AccountStats:
        st = a.sublist.stats()
        real = sum(1 for sub in a.sublist.all_subs() if sub.client is not None)
        return M.AccountStats(
            name=a.name,
            conns=len(a.clients),
            in_msgs=a.in_msgs,
            in_bytes=a.in_bytes,
            out_msgs=a.out_msgs,
            out_bytes=a.out_bytes,
            num_subscriptions=real,
            num_cache=int(st.get("num_cache", 0)),
            num_inserts=int(st.get("num_inserts", 0)),
            num_removes=int(st.get("num_removes", 0)),
            num_matches=int(st.get("num_matches", 0)),
            cache_hit_rate=float(st.get("cache_hit_rate", 0.0)),
            max_fanout=int(st.get("max_fanout", 0)),
            avg_fanout=float(st.get("avg_fanout", 0.0)),
        )

    def _disconnect(self, msg: M.Disconnect) -> None:
        err = f"-ERR '{msg.error}'\r\n".encode() if msg.error else None
        for c in list(self.clients.values()):
            if msg.client_id is not None and c.cid != msg.client_id:
                continue
            if msg.account is not None and c.account.name != msg.account:
                continue
            if msg.user is not None and c.user != msg.user:
                continue
            c.close(ClosedReason.AuthenticationViolation, err)
        self.flush()

    def _update_permissions(self, msg: M.UpdatePermissions) -> None:
        from natsd.auth.permissions import CompiledPermissions

        for c in self.clients.values():
            if msg.client_id is not None and c.cid != msg.client_id:
                continue
            if c.account.name == msg.account and c.user == msg.user:
                c.apply_permissions(CompiledPermissions.build(msg.permissions))
        self.flush()

    def _lame_duck(self, msg: M.LameDuck) -> None:
        self.lame_duck = True
        for c in self.clients.values():
            c.send_info(msg.info)
        self.flush()
        self.loop.create_task(self._drain_gradually(msg.duration, msg.grace))

    async def _drain_gradually(self, duration: float, grace: float) -> None:
        await asyncio.sleep(grace)
        clients = list(self.clients.values())
        if not clients:
            return
        step = max(duration - grace, 0.0) / len(clients)
        for c in clients:
            c.close(ClosedReason.ServerShutdown)
            if step:
                await asyncio.sleep(step)

    def shutdown(self) -> None:
        for c in list(self.clients.values()):
            c.close(ClosedReason.ServerShutdown)
        if not self.done.done():
            self.done.set_result(0)


async def _amain(control_fd: int) -> int:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET, fileno=control_fd)
    worker = Worker(sock, loop)
    code = await worker.done
    # Let closing transports flush their last bytes.
    await asyncio.sleep(0.05)
    return code


def main(argv: list[str]) -> int:
    import uvloop

    fd = -1
    for i, a in enumerate(argv):
        if a == "--control-fd" and i + 1 < len(argv):
            fd = int(argv[i + 1])
    if fd < 0:
        print("natsd worker: --control-fd is required (workers are started by the supervisor)")
        return 2
    # The supervisor coordinates shutdown; a terminal's Ctrl-C must not kill
    # workers out from under it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    natslog.setup()
    started = time.time()
    try:
        return uvloop.run(_amain(fd))
    except Exception:
        log.exception("worker crashed after %.1fs", time.time() - started)
        return 1

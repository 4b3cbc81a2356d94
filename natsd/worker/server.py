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
import logging
import os
import signal
import socket
import time

from natsd import log as natslog
from natsd.ipc import messages as M
from natsd.ipc.channel import Channel
from natsd.proto.errors import ClosedReason
from natsd.worker.account import Account
from natsd.worker.client import Client

log = logging.getLogger("natsd.worker")

EXIT_BOOT_ERROR = 3


class Worker:
    def __init__(self, control: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # Set by Hello, before any hand-off can be adopted.
        self.config: M.WorkerConfig = None  # type: ignore[assignment]
        self.accounts: dict[str, Account] = {}
        self.clients: dict[int, Client] = {}
        self.dirty: list[Client] = []
        self.slow_consumers = 0
        self.closed_count = 0
        self.done: asyncio.Future[int] = loop.create_future()
        self.lame_duck = False
        self.channel = Channel(control, loop, self._on_message, self._on_control_closed, "supervisor")

    # -- control channel -------------------------------------------------
    def _on_message(self, data: bytes, fd: int | None) -> None:
        try:
            msg = M.decode_for_worker(data)
        except Exception as e:  # a malformed control message is a bug: log it loudly
            log.error("undecodable control message: %s", e)
            if fd is not None:
                os.close(fd)
            return
        if isinstance(msg, M.HandOff):
            if fd is None:
                log.error("hand-off for cid %d arrived without a socket", msg.client_id)
                return
            self._adopt(msg, fd)
            return
        if fd is not None:
            os.close(fd)
        if isinstance(msg, M.Hello):
            self._hello(msg)
        elif isinstance(msg, M.Shutdown):
            self.shutdown()
        elif isinstance(msg, M.StatsRequest):
            self.channel.send(M.encode(self.stats(msg.request_id)))
        elif isinstance(msg, M.LameDuck):
            self._lame_duck(msg)
        elif isinstance(msg, M.Disconnect):
            self._disconnect(msg)
        elif isinstance(msg, M.UpdatePermissions):
            self._update_permissions(msg)
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
        natslog.setup(debug=cfg.debug, trace=cfg.trace, logtime=cfg.logtime, log_file=cfg.log_file)
        self.channel.send(M.encode(M.Ready(worker_id=cfg.worker_id, pid=os.getpid())))
        log.debug("worker %d ready", cfg.worker_id)

    def _on_control_closed(self) -> None:
        if not self.done.done():
            self.shutdown()

    # -- clients ---------------------------------------------------------
    def _adopt(self, h: M.HandOff, fd: int) -> None:
        try:
            sock = socket.socket(fileno=fd)
        except OSError as e:
            os.close(fd)
            log.error("cid:%d - cannot adopt socket: %s", h.client_id, e)
            return
        if self.config is None or self.lame_duck:
            sock.close()
            return
        acc = self.accounts.get(h.account)
        if acc is None:
            acc = self.accounts[h.account] = Account(h.account)
        client = Client(self, h, acc)
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

    def client_closed(self, client: Client, reason: ClosedReason) -> None:
        self.clients.pop(client.cid, None)
        acc = client.account
        acc.clients.pop(client.cid, None)
        self.closed_count += 1
        log.debug("cid:%d - client closed: %s", client.cid, reason.text)
        if not self.channel.closed:
            try:
                self.channel.send(M.encode(M.ClientClosed(client_id=client.cid, account=acc.name)))
            except Exception as e:
                log.debug("cannot report closed client: %s", e)
        if not acc.clients and acc.sublist.count() == 0:
            self.accounts.pop(acc.name, None)

    def forward_system_request(self, client: Client, subject: bytes, reply: bytes | None, payload: bytes) -> None:
        req = M.SysRequest(account=client.account.name, subject=subject, reply=reply, payload=payload, client_id=client.cid)
        self.channel.send(M.encode(req))

    def flush(self) -> None:
        dirty = self.dirty
        if not dirty:
            return
        self.dirty = []
        for c in dirty:
            c.flush()

    # -- supervisor requests ---------------------------------------------
    def stats(self, request_id: int) -> M.Stats:
        conns = []
        in_msgs = out_msgs = in_bytes = out_bytes = subs = 0
        for c in self.clients.values():
            in_msgs += c.in_msgs
            out_msgs += c.out_msgs
            in_bytes += c.in_bytes
            out_bytes += c.out_bytes
            subs += len(c.subs)
            conns.append(
                M.ConnStats(
                    cid=c.cid,
                    account=c.account.name,
                    user=c.user,
                    host=c.host,
                    port=c.port,
                    start=c.start,
                    last_activity=c.last_activity,
                    in_msgs=c.in_msgs,
                    out_msgs=c.out_msgs,
                    in_bytes=c.in_bytes,
                    out_bytes=c.out_bytes,
                    subs=len(c.subs),
                    pending_bytes=c.pending_bytes(),
                    name=c.name,
                    lang=c.lang,
                    version=c.version,
                    rtt=c.rtt,
                    tls_version=c.tls_version,
                    tls_cipher=c.tls_cipher,
                    subjects=[s.subject.decode("utf-8", "replace") for s in c.subs.values()],
                )
            )
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
            if c.account.name == msg.account and c.user == msg.user:
                c.perms = CompiledPermissions.build(msg.permissions)
                c._update_fast()
                for sub in c.subs.values():
                    sub.filtered = c.perms is not None and c.perms.needs_delivery_filter(sub.subject, sub.queue)

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

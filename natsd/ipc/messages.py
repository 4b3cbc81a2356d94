"""Every message that crosses a natsd process boundary.

Theory of operation
-------------------
The supervisor talks to each worker over one ``SOCK_SEQPACKET`` Unix socket
pair (the *control channel*). SEQPACKET keeps message boundaries, so each
datagram is exactly one msgpack-encoded :data:`Control` value; a hand-off also
carries the client's file descriptor as ``SCM_RIGHTS`` ancillary data.

All structs are ``frozen``, ``kw_only`` and tagged, grouped into one union per
direction. Following msgspec's schema-evolution rules, fields are only ever
appended and new ones carry defaults, so a worker and a supervisor of
neighbouring versions still understand each other; :class:`Hello` carries
``PROTOCOL_VERSION`` and the worker refuses to boot on a mismatch.

Secrets never cross this boundary: the supervisor authenticates, and the
worker only receives the *result* (account, display name, permissions,
limits) plus a digest of the credentials so it can refuse a second CONNECT
that tries to switch identity.
"""

from __future__ import annotations

from typing import Any

import msgspec

from natsd.config.schema import Account, Permissions

PROTOCOL_VERSION = 1

# A SEQPACKET datagram must fit in the socket buffer; cap the replayed bytes.
MAX_PENDING_HANDOFF = 64 * 1024
# Stats are split so that no datagram grows past this size (well under the
# kernel's default SEQPACKET buffer), and per-connection subscription lists
# are truncated to this many entries.
STATS_PART_BYTES = 128 * 1024
STATS_SUBS_PER_CONN = 256
CLOSED_CONNS_KEPT = 1000  # per worker, for /connz?state=closed


class _Msg(msgspec.Struct, frozen=True, kw_only=True, tag=True):
    pass


class WorkerConfig(msgspec.Struct, frozen=True, kw_only=True):
    """The secret-free subset of Options a worker runs on."""

    worker_id: int
    server_id: str
    server_name: str
    version: str
    natsd_version: str
    host: str
    port: int
    max_payload: int
    max_control_line: int
    max_pending: int
    max_subscriptions: int
    max_sub_tokens: int
    ping_interval: float
    ping_max: int
    write_deadline: float
    headers: bool
    system_account: str
    debug: bool = False
    trace: bool = False
    logtime: bool = True
    log_file: str | None = None
    syslog: bool = False
    remote_syslog: str | None = None
    lame_duck_duration: float = 120.0
    lame_duck_grace_period: float = 10.0
    # INFO fields shared by every client (server_id, version, ...); the worker
    # adds client_id/client_ip and re-sends it after the first PING.
    info: dict[str, Any] = msgspec.field(default_factory=dict)
    workers: int = 1
    # Exports and imports of every account, users stripped (no secrets).
    accounts: tuple[Account, ...] = ()


class ConnectInfo(msgspec.Struct, frozen=True, kw_only=True):
    """The non-secret CONNECT options the worker applies."""

    verbose: bool = True
    pedantic: bool = True
    echo: bool = True
    headers: bool = False
    no_responders: bool = False
    protocol: int = 0
    tls_required: bool = False
    name: str | None = None
    lang: str | None = None
    version: str | None = None


# ConnectInfo's fields, shared with natsd.proto.connect.ConnectOptions: the
# supervisor copies them out of the CONNECT it authenticated, the worker back
# into the options its parser continues from.
CONNECT_FIELDS = tuple(ConnectInfo.__struct_fields__)


def connect_fields(obj: Any) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in CONNECT_FIELDS}


# --- supervisor -> worker -------------------------------------------------


class Hello(_Msg, frozen=True, kw_only=True):
    protocol_version: int = PROTOCOL_VERSION
    config: WorkerConfig


class HandOff(_Msg, frozen=True, kw_only=True):
    """Adopt the attached socket as an authenticated client.

    ``connected`` is false when the client's first op was not CONNECT (auth
    not required, or ``no_auth_user``): the worker then applies CONNECT
    defaults and treats a later CONNECT as the first one.
    """

    client_id: int
    account: str
    user: str | None = None
    permissions: Permissions | None = None
    connect: ConnectInfo = msgspec.field(default_factory=ConnectInfo)
    connected: bool = True
    auth_required: bool = False
    auth_digest: bytes = b""
    pending: bytes = b""
    host: str = ""
    port: int = 0
    start: float = 0.0
    tls: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    expires: float | None = None
    max_subscriptions: int = -1
    max_payload: int = -1
    is_system: bool = False
    kind: str = "Client"


class Shutdown(_Msg, frozen=True, kw_only=True):
    reason: str = "Server Shutdown"


class LameDuck(_Msg, frozen=True, kw_only=True):
    duration: float
    grace: float
    info: dict[str, Any] = msgspec.field(default_factory=dict)


class StatsRequest(_Msg, frozen=True, kw_only=True):
    request_id: int


class Disconnect(_Msg, frozen=True, kw_only=True):
    """Close connections matching a predicate (reload, revocation)."""

    account: str | None = None
    user: str | None = None
    client_id: int | None = None
    error: str | None = None


class UpdatePermissions(_Msg, frozen=True, kw_only=True):
    """Reload: the permissions of a user changed; apply to live connections."""

    account: str
    user: str
    permissions: Permissions | None = None
    client_id: int | None = None  # only this connection (JWT updates)


class RingAttach(_Msg, frozen=True, kw_only=True):
    """One end of the ring between this worker and ``peer``; the two fds
    (memfd and eventfd) follow in the same datagram."""

    peer: int
    role: str  # "producer" (we write to peer) | "consumer" (peer writes to us)
    spec: bytes  # msgpack-encoded natsd.ipc.ring.RingSpec


class UpdateAccounts(_Msg, frozen=True, kw_only=True):
    """Exports/imports changed (reload, or a JWT account appeared/changed)."""

    accounts: tuple[Account, ...]


class Publish(_Msg, frozen=True, kw_only=True):
    """Deliver a server-originated message (system replies) inside an account."""

    account: str
    subject: bytes
    reply: bytes | None = None
    payload: bytes = b""


SupervisorToWorker = (
    Hello | HandOff | Shutdown | LameDuck | StatsRequest | Disconnect | UpdatePermissions | Publish | RingAttach | UpdateAccounts
)


# --- worker -> supervisor -------------------------------------------------


class Ready(_Msg, frozen=True, kw_only=True):
    worker_id: int
    pid: int


class SubStats(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    subject: str
    sid: str
    queue: str | None = None
    msgs: int = 0


class AccountStats(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    name: str
    conns: int = 0
    in_msgs: int = 0
    in_bytes: int = 0
    out_msgs: int = 0
    out_bytes: int = 0
    slow_consumers: int = 0
    num_subscriptions: int = 0
    num_cache: int = 0
    num_inserts: int = 0
    num_removes: int = 0
    num_matches: int = 0
    cache_hit_rate: float = 0.0
    max_fanout: int = 0
    avg_fanout: float = 0.0


class ConnStats(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    cid: int
    account: str
    user: str | None
    host: str
    port: int
    start: float
    last_activity: float
    in_msgs: int
    out_msgs: int
    in_bytes: int
    out_bytes: int
    subs: int
    pending_bytes: int
    name: str | None
    lang: str | None
    version: str | None
    rtt: float
    tls_version: str | None = None
    tls_cipher: str | None = None
    subjects: list[str] = msgspec.field(default_factory=list)
    subs_detail: list[SubStats] = msgspec.field(default_factory=list)
    stop: float | None = None  # closed connections: when, and why
    reason: str | None = None


class Stats(_Msg, frozen=True, kw_only=True):
    request_id: int
    worker_id: int
    pid: int
    accounts: list[str]
    in_msgs: int
    out_msgs: int
    in_bytes: int
    out_bytes: int
    slow_consumers: int
    subscriptions: int
    connections: list[ConnStats]
    closed: int = 0
    router: dict[str, int] = msgspec.field(default_factory=dict)
    account_stats: list[AccountStats] = msgspec.field(default_factory=list)
    # Worker lifetime totals (closed connections included); -1 = unknown.
    total_in_msgs: int = -1
    total_out_msgs: int = -1
    total_in_bytes: int = -1
    total_out_bytes: int = -1
    # A worker with many connections answers in several datagrams (each must
    # fit the control socket's buffer); the supervisor merges the parts.
    part: int = 0
    parts: int = 1
    # The most recently closed connections (bounded ring in the worker).
    closed_conns: list[ConnStats] = msgspec.field(default_factory=list)
    rings: list[dict[str, Any]] = msgspec.field(default_factory=list)


class ClientClosed(_Msg, frozen=True, kw_only=True):
    """A client left; the supervisor keeps per-account connection counts and
    tells the system account (``$SYS.ACCOUNT.<acc>.DISCONNECT``)."""

    client_id: int
    account: str
    reason: str = ""  # nats-server's close-reason text
    in_msgs: int = 0
    in_bytes: int = 0
    out_msgs: int = 0
    out_bytes: int = 0
    rtt: float = 0.0  # seconds


class SysRequest(_Msg, frozen=True, kw_only=True):
    """A system-account client published on a ``$SYS.REQ.`` subject the
    supervisor answers (claims updates and lookups, server ping)."""

    account: str
    subject: bytes
    reply: bytes | None
    payload: bytes
    client_id: int


WorkerToSupervisor = Ready | Stats | ClientClosed | SysRequest

_enc = msgspec.msgpack.Encoder()
_dec_to_worker = msgspec.msgpack.Decoder(SupervisorToWorker)
_dec_to_sup = msgspec.msgpack.Decoder(WorkerToSupervisor)


def encode(msg: _Msg) -> bytes:
    return _enc.encode(msg)


def decode_for_worker(data: bytes) -> SupervisorToWorker:
    return _dec_to_worker.decode(data)


def decode_for_supervisor(data: bytes) -> WorkerToSupervisor:
    return _dec_to_sup.decode(data)

"""The monitoring endpoints' JSON documents, built from a snapshot.

Theory of operation
-------------------
In nats-server one process holds every connection, so ``/connz`` walks its
own client map. In natsd the connections live in the workers, so the
supervisor asks each live worker for a :class:`~natsd.ipc.messages.Stats`
(``Supervisor.gather_stats``) and freezes that, plus its own facts (server
id, options, worker slots, process metrics), into a :class:`Snapshot`. Every
endpoint is then a pure function ``Snapshot -> dict`` here, so the builders
are unit-tested without processes or sockets, and one slow worker can only
make a document incomplete (its connections are missing), never late.

Keys, value types and units follow nats-server's ``server/monitor.go``
(see :mod:`supervisor.monitor_format` for encodings). Where natsd has no
counterpart (routes, gateways, leaf nodes, MQTT, WebSocket, JetStream) the
document says "none" the way nats-server does when the feature is off.

What is never emitted: passwords, tokens, nonces, nkey seeds, JWTs
(nats-server's ``trusted_operators_jwt`` is deliberately left out), TLS keys.
Users are shown by the display name the supervisor recorded (user name or
nkey public key), and only with ``auth=true``, like nats-server.

Optional worker fields: ``ConnStats.subs_detail``, ``Stats.account_stats`` and
``Stats.total_*`` are read with ``getattr`` so this module works with workers
that do not report them yet (the documents then fall back to what the
per-connection counters can tell).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from natsd.config.schema import Account, Options
from natsd.ipc import messages as M
from natsd.subjects.tokens import subject_matches
from supervisor.monitor_format import (
    BadRequest,
    duration_ns,
    gofloat,
    q_bool,
    q_int,
    q_str,
    rfc3339,
    rtt,
    uptime,
)
from supervisor.monitor_subs import account_summaries, merge_sublist_stats, sub_entries

Query = Mapping[str, list[str]]
DEFAULT_LIMIT = 1024
GLOBAL_ACCOUNT = "$G"


@dataclasses.dataclass(frozen=True)
class WorkerView:
    """A worker slot as the supervisor sees it (no secrets)."""

    index: int
    pid: int
    ready: bool
    restarts: int
    clients: int


@dataclasses.dataclass(frozen=True)
class Snapshot:
    server_id: str
    server_name: str
    info: Mapping[str, Any]
    opts: Options
    start: float
    now: float
    total_connections: int
    auth_timeout: float
    workers: tuple[WorkerView, ...] = ()
    stats: tuple[M.Stats, ...] = ()
    accounts: tuple[str, ...] = ()
    users: Mapping[int, str | None] = dataclasses.field(default_factory=dict)
    config_load_time: float = 0.0
    lame_duck: bool = False
    mem: int = 0
    cpu: float = 0.0
    cores: int = 1
    http_req_stats: Mapping[str, int] = dataclasses.field(default_factory=dict)
    system_api: Mapping[str, int] = dataclasses.field(default_factory=dict)
    account_defs: tuple[Account, ...] = ()  # exports and imports, no users

    def conns(self) -> list[M.ConnStats]:
        return [c for s in self.stats for c in s.connections]

    def closed(self) -> list[M.ConnStats]:
        return [c for s in self.stats for c in getattr(s, "closed_conns", ())]

    def header(self) -> dict[str, Any]:
        return {"server_id": self.server_id, "now": rfc3339(self.now)}


# --- /varz ------------------------------------------------------------------


def _total(stats: Iterable[M.Stats], name: str) -> int:
    """Cumulative worker counter ``total_<name>`` when reported, else the
    live-connection sum the worker always sends."""
    out = 0
    for s in stats:
        v = getattr(s, "total_" + name, -1)
        out += v if v >= 0 else getattr(s, name)
    return out


def _live_connections(snap: Snapshot) -> int:
    # Workers that answered report their connections; for a silent worker
    # fall back to the supervisor's own record of what it handed over.
    answered = {s.worker_id for s in snap.stats}
    n = sum(len(s.connections) for s in snap.stats)
    return n + sum(w.clients for w in snap.workers if w.index not in answered)


def _worker_section(snap: Snapshot) -> list[dict[str, Any]]:
    by_id = {s.worker_id: s for s in snap.stats}
    out = []
    for w in snap.workers:
        s = by_id.get(w.index)
        entry: dict[str, Any] = {
            "index": w.index,
            "pid": w.pid,
            "ready": w.ready,
            "responding": s is not None,
            "restarts": w.restarts,
            "accounts": list(s.accounts) if s else [],
            "connections": len(s.connections) if s else w.clients,
        }
        if s is not None:
            entry.update(
                in_msgs=_total([s], "in_msgs"),
                out_msgs=_total([s], "out_msgs"),
                in_bytes=_total([s], "in_bytes"),
                out_bytes=_total([s], "out_bytes"),
                subscriptions=s.subscriptions,
                slow_consumers=s.slow_consumers,
                router=dict(getattr(s, "router", {}) or {}),
                rings=list(getattr(s, "rings", []) or []),
            )
        out.append(entry)
    return out


def varz(snap: Snapshot) -> dict[str, Any]:
    o, info, stats = snap.opts, snap.info, snap.stats
    zero4 = {"clients": 0, "routes": 0, "gateways": 0, "leafs": 0}
    in_msgs, in_bytes = _total(stats, "in_msgs"), _total(stats, "in_bytes")
    out_msgs, out_bytes = _total(stats, "out_msgs"), _total(stats, "out_bytes")
    slow = sum(s.slow_consumers for s in stats)
    v: dict[str, Any] = {
        "server_id": snap.server_id,
        "server_name": snap.server_name,
        "version": info.get("version", ""),
        "proto": info.get("proto", 1),
        "git_commit": "",
        "go": info.get("go", ""),
        "host": o.host,
        "port": info.get("port", o.port),
    }
    for key in ("auth_required", "tls_required", "tls_verify"):
        if info.get(key):
            v[key] = True
    v.update(
        max_connections=o.max_connections,
        ping_interval=duration_ns(o.ping_interval),
        ping_max=o.ping_max,
        http_host=o.http_host,
        http_port=o.http_port,
        http_base_path="",
        https_port=o.https_port,
        auth_timeout=gofloat(snap.auth_timeout),
        max_control_line=o.max_control_line,
        max_payload=o.max_payload,
        max_pending=o.max_pending,
        cluster={},
        gateway={},
        leaf={},
        mqtt={},
        websocket={},
        jetstream={},
        tls_timeout=gofloat(o.tls.timeout if o.tls is not None else 2.0),
        write_deadline=duration_ns(o.write_deadline),
        start=rfc3339(snap.start),
        now=rfc3339(snap.now),
        uptime=uptime(snap.now - snap.start),
        mem=snap.mem,
        cores=snap.cores,
        gomaxprocs=len(snap.workers) or 1,
        cpu=gofloat(round(snap.cpu, 2)),
        connections=_live_connections(snap),
        total_connections=snap.total_connections,
        routes=0,
        remotes=0,
        leafnodes=0,
        in_msgs=in_msgs,
        in_bytes=in_bytes,
        in_client_msgs=in_msgs,
        in_client_bytes=in_bytes,
        out_msgs=out_msgs,
        out_bytes=out_bytes,
        out_client_msgs=out_msgs,
        out_client_bytes=out_bytes,
        slow_consumers=slow,
        stale_connections=0,
        stalled_clients=0,
        subscriptions=sum(s.subscriptions for s in stats),
        http_req_stats=dict(snap.http_req_stats),
        config_load_time=rfc3339(snap.config_load_time or snap.start),
        config_digest="",
        feature_flags={},
    )
    if not o.no_system_account:
        v["system_account"] = o.system_account
    v["slow_consumer_stats"] = dict(zero4, clients=slow)
    v["stale_connection_stats"] = dict(zero4)
    v["disk_io_wait_stats"] = {"waiters": 0, "waits": 0, "wait_time": 0, "max_wait_time": 0}
    v["lame_duck_mode"] = snap.lame_duck
    v["workers"] = _worker_section(snap)
    v["system_api"] = dict(snap.system_api)  # $SYS.REQ requests answered / dropped
    return v


# --- STATSZ (system account) ------------------------------------------------


def statsz(snap: Snapshot) -> dict[str, Any]:
    """The ``statsz`` body of ``$SYS.REQ.SERVER.PING[.STATSZ]``: varz's
    counters in nats-server's ServerStats shape (one server, no routes)."""
    v = varz(snap)
    sent = {"msgs": v["out_msgs"], "bytes": v["out_bytes"]}
    received = {"msgs": v["in_msgs"], "bytes": v["in_bytes"]}
    return {
        "start": v["start"],
        "mem": v["mem"],
        "cores": v["cores"],
        "cpu": v["cpu"],
        "connections": v["connections"],
        "total_connections": v["total_connections"],
        "active_accounts": len(account_summaries(snap.stats)),
        "subscriptions": v["subscriptions"],
        "sent": sent,
        "sent_to_clients": dict(sent),
        "received": received,
        "received_from_clients": dict(received),
        "slow_consumers": v["slow_consumers"],
        "active_servers": 1,
        "gomaxprocs": v["gomaxprocs"],
        "workers": len(snap.workers),
    }


# --- /connz -----------------------------------------------------------------

# sort option -> (key function, descending); nats-server sorts cid and start
# ascending and every counter descending (biggest first).
_SORTS: dict[str, tuple[Callable[[M.ConnStats, float], Any], bool]] = {
    "cid": (lambda c, now: c.cid, False),
    "start": (lambda c, now: c.start, False),
    "subs": (lambda c, now: c.subs, True),
    "pending": (lambda c, now: c.pending_bytes, True),
    "msgs_to": (lambda c, now: c.out_msgs, True),
    "msgs_from": (lambda c, now: c.in_msgs, True),
    "bytes_to": (lambda c, now: c.out_bytes, True),
    "bytes_from": (lambda c, now: c.in_bytes, True),
    "last": (lambda c, now: c.last_activity, True),
    "idle": (lambda c, now: now - c.last_activity, True),
    "uptime": (lambda c, now: now - c.start, True),
    "rtt": (lambda c, now: c.rtt, True),
    "stop": (lambda c, now: c.stop or 0.0, True),
    "reason": (lambda c, now: c.reason or "", False),
}
_CLOSED_ONLY_SORTS = ("stop", "reason")
_STATES = {"open": "open", "closed": "closed", "any": "any", "all": "any"}


def _conn_info(
    c: M.ConnStats, now: float, users: Mapping[int, str | None], *, auth: bool, subs: str
) -> dict[str, Any]:
    d: dict[str, Any] = {
        "cid": c.cid,
        "kind": getattr(c, "kind", "Client") or "Client",
        "type": "nats",
        "ip": c.host,
        "port": c.port,
        "start": rfc3339(c.start),
        "last_activity": rfc3339(c.last_activity),
        "rtt": rtt(c.rtt),
        "uptime": uptime(now - c.start),
        "idle": uptime(now - c.last_activity),
        "pending_bytes": c.pending_bytes,
        "in_msgs": c.in_msgs,
        "out_msgs": c.out_msgs,
        "in_bytes": c.in_bytes,
        "out_bytes": c.out_bytes,
        "subscriptions": c.subs,
    }
    stop = getattr(c, "stop", None)
    if stop is not None:
        d["stop"] = rfc3339(stop)
        d["uptime"] = uptime(stop - c.start)
        d["idle"] = uptime(stop - c.last_activity)
        d["reason"] = c.reason or ""
    for key in ("name", "lang", "version"):
        if getattr(c, key):
            d[key] = getattr(c, key)
    if c.tls_version:
        d["tls_version"] = c.tls_version
        d["tls_cipher_suite"] = c.tls_cipher or ""
    if auth:
        user = users.get(c.cid, c.user)
        if user:
            d["authorized_user"] = user
        d["account"] = c.account
        d["name_tag"] = c.account
    if subs == "list" and c.subjects:
        d["subscriptions_list"] = list(c.subjects)
    elif subs == "detail":
        detail = sub_entries(c, with_account=False)
        if detail:
            d["subscriptions_list_detail"] = detail
    return d


def connz(snap: Snapshot, q: Query) -> dict[str, Any]:
    sort = q_str(q, "sort", "cid") or "cid"
    raw_subs = q_str(q, "subs")
    subs = "detail" if raw_subs == "detail" else ("list" if q_bool(q, "subs") else "")
    auth = q_bool(q, "auth")
    offset = max(0, q_int(q, "offset", 0))
    limit = q_int(q, "limit", DEFAULT_LIMIT)
    if limit <= 0:
        limit = DEFAULT_LIMIT
    cid = q_int(q, "cid", 0)
    acc = q_str(q, "acc")
    user = q_str(q, "user")
    state = _STATES.get(q_str(q, "state", "open") or "open")
    if state is None:
        raise BadRequest(f"Error decoding state: {q_str(q, 'state')}")
    if sort in _CLOSED_ONLY_SORTS and state != "closed":
        raise BadRequest(f"sort by {sort} only valid on closed connections")
    if sort not in _SORTS and sort not in _CLOSED_ONLY_SORTS:
        raise BadRequest(f"invalid sorting option: {sort}")

    # Workers keep their last CLOSED_CONNS_KEPT closed connections each
    # (nats-server keeps the server's last 10,000).
    conns = snap.conns() if state != "closed" else []
    if state != "open":
        conns += snap.closed()
    if acc:
        conns = [c for c in conns if c.account == acc]
    if user:
        conns = [c for c in conns if snap.users.get(c.cid, c.user) == user]
    total = len(conns)
    if cid:
        conns, offset, limit = [c for c in conns if c.cid == cid], 0, 1
    elif sort in _SORTS:
        key, desc = _SORTS[sort]
        conns.sort(key=lambda c: (key(c, snap.now), c.cid), reverse=desc)
    page = conns[offset : offset + limit]
    out = snap.header()
    out.update(
        num_connections=len(page),
        total=total,
        offset=offset,
        limit=limit,
        connections=[_conn_info(c, snap.now, snap.users, auth=auth, subs=subs) for c in page],
    )
    return out


# --- /subsz -------------------------------------------------------------------


def subsz(snap: Snapshot, q: Query) -> dict[str, Any]:
    want_list = q_bool(q, "subs")
    offset = max(0, q_int(q, "offset", 0))
    limit = q_int(q, "limit", DEFAULT_LIMIT)
    if limit <= 0:
        limit = DEFAULT_LIMIT
    acc = q_str(q, "acc")
    test = q_str(q, "test")
    out = snap.header()
    out.update(merge_sublist_stats(snap.stats, acc or None))
    entries: list[dict[str, Any]] = []
    if want_list:
        for c in snap.conns():
            if acc and c.account != acc:
                continue
            entries.extend(sub_entries(c, with_account=True))
        if test:
            tb = test.encode()
            entries = [e for e in entries if subject_matches(e["subject"].encode(), tb)]
    out.update(total=len(entries), offset=offset, limit=limit)
    if want_list:
        out["subscriptions_list"] = entries[offset : offset + limit]
    return out


# --- accounts -----------------------------------------------------------------


def known_accounts(snap: Snapshot) -> list[str]:
    names = set(snap.accounts) | {GLOBAL_ACCOUNT}
    if not snap.opts.no_system_account:
        names.add(snap.opts.system_account)
    for s in snap.stats:
        names.update(s.accounts)
    return sorted(names)


def accountz(snap: Snapshot, q: Query) -> dict[str, Any]:
    out = snap.header()
    out["system_account"] = "" if snap.opts.no_system_account else snap.opts.system_account
    acc = q_str(q, "acc")
    if not acc:
        out["accounts"] = known_accounts(snap)
        return out
    if acc not in known_accounts(snap):
        raise BadRequest(f"Account {acc} does not exist")
    summary = account_summaries(snap.stats).get(acc)
    sublist = merge_sublist_stats(snap.stats, acc)
    out["account_detail"] = {
        "account_name": acc,
        "update_time": rfc3339(snap.config_load_time or snap.start),
        "expired": False,
        "complete": True,
        "jetstream_enabled": False,
        "leafnode_connections": 0,
        "client_connections": summary.conns if summary else 0,
        "subscriptions": sublist["num_subscriptions"],
        "name_tag": acc,
        "sublist_stats": sublist,
    }
    for d in snap.account_defs:
        if d.name == acc:
            out["account_detail"].update(_exports_imports(d))
            break
    return out


_RESPONSE_TYPES = {"singleton": "Singleton", "stream": "Streamed", "chunked": "Chunked"}


def _exports_imports(acc: Account) -> dict[str, Any]:
    """nats-server's ``exports``/``imports`` of an account detail (omitted when empty)."""
    exports: list[dict[str, Any]] = []
    for se in acc.service_exports:
        d: dict[str, Any] = {"subject": se.subject, "type": "service"}
        d["response_type"] = _RESPONSE_TYPES.get(se.response_type, se.response_type)
        if se.accounts:
            d["approved_accounts"] = list(se.accounts)
        exports.append(d)
    for st in acc.stream_exports:
        d = {"subject": st.subject, "type": "stream"}
        if st.accounts:
            d["approved_accounts"] = list(st.accounts)
        exports.append(d)
    imports: list[dict[str, Any]] = []
    flags = {"invalid": False, "share": False, "tracking": False}
    for si in acc.stream_imports:
        local = si.to or (f"{si.prefix}.{si.subject}" if si.prefix else si.subject)
        d = {"subject": si.subject, "account": si.account}
        if si.to:
            d["to"] = si.to
        imports.append({**d, "local_subject": local, "type": "stream", **flags})
    for vi in acc.service_imports:
        d = {"subject": vi.subject, "account": vi.account}
        if vi.to:
            d["to"] = vi.to
        imports.append({**d, "local_subject": vi.to or vi.subject, "type": "service", **flags})
    out: dict[str, Any] = {}
    if exports:
        out["exports"] = exports
    if imports:
        out["imports"] = imports
    return out


def _traffic(msgs: int, nbytes: int) -> dict[str, Any]:
    zero = {"msgs": 0, "bytes": 0}
    return {
        "msgs": msgs,
        "bytes": nbytes,
        "gateways": dict(zero),
        "routes": dict(zero),
        "leafs": dict(zero),
    }


def accstatz(snap: Snapshot, q: Query) -> dict[str, Any]:
    unused = q_bool(q, "unused")
    wanted = {a for a in q_str(q, "acc").split(",") if a}
    summaries = account_summaries(snap.stats)
    rows = []
    for name in known_accounts(snap):
        if wanted and name not in wanted:
            continue
        s = summaries.get(name)
        if s is None and not unused:
            continue
        if s is not None and s.conns == 0 and not unused:
            continue
        conns = s.conns if s else 0
        rows.append(
            {
                "acc": name,
                "name": name,
                "conns": conns,
                "leafnodes": 0,
                "total_conns": conns,
                "num_subscriptions": s.subscriptions if s else 0,
                # "sent" is what the server delivered to the account's clients.
                "sent": _traffic(s.out_msgs if s else 0, s.out_bytes if s else 0),
                "received": _traffic(s.in_msgs if s else 0, s.in_bytes if s else 0),
                "slow_consumers": s.slow_consumers if s else 0,
            }
        )
    out = snap.header()
    out["account_statz"] = rows
    return out


# --- features natsd does not have ------------------------------------------------


def routez(snap: Snapshot) -> dict[str, Any]:
    return {
        "server_id": snap.server_id,
        "server_name": snap.server_name,
        "now": rfc3339(snap.now),
        "num_routes": 0,
        "routes": [],
    }


def gatewayz(snap: Snapshot) -> dict[str, Any]:
    out = snap.header()
    out.update(outbound_gateways={}, inbound_gateways={})
    return out


def leafz(snap: Snapshot) -> dict[str, Any]:
    out = snap.header()
    out.update(leafnodes=0, leafs=[])
    return out


def jsz(snap: Snapshot) -> dict[str, Any]:
    """JetStream is not available: answer as nats-server does when disabled."""
    out: dict[str, Any] = {
        "memory": 0,
        "storage": 0,
        "reserved_memory": 0,
        "reserved_storage": 0,
        "accounts": 0,
        "ha_assets": 0,
        "api": {"level": 0, "total": 0, "errors": 0},
    }
    out.update(snap.header())
    out.update(
        disabled=True,
        config={"max_memory": 0, "max_storage": 0},
        streams=0,
        consumers=0,
        messages=0,
        bytes=0,
        total=0,
    )
    return out


def healthz(snap: Snapshot, q: Query) -> tuple[int, dict[str, Any]]:
    """``{"status": "ok"}``, or 503 while a worker slot has no running worker
    (its accounts cannot be served). Without JetStream the ``js-*`` query
    forms have nothing more to check, as in nats-server."""
    for w in snap.workers:
        if not w.ready:
            return 503, {
                "status": "unavailable",
                "status_code": 503,
                "error": f"worker {w.index} is not running",
            }
    return 200, {"status": "ok"}

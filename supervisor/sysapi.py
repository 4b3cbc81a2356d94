"""The system account's monitoring API: ``$SYS.REQ.SERVER.*``, ``$SYS.REQ.ACCOUNT.*``
and ``$SYS.REQ.USER.INFO``, as nats-server answers them (the ``nats`` CLI's
``server list``, ``server report``, ``account info`` use these).

Theory of operation
-------------------
A worker forwards a matching PUB to the supervisor as a
:class:`~natsd.ipc.messages.SysRequest` (which subjects, for whom:
:mod:`natsd.auth.sysreq`). Here the request is decoded, filtered and answered
from the same :class:`~supervisor.monitor.Snapshots` the HTTP monitor uses,
by the same pure builders (:mod:`supervisor.monitor_json`), wrapped the way
nats-server wraps them: ``{"server": {...}, "data": {...}}`` or
``{"server": {...}, "error": {"code": N, "description": "..."}}``. The reply
is published into the requester's own account.

Scoping. A client of any other account reaches only the subjects nats-server
imports into every account, and the answer is always about the requester:
its own connection (``USER.INFO``), its own account's connections
(``ACCOUNT.PING.CONNZ``, ``SERVER.PING.CONNZ``: an ``acc`` option naming
another account is overridden) and statistics (``ACCOUNT.PING.STATZ``).

Events. ``$SYS.ACCOUNT.<acc>.CONNECT`` / ``.DISCONNECT`` advisories go
into the system account when a client is handed off and when its worker
reports it closed (:meth:`SysApi.client_event`), with nats-server's fields
less the client's JWT.

Bounds. The system account may have :data:`MAX_SYSTEM_INFLIGHT` requests
being answered at once, all other accounts together
:data:`MAX_TENANT_INFLIGHT`, one of them at most :data:`MAX_ACCOUNT_INFLIGHT`;
more are dropped and counted (``/varz`` ``system_api``), so no tenant can
shut the operators out. Requests from other
accounts reuse worker counters up to :data:`TENANT_MAX_AGE` old, so a tenant
that floods these subjects costs the workers at most one stats gather per
second, and never a growing queue.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import TYPE_CHECKING, Any

import msgspec

from natsd import log as natslog
from natsd.auth.sysreq import ACCOUNT_SCOPED, ApiRoute, api_route
from natsd.config.schema import Permissions
from natsd.ipc import messages as M
from supervisor import monitor_json as J
from supervisor.monitor_format import BadRequest, rfc3339

if TYPE_CHECKING:
    from natsd.proto.connect import ConnectOptions
    from supervisor.server import ClientEntry, Supervisor

log = logging.getLogger("natsd.sysapi")

# Requests being answered at once: the system account has its own budget,
# which no other account can use up; every other account gets a share of theirs.
MAX_SYSTEM_INFLIGHT = 64
MAX_TENANT_INFLIGHT = 256
MAX_ACCOUNT_INFLIGHT = 64
TENANT_MAX_AGE = 1.0  # seconds: worker counters reused for other accounts' requests
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# JSON option -> monitor query parameter, per endpoint (nats-server's
# ConnzOptions, SubszOptions, AccountzOptions, HealthzOptions field names).
_QUERY_KEYS: dict[str, dict[str, str]] = {
    "CONNZ": {"sort": "sort", "auth": "auth", "offset": "offset", "limit": "limit", "cid": "cid",
              "user": "user", "acc": "acc"},
    "SUBSZ": {"offset": "offset", "limit": "limit", "subscriptions": "subs", "account": "acc", "test": "test"},
    "ACCOUNTZ": {"account": "acc", "include_unused": "unused"},
}  # fmt: skip
_CONN_STATES = {0: "open", 1: "closed", 2: "any"}
# The JSON type of every option natsd reads; a value of another type is a 400,
# as Go's json.Unmarshal into nats-server's option structs makes it.
_OPTION_TYPES: dict[str, tuple[type, str]] = {
    **{k: (str, "string") for k in ("sort", "user", "acc", "account", "test", "server_name", "host", "cluster", "domain")},
    **{k: (bool, "bool") for k in ("auth", "subscriptions", "subscriptions_detail", "include_unused", "exact_match")},
    **{k: (int, "int") for k in ("offset", "limit", "state")},
    "cid": (int, "uint64"),
    **{k: (list, "[]string") for k in ("accounts", "tags")},
}
_JSON_TYPES = {str: "string", bool: "bool", int: "number", float: "number", list: "array", dict: "object"}


class _Skip(Exception):
    """The request does not apply to this server: no reply (nats-server's errSkipZreq)."""


class SysApi:
    def __init__(self, sup: Supervisor) -> None:
        self.sup = sup
        self.answered = 0
        self.dropped = 0
        self._seq = 0  # the "server" block's seq: one per message sent
        self._tasks: set[asyncio.Task[None]] = set()
        self._by_account: dict[str, int] = {}  # in flight per account (bounded by the budgets)
        self._system_inflight = 0
        self._drop_log = natslog.Throttle()

    def counters(self) -> dict[str, int]:
        return {"answered": self.answered, "dropped": self.dropped, "in_flight": len(self._tasks)}

    def handle(self, req: M.SysRequest) -> None:
        route = api_route(req.subject, self.sup.server_id)
        if route is None or not req.reply:
            return
        account = req.account
        system = account == self.sup.system_account_name()
        mine = self._by_account.get(account, 0)
        if system:
            full = self._system_inflight >= MAX_SYSTEM_INFLIGHT
        else:
            full = len(self._tasks) - self._system_inflight >= MAX_TENANT_INFLIGHT or mine >= MAX_ACCOUNT_INFLIGHT
        if full:
            self.dropped += 1
            if self._drop_log.ready():
                log.warning("system API: request dropped, account %s has too many in flight (%d dropped so far)", account, self.dropped)
            return
        self._by_account[account] = mine + 1
        self._system_inflight += system
        task = self.sup.loop.create_task(self._answer(req, route))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._done(t, account, system))

    def _done(self, task: asyncio.Task[None], account: str, system: bool) -> None:
        self._tasks.discard(task)
        self._system_inflight -= system
        left = self._by_account[account] - 1
        if left:
            self._by_account[account] = left
        else:
            del self._by_account[account]

    def close(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    async def _answer(self, req: M.SysRequest, route: ApiRoute) -> None:
        try:
            body = await self.respond(req, route)
        except _Skip:
            return
        except Exception:
            # A builder bug must not take the supervisor down; the requester
            # sees a 500 like an HTTP scraper would.
            log.exception("system request %r failed", req.subject)
            body = self._envelope(error=(500, "internal error"))
        self.answered += 1
        assert req.reply is not None
        self.sup.publish(req.account, req.reply, body)

    # -- dispatch ----------------------------------------------------------------------

    async def respond(self, req: M.SysRequest, route: ApiRoute) -> bytes:
        system = req.account == self.sup.system_account_name()
        if not system and req.subject not in ACCOUNT_SCOPED:
            raise _Skip  # the worker never forwards these; checked again here
        if route.kind == "user":
            # About the requester's own connection; the body is not read (nats-server).
            return self._envelope(data=self._user_info(req))
        try:
            opts = self._options(req.payload)
        except BadRequest as e:
            return self._envelope(error=(400, str(e)))
        self._filter(opts)
        ep = route.endpoint
        if not system:
            # The four subjects imported into every account, about that account only.
            if ep == "CONNZ":
                opts["acc"] = req.account
                return await self._doc("CONNZ", opts, TENANT_MAX_AGE)
            return await self._account_statz(opts, [req.account], TENANT_MAX_AGE)
        if route.kind == "account":
            acc = route.account or ""
            if ep == "STATZ":
                return await self._account_statz(opts, None if acc == "PING" else [acc])
            if ep == "JSZ":
                return self._envelope(data=None, error=(500, "jetstream not enabled"))
            if ep == "INFO":
                return await self._account_info(acc)
            if ep == "CONNS":
                return await self._account_conns(acc)
            if ep == "SUBSZ":
                opts.update(subscriptions=True, account=acc)
            elif ep == "CONNZ":
                opts["acc"] = acc
        if ep == "IDZ":
            o = self.sup.opts
            return msgspec.json.encode({"name": o.server_name or self.sup.server_id, "host": o.host, "id": self.sup.server_id})
        if ep == "STATSZ":
            snap = await self.sup.snapshots.snapshot(with_stats=True)
            return msgspec.json.encode({"server": self.server_info(), "statsz": J.statsz(snap)})
        return await self._doc(ep, opts)

    async def _doc(self, ep: str, opts: dict[str, Any], max_age: float = 0.0) -> bytes:
        needs_stats = ep in ("VARZ", "CONNZ", "SUBSZ", "ACCOUNTZ")
        snap = await self.sup.snapshots.snapshot(with_stats=needs_stats, max_age=max_age)
        try:
            q = _query(ep, opts)
            if ep == "VARZ":
                data = J.varz(snap)
            elif ep == "CONNZ" and q.get("state") == ["none"]:
                data = J.connz(snap, {**q, "state": ["open"]})
                data.update(num_connections=0, total=0, connections=[])
            elif ep == "CONNZ":
                data = J.connz(snap, q)
            elif ep == "SUBSZ":
                data = J.subsz(snap, q)
            elif ep == "ACCOUNTZ":
                data = J.accountz(snap, q)
            elif ep == "HEALTHZ":
                status, data = J.healthz(snap, q)
                data = dict(data, status_code=status)
            elif ep == "ROUTEZ":
                data = J.routez(snap)
            elif ep == "GATEWAYZ":
                data = J.gatewayz(snap)
            elif ep == "LEAFZ":
                data = J.leafz(snap)
            else:  # JSZ
                data = J.jsz(snap)
        except BadRequest as e:
            return self._envelope(error=(500, str(e)))
        return self._envelope(data=data)

    async def _account_info(self, account: str) -> bytes:
        """``ACCOUNT.<acc>.INFO``: the ``/accountz?acc=`` detail."""
        snap = await self.sup.snapshots.snapshot(with_stats=True)
        try:
            data = J.accountz(snap, {"acc": [account]})["account_detail"]
        except BadRequest as e:
            return self._envelope(data=None, error=(500, str(e)))
        return self._envelope(data=data)

    async def _account_conns(self, account: str) -> bytes:
        """``ACCOUNT.<acc>.CONNS``: the account's statz row as an
        ``account_connections`` advisory; no reply while it has no clients."""
        snap = await self.sup.snapshots.snapshot(with_stats=True)
        rows = J.accstatz(snap, {"acc": [account]})["account_statz"]
        if not rows:
            raise _Skip
        event = {
            "type": "io.nats.server.advisory.v1.account_connections",
            "id": _nuid(),
            "timestamp": rfc3339(time.time()),
            "server": self.server_info(),
        }
        event.update(rows[0])
        return msgspec.json.encode(event)

    async def _account_statz(self, opts: dict[str, Any], accounts: list[str] | None, max_age: float = 0.0) -> bytes:
        unused = bool(opts.get("include_unused"))
        wanted = accounts if accounts is not None else [a for a in opts.get("accounts") or () if isinstance(a, str)]
        q = {"acc": [",".join(wanted)], "unused": ["true" if unused else "false"]}
        snap = await self.sup.snapshots.snapshot(with_stats=True, max_age=max_age)
        data = J.accstatz(snap, q)
        if not data["account_statz"] and not unused:
            raise _Skip
        return self._envelope(data=data)

    def _user_info(self, req: M.SysRequest) -> dict[str, Any]:
        """About the requesting connection (nats-server's UserInfo)."""
        entry = self.sup.clients.get(req.client_id) if req.client_id is not None else None
        out: dict[str, Any] = {"user": (entry.user if entry else None) or "", "account": req.account}
        names = self.sup.name_tags(req.account, entry.jwt if entry else None)
        out["account_name"] = names[0]
        if names[1]:
            out["user_name"] = names[1]
        perms = _public_permissions(entry.permissions if entry else None)
        if perms:
            out["permissions"] = perms
        if entry is not None and entry.expires:
            out["expires"] = max(0, int((entry.expires - time.time()) * 1e9))
        return out

    # -- events --------------------------------------------------------------------------

    def client_event(self, cid: int, entry: ClientEntry, closed: M.ClientClosed | None = None) -> None:
        """``$SYS.ACCOUNT.<acc>.CONNECT`` (``closed`` None) or ``.DISCONNECT``."""
        kind = b"DISCONNECT" if closed else b"CONNECT"
        self._client_event(b"$SYS.ACCOUNT." + entry.account.encode() + b"." + kind, cid, entry, closed)

    def server_event(self, kind: str) -> None:
        """``$SYS.SERVER.<id>.SHUTDOWN`` or ``.LAMEDUCK``: the server block alone."""
        sys_acc = self.sup.system_account_name()
        if sys_acc is None or not self.sup.account_conns.get(sys_acc):
            return
        subject = f"$SYS.SERVER.{self.sup.server_id}.{kind}".encode()
        self.sup.publish(sys_acc, subject, msgspec.json.encode(self.server_info()))

    def auth_error_event(self, cid: int, host: str, start: float, attempt: ConnectOptions | None) -> None:
        """``$SYS.SERVER.<id>.CLIENT.AUTH.ERR``: a client refused with
        ``Authorization Violation``, as nats-server reports it (the user it
        claimed to be, in the global account)."""
        from supervisor.server import ClientEntry

        user = (attempt.user or attempt.nkey) if attempt is not None else None
        ci = M.ConnectInfo(name=attempt.name, lang=attempt.lang, version=attempt.version) if attempt else None
        entry = ClientEntry(-1, "$G", user, None, host=host, start=start, connect=ci)
        closed = M.ClientClosed(client_id=cid, account="$G", reason="Authentication Failure")
        self._client_event(b"$SYS.SERVER." + self.sup.server_id.encode() + b".CLIENT.AUTH.ERR", cid, entry, closed)

    def _client_event(self, subject: bytes, cid: int, entry: ClientEntry, closed: M.ClientClosed | None) -> None:
        """One advisory into the system account, in nats-server's shape.
        Skipped while no client of the system account is connected: nobody
        could be subscribed, and a connection storm then costs no control
        messages."""
        sys_acc = self.sup.system_account_name()
        if sys_acc is None or not self.sup.account_conns.get(sys_acc):
            return
        now = time.time()
        ci = entry.connect
        client: dict[str, Any] = {
            "start": rfc3339(entry.start),
            "host": entry.host,
            "id": cid,
            "acc": entry.account,
            "user": entry.user or "",
            "name": (ci.name if ci else None) or "",
            "lang": (ci.lang if ci else None) or "",
            "ver": (ci.version if ci else None) or "",
        }
        if closed is not None:
            client["rtt"] = int(closed.rtt * 1e9)
            client["stop"] = rfc3339(now)
        client.update(name_tag=self.sup.name_tags(entry.account, entry.jwt)[0], kind="Client", client_type="nats")
        event: dict[str, Any] = {
            "type": "io.nats.server.advisory.v1.client_" + ("disconnect" if closed else "connect"),
            "id": _nuid(),
            "timestamp": rfc3339(now),
            "server": self.server_info(),
            # omitempty, as nats-server; the client's JWT is never repeated (docs/security.md)
            "client": {k: v for k, v in client.items() if v not in ("", 0, None)},
        }
        if closed is not None:
            event["sent"] = {"msgs": closed.in_msgs, "bytes": closed.in_bytes}
            event["received"] = {"msgs": closed.out_msgs, "bytes": closed.out_bytes}
            event["reason"] = closed.reason
        self.sup.publish(sys_acc, subject, msgspec.json.encode(event))

    # -- envelope and options ------------------------------------------------------------

    def server_info(self) -> dict[str, Any]:
        sup = self.sup
        return {
            "name": sup.opts.server_name or sup.server_id,
            "host": sup.opts.host,
            "id": sup.server_id,
            "ver": sup.info.get("version", ""),
            "jetstream": False,
            "flags": 0,
            "seq": self._next_seq(),
            "time": rfc3339(time.time()),
        }

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _envelope(self, *, data: Any = msgspec.UNSET, error: tuple[int, str] | None = None) -> bytes:
        out: dict[str, Any] = {"server": self.server_info()}
        if data is not msgspec.UNSET:
            out["data"] = data
        if error is not None:
            out["error"] = {"code": error[0], "description": error[1]}
        return msgspec.json.encode(out)

    @staticmethod
    def _options(payload: bytes) -> dict[str, Any]:
        if not payload.strip():
            return {}
        try:
            opts = msgspec.json.decode(payload)
        except (msgspec.DecodeError, RecursionError) as e:  # deep nesting is the client's error too
            raise BadRequest(str(e)) from None
        if not isinstance(opts, dict):
            raise BadRequest(f"json: cannot unmarshal {_JSON_TYPES.get(type(opts), 'value')} into Go value of type options")
        for key, value in opts.items():
            want = _OPTION_TYPES.get(key)
            if want is None or value is None:
                continue
            typ, go = want
            ok = isinstance(value, typ) and (typ is bool or not isinstance(value, bool))
            if ok and typ is list:
                ok = all(isinstance(x, str) for x in value)
            if ok and typ is int:
                ok = (0 if go == "uint64" else -(1 << 63)) <= value < (1 << (64 if go == "uint64" else 63))
            if not ok:
                got = _JSON_TYPES.get(type(value), "value")
                what = f"number {value}" if got == "number" else got
                raise BadRequest(f"json: cannot unmarshal {what} into Go struct field .{key} of type {go}")
        return opts

    def _filter(self, opts: dict[str, Any]) -> None:
        """nats-server's EventFilterOptions: a request naming another server,
        host, cluster, tag or JetStream domain is not for us."""
        name = self.sup.opts.server_name or self.sup.server_id
        host = self.sup.opts.host
        exact = bool(opts.get("exact_match"))
        for key, ours in (("server_name", name), ("host", host), ("cluster", "")):
            want = opts.get(key)
            if isinstance(want, str) and want and (want != ours if exact else want not in ours):
                raise _Skip
        if opts.get("tags") or opts.get("domain"):
            raise _Skip  # natsd has no server tags and no JetStream domain


def _query(ep: str, opts: dict[str, Any]) -> dict[str, list[str]]:
    """Request options as the monitor's query parameters."""
    q: dict[str, list[str]] = {}
    for key, param in _QUERY_KEYS.get(ep, {}).items():
        value = opts.get(key)
        if value is None or value == "":
            continue
        q[param] = ["true" if value is True else "false" if value is False else str(value)]
    if ep == "CONNZ":
        if opts.get("subscriptions_detail"):
            q["subs"] = ["detail"]
        elif opts.get("subscriptions"):
            q["subs"] = ["true"]
        state = opts.get("state")
        if isinstance(state, int) and not isinstance(state, bool):
            # A state nats-server does not know selects no connection.
            q["state"] = [_CONN_STATES.get(state, "none")]
    return q


def _public_permissions(p: Permissions | None) -> dict[str, Any]:
    """nats-server's ``publicPermissions``: allow/deny lists and responses."""
    if p is None:
        return {}
    out: dict[str, Any] = {}
    for name, sp in (("publish", p.publish), ("subscribe", p.subscribe)):
        if sp is None:
            continue
        lists = {k: list(v) for k, v in (("allow", sp.allow), ("deny", sp.deny)) if v}
        if lists:
            out[name] = lists
    if p.allow_responses is not None:
        out["responses"] = {"max": p.allow_responses.max_msgs, "ttl": int(p.allow_responses.expires * 1e9)}
    return out


def _nuid() -> str:
    """An event id in the shape of nats-server's NUIDs (22 base-62 characters)."""
    return "".join(secrets.choice(_BASE62) for _ in range(22))

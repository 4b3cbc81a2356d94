"""An account as a worker sees it: an isolated subject namespace.

Theory of operation
-------------------
Every account lives on exactly one worker (see ``natsd.sharding``), so
all of its publishers and subscribers meet in this process and routing is a
local operation: match the subject in the account's :class:`Sublist`, then
append a ``MSG``/``HMSG`` frame to each target client's outbound buffer. The
clients are flushed once per read batch by the worker (never once per
message), which is the single biggest performance lever measured in
``python-ceilings.md``.

Isolation is structural: a client only ever holds a reference to its own
account's sublist, so no subject of another account can match.

Cross-account copies: a sublist entry whose ``client`` is None is a *shadow*
standing for an importing account (see :mod:`natsd.worker.router`). Shadows
that match are collected per import and forwarded once each, after the local
deliveries; a copy delivered through an import (``via_import``) never
matches shadows again, so imports do not chain.

Queue groups: each message goes to every plain subscriber and to exactly one
member of each matching queue group, picked at random; if the member's
connection may not receive the subject (delivery-time permission filter) or
is the publisher with ``echo: false``, another member is tried.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from natsd.subjects.sublist import Sublist

if TYPE_CHECKING:
    from natsd.worker.client import Client, Sub
    from natsd.worker.router import Router, ShadowTarget


# Requests per second (and burst) an account other than the system account
# may send to the supervisor's monitoring API: it is one process serving every
# account, and the operators' own requests must get through a tenant's flood.
API_RATE = 50.0
API_BURST = 100


class Account:
    __slots__ = (
        "api_tokens",
        "api_updated",
        "clients",
        "exports_services",
        "in_bytes",
        "in_msgs",
        "name",
        "out_bytes",
        "out_msgs",
        "router",
        "service_imports",
        "stream_imports",
        "sublist",
    )

    def __init__(self, name: str, router: Router) -> None:
        self.name = name
        self.router = router
        self.stream_imports = router.has_stream_imports(name)
        self.service_imports = router.has_service_imports(name)
        self.exports_services = router.exports_services(name)
        self.sublist: Sublist[Sub] = Sublist()
        self.clients: dict[int, Client] = {}
        self.in_msgs = 0
        self.in_bytes = 0
        self.out_msgs = 0
        self.out_bytes = 0
        # Token bucket for the $SYS.REQ subjects this account may use (see
        # Worker.forward_system_request).
        self.api_tokens = float(API_BURST)
        self.api_updated = 0.0

    def take_api_token(self, now: float) -> bool:
        """One ``$SYS.REQ`` request's worth of the account's budget, if left."""
        self.api_tokens = min(float(API_BURST), self.api_tokens + (now - self.api_updated) * API_RATE)
        self.api_updated = now
        if self.api_tokens < 1.0:
            return False
        self.api_tokens -= 1.0
        return True

    def route(
        self, src: Client | None, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes, via_import: bool = False
    ) -> int:
        """Deliver one published message; returns the number of deliveries."""
        result = self.sublist.match(subject)
        delivered = 0
        echo = src.echo if src is not None else True
        shadows: dict[tuple[str, int], ShadowTarget] | None = None
        for sub in result.psubs:
            c = sub.client
            if c is None:
                if not via_import:
                    if shadows is None:
                        shadows = {}
                    shadows[sub.imp.key] = sub.imp
                continue
            if c is src and not echo:
                continue
            if sub.filtered and not c.may_deliver(subject, None):
                continue
            c.deliver(sub, subject, reply, hdr_len, data)
            delivered += 1
        for group in result.qsubs:
            if _deliver_queue(group, src, echo, subject, reply, hdr_len, data):
                delivered += 1
        if shadows is not None:
            forward = self.router.forward_stream
            for target in shadows.values():
                delivered += forward(target, subject, reply, hdr_len, data)
        if delivered:
            self.out_msgs += delivered
            self.out_bytes += delivered * len(data)
        return delivered

    def route_run(
        self, src: Client | None, subject: bytes, run: list[bytes], nbytes: int, via_import: bool = False
    ) -> int:
        """Deliver consecutive messages with the same subject, no reply, no headers.

        One match and one buffer append per target for the whole run (the
        parser groups frames that share a control line); import shadows get
        the whole run too (one mapping, one record across workers). Anything
        that needs a per-message decision (queue groups, delivery filters,
        auto-unsubscribe, two subscriptions of one connection) takes the
        per-message path instead."""
        result = self.sublist.match(subject)
        psubs = result.psubs
        if not psubs and not result.qsubs:
            return 0
        real = [s for s in psubs if s.client is not None]
        if (
            result.qsubs
            or any(s.filtered or s.max_msgs for s in real)
            # Two subscriptions of one connection: frames must interleave
            # message by message, as nats-server writes them.
            or (len(real) > 1 and len({id(s.client) for s in real}) < len(real))
        ):
            n = 0
            for data in run:
                n += self.route(src, subject, None, -1, data, via_import)
            return n
        echo = src.echo if src is not None else True
        delivered = 0
        for sub in real:
            c = sub.client
            assert c is not None
            if c is src and not echo:
                continue
            c.deliver_run(sub, subject, run, nbytes)
            delivered += 1
        if delivered:
            self.out_msgs += delivered * len(run)
            self.out_bytes += delivered * nbytes
        if not via_import and len(real) < len(psubs):
            targets = {s.imp.key: s.imp for s in psubs if s.client is None}
            forward = self.router.forward_stream_run
            for target in targets.values():
                delivered += forward(target, subject, run, nbytes)
        return delivered

    def has_clients(self) -> bool:
        return bool(self.clients)


def _deliver_queue(
    group: tuple[Sub, ...],
    src: Client | None,
    echo: bool,
    subject: bytes,
    reply: bytes | None,
    hdr_len: int,
    data: bytes,
) -> bool:
    n = len(group)
    start = random.randrange(n) if n > 1 else 0
    for i in range(n):
        sub = group[(start + i) % n]
        c = sub.client
        # Shadows are never queue members, so c is a real client here.
        assert c is not None
        if c is src and not echo:
            continue
        if sub.filtered and not c.may_deliver(subject, sub.queue):
            continue
        c.deliver(sub, subject, reply, hdr_len, data)
        return True
    return False

"""An account as a worker sees it: an isolated subject namespace.

Theory of operation
-------------------
Every account lives on exactly one worker (see ``supervisor.sharding``), so
all of its publishers and subscribers meet in this process and routing is a
local operation: match the subject in the account's :class:`Sublist`, then
append a ``MSG``/``HMSG`` frame to each target client's outbound buffer. The
clients are flushed once per read batch by the worker (never once per
message), which is the single biggest performance lever measured in
``python-ceilings.md``.

Isolation is structural: a client only ever holds a reference to its own
account's sublist, so no subject of another account can match.

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


class Account:
    __slots__ = ("clients", "in_bytes", "in_msgs", "name", "out_bytes", "out_msgs", "sublist")

    def __init__(self, name: str) -> None:
        self.name = name
        self.sublist: Sublist[Sub] = Sublist()
        self.clients: dict[int, Client] = {}
        self.in_msgs = 0
        self.in_bytes = 0
        self.out_msgs = 0
        self.out_bytes = 0

    def route(self, src: Client | None, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes) -> int:
        """Deliver one published message; returns the number of deliveries."""
        result = self.sublist.match(subject)
        delivered = 0
        echo = src.echo if src is not None else True
        for sub in result.psubs:
            c = sub.client
            if c is src and not echo:
                continue
            if sub.filtered and not c.may_deliver(subject, None):
                continue
            c.deliver(sub, subject, reply, hdr_len, data)
            delivered += 1
        for group in result.qsubs:
            if _deliver_queue(group, src, echo, subject, reply, hdr_len, data):
                delivered += 1
        if delivered:
            self.out_msgs += delivered
            self.out_bytes += delivered * len(data)
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
        if c is src and not echo:
            continue
        if sub.filtered and not c.may_deliver(subject, sub.queue):
            continue
        c.deliver(sub, subject, reply, hdr_len, data)
        return True
    return False

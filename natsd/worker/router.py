"""Cross-account traffic: stream and service imports, inside and across workers.

Theory of operation
-------------------
Accounts are isolated subject spaces; exports and imports are the only
bridges (the pure tables are in :mod:`natsd.worker.imports`). Each account
lives on one worker, so a bridge joins two accounts that may sit on the same
worker (direct path: a function call) or on different workers (a record on
the shared-memory ring to the peer worker, see :mod:`natsd.ipc.ring`).

Stream imports work through *shadow subscriptions*, as in nats-server: when a
subscription appears in importer B, :meth:`ImportTable.shadows` names the
pattern it implies in exporter A. The worker that owns A keeps one shadow
subscription per (importer, import, pattern) in A's sublist, reference
counted. If B lives on another worker, B's worker sends an *interest* record
(+1/-1) over the ring instead. So a message in A matches a shadow only when
some subscriber in B wants it: nothing enters a ring without interest.
Matching shadows are collected per import (a message reaching two shadows of
the same import is forwarded once) and the copy is delivered in B with
``via_import`` set, which keeps imports from chaining, as nats-server does.

Service imports: a publish in B on an imported service subject is re-published
in A on the mapped subject with a fresh ``_R_.`` reply that the worker owning
A tracks (:class:`ResponseTracker`); A's responses on that reply are routed
back to B's original reply subject, honouring the response type, and the
mapping goes when it is done or its threshold passes. If a request reaches no
one in A and B's client asked for no-responders, a 503 goes back to B.

Every record is msgpack-encoded as a small tuple; ring records are staged
during a read batch and published once, when the worker flushes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from natsd.config.schema import Account as AccountConfig
from natsd.sharding import worker_for
from natsd.worker.imports import ImportTable, StreamImportRoute
from natsd.worker.imports_replies import ResponseTracker, reply_token

if TYPE_CHECKING:
    from natsd.worker.account import Account
    from natsd.worker.client import Client, Sub

log = logging.getLogger("natsd.router")

K_DELIVER = 1  # (account, subject, reply, hdr_len, data)
K_SERVICE = 2  # (exporter, subject, importer, reply, rtype, threshold, want_503, orig, hdr_len, data)
K_NORESP = 3  # (importer, reply, orig_subject)
K_INTEREST = 4  # (importer, route index, pattern, delta)
K_DELIVER_RUN = 5  # (account, subject, [payload, ...]): a PUB run, no reply or headers

MAP_CACHE_MAX = 1024  # mapped subjects remembered per import shadow
RUN_RECORD_BYTES = 32 * 1024  # payload bytes per K_DELIVER_RUN record

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(list)


class ShadowTarget:
    """What a shadow subscription in the exporter forwards to."""

    __slots__ = ("importer", "key", "mapped", "route")

    def __init__(self, importer: str, route: StreamImportRoute, key: tuple[str, int]) -> None:
        self.importer = importer
        self.route = route
        self.key = key
        # exporter subject -> importer subject (bounded; mapping is pure)
        self.mapped: dict[bytes, bytes | None] = {}


class Router:
    def __init__(self, worker_id: int, workers: int, send: Callable[[int, int, bytes], bool]) -> None:
        self.worker_id = worker_id
        self.workers = workers
        self._send = send
        self.table = ImportTable.build(())
        self.tracker = ResponseTracker()
        self._seed = int.from_bytes(os.urandom(6), "big")
        self._n = 0
        # interest created by subscriptions on this worker: key -> count
        self.local_interest: dict[tuple[str, int, bytes], int] = {}
        # shadows installed in exporter accounts on this worker: key -> (sub, refs)
        self.shadows: dict[tuple[str, int, bytes], list[Any]] = {}
        self.accounts_of: Callable[[str], Account | None] = lambda name: None
        self.counters = {
            "stream_local": 0,
            "stream_remote": 0,
            "service_local": 0,
            "service_remote": 0,
            "responses": 0,
            "no_responders": 0,
            "dropped": 0,
            "received": 0,
        }

    def configure(self, accounts: tuple[AccountConfig, ...]) -> None:
        self.table.update(accounts)

    def is_local(self, account: str) -> bool:
        return worker_for(account, self.workers) == self.worker_id

    def _route_index(self, route: StreamImportRoute) -> int:
        return self.table.by_importer.get(route.importer, ()).index(route)

    # -- flags the hot path reads -----------------------------------------
    def has_stream_imports(self, account: str) -> bool:
        return account in self.table.by_importer

    def has_service_imports(self, account: str) -> bool:
        return account in self.table.services

    def exports_services(self, account: str) -> bool:
        return any(r.exporter == account for routes in self.table.services.values() for r in routes)

    # -- interest (stream imports) ----------------------------------------
    def subscribe(self, importer: str, sub: Sub) -> list[tuple[str, int, bytes]]:
        """Register the interest a new subscription in ``importer`` implies."""
        keys = []
        for sh in self.table.shadows(importer, sub.subject):
            key = (importer, self._route_index(sh.route), sh.subject)
            n = self.local_interest.get(key, 0) + 1
            self.local_interest[key] = n
            keys.append(key)
            if n == 1:
                self._interest(sh.route.exporter, key, +1)
        return keys

    def unsubscribe(self, keys: list[tuple[str, int, bytes]]) -> None:
        for key in keys:
            n = self.local_interest.get(key, 0) - 1
            if n > 0:
                self.local_interest[key] = n
                continue
            self.local_interest.pop(key, None)
            route = self.table.by_importer.get(key[0], ())[key[1]]
            self._interest(route.exporter, key, -1)

    def _interest(self, exporter: str, key: tuple[str, int, bytes], delta: int) -> None:
        if self.is_local(exporter):
            self.apply_interest(key, delta)
        else:
            self._stage(exporter, K_INTEREST, [key[0], key[1], key[2], delta])

    def apply_interest(self, key: tuple[str, int, bytes], delta: int) -> None:
        """Install or drop a shadow subscription in the (local) exporter."""
        from natsd.worker.client import Sub

        importer, idx, pattern = key
        routes = self.table.by_importer.get(importer, ())
        if idx >= len(routes):
            return
        route = routes[idx]
        entry = self.shadows.get(key)
        if entry is None:
            if delta <= 0:
                return
            acc = self.accounts_of(route.exporter)
            if acc is None:
                return
            sub = Sub(None, pattern, None, b"")  # type: ignore[arg-type]
            sub.imp = ShadowTarget(importer, route, (importer, idx))
            acc.sublist.insert(sub)
            self.shadows[key] = [sub, delta, acc]
            return
        entry[1] += delta
        if entry[1] <= 0:
            del self.shadows[key]
            entry[2].sublist.remove(entry[0])

    def resend_interest(self, peer: int) -> None:
        """A peer worker (re)attached: tell it all our interest in its accounts."""
        for key in self.local_interest:
            route = self.table.by_importer.get(key[0], ())[key[1]]
            if worker_for(route.exporter, self.workers) == peer:
                self._stage(route.exporter, K_INTEREST, [key[0], key[1], key[2], 1])

    def forget_peer(self, peer: int) -> None:
        """A peer died: drop the shadows its subscriptions had installed here."""
        for key, entry in list(self.shadows.items()):
            if worker_for(key[0], self.workers) == peer:
                del self.shadows[key]
                entry[2].sublist.remove(entry[0])

    # -- stream copies ----------------------------------------------------
    def forward_stream(self, target: ShadowTarget, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes) -> int:
        mapped = _mapped(target, subject)
        if mapped is None:
            return 0
        importer = target.importer
        if self.is_local(importer):
            acc = self.accounts_of(importer)
            self.counters["stream_local"] += 1
            return acc.route(None, mapped, reply, hdr_len, data, True) if acc is not None else 0
        self.counters["stream_remote"] += 1
        return 1 if self._stage(importer, K_DELIVER, [importer, mapped, reply, hdr_len, data]) else 0

    def forward_stream_run(self, target: ShadowTarget, subject: bytes, run: list[bytes], nbytes: int) -> int:
        """A whole PUB run through one import: mapped once, one ring record."""
        mapped = _mapped(target, subject)
        if mapped is None:
            return 0
        importer = target.importer
        if self.is_local(importer):
            acc = self.accounts_of(importer)
            self.counters["stream_local"] += len(run)
            return acc.route_run(None, mapped, run, nbytes, True) if acc is not None else 0
        self.counters["stream_remote"] += len(run)
        # Keep each ring record well under the ring's largest payload.
        ok = True
        chunk: list[bytes] = []
        size = 0
        for payload in run:
            if chunk and size + len(payload) > RUN_RECORD_BYTES:
                ok = self._stage(importer, K_DELIVER_RUN, [importer, mapped, chunk]) and ok
                chunk, size = [], 0
            chunk.append(payload)
            size += len(payload) + 8
        ok = self._stage(importer, K_DELIVER_RUN, [importer, mapped, chunk]) and ok
        return 1 if ok else 0

    # -- services ---------------------------------------------------------
    def service_request(self, client: Client, subject: bytes, reply: bytes | None, hdr_len: int, data: bytes) -> int:
        importer = client.account.name
        delivered = 0
        for t in self.table.service_targets(importer, subject):
            if self.is_local(t.exporter):
                self.counters["service_local"] += 1
                delivered += self._request_in_exporter(
                    t.exporter, t.subject, importer, reply, t.response_type, t.threshold, hdr_len, data
                )
            else:
                self.counters["service_remote"] += 1
                rec = [t.exporter, t.subject, importer, reply, t.response_type, t.threshold,
                       bool(client.no_responders), subject, hdr_len, data]
                if self._stage(t.exporter, K_SERVICE, rec):
                    delivered += 1  # the exporter's worker answers 503 itself if needed
        return delivered

    def _request_in_exporter(
        self, exporter: str, subject: bytes, importer: str, reply: bytes | None,
        rtype: str, threshold: float, hdr_len: int, data: bytes,
    ) -> int:
        acc = self.accounts_of(exporter)
        if acc is None:
            return 0
        mapped_reply = None
        if reply is not None:
            self._n += 1
            token = reply_token(self._seed, self._n)
            mapped_reply = self.tracker.track(exporter, token, importer, reply, rtype, threshold, time.monotonic())
        n = acc.route(None, subject, mapped_reply, hdr_len, data, True)
        if n == 0 and mapped_reply is not None:
            self.tracker.discard(exporter, mapped_reply)
        return n

    def response(self, exporter: str, subject: bytes, hdr_len: int, data: bytes) -> int:
        """A publish on ``_R_.…`` in an exporting account: route it back."""
        r = self.tracker.route_response(exporter, subject, time.monotonic(), empty=not data)
        if r is None:
            return 0
        self.counters["responses"] += 1
        if self.is_local(r.importer):
            acc = self.accounts_of(r.importer)
            return acc.route(None, r.reply, None, hdr_len, data, True) if acc is not None else 0
        return 1 if self._stage(r.importer, K_DELIVER, [r.importer, r.reply, None, hdr_len, data]) else 0

    def expire(self) -> None:
        self.tracker.expire(time.monotonic())

    # -- ring records -----------------------------------------------------
    def _stage(self, account: str, kind: int, rec: list[Any]) -> bool:
        # Drops are counted by the worker: when no ring is attached, and
        # through the ring's on_drop hook when a ring is full.
        return self._send(worker_for(account, self.workers), kind, _enc.encode(rec))

    def receive(self, kind: int, payload: bytes) -> None:
        """One record from a peer worker's ring."""
        self.counters["received"] += 1
        rec = _dec.decode(payload)
        if kind == K_DELIVER:
            account, subject, reply, hdr_len, data = rec
            acc = self.accounts_of(account)
            if acc is not None:
                acc.route(None, subject, reply, hdr_len, data, True)
        elif kind == K_DELIVER_RUN:
            account, subject, run = rec
            acc = self.accounts_of(account)
            if acc is not None and run:
                acc.route_run(None, subject, run, sum(len(p) for p in run), True)
        elif kind == K_SERVICE:
            exporter, subject, importer, reply, rtype, threshold, want_503, orig, hdr_len, data = rec
            n = self._request_in_exporter(exporter, subject, importer, reply, rtype, threshold, hdr_len, data)
            if n == 0 and want_503 and reply is not None:
                self.counters["no_responders"] += 1
                self._stage(importer, K_NORESP, [importer, reply, orig])
        elif kind == K_NORESP:
            importer, reply, orig = rec
            acc = self.accounts_of(importer)
            if acc is not None:
                hdr = b"NATS/1.0 503\r\nNats-Subject: " + orig + b"\r\n\r\n"
                acc.route(None, reply, None, len(hdr), hdr, True)
        elif kind == K_INTEREST:
            importer, idx, pattern, delta = rec
            self.apply_interest((importer, idx, pattern), delta)

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "tracked_replies": len(self.tracker), "shadows": len(self.shadows)}


def _mapped(target: ShadowTarget, subject: bytes) -> bytes | None:
    """The importer-side subject for ``subject`` (cached: mapping is pure)."""
    cache = target.mapped
    if subject in cache:
        return cache[subject]
    if len(cache) >= MAP_CACHE_MAX:
        cache.clear()
    mapped = cache[subject] = target.route.map(subject)
    return mapped

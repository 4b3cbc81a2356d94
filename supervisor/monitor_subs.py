"""Subscription and per-account aggregation across workers for the monitor.

Theory of operation
-------------------
Each account lives on exactly one worker (``supervisor/sharding.py``), so
per-account numbers never need merging across workers; server-wide numbers
(``/subsz``) do. Sublist statistics merge the way their definitions allow:
counts add up, ``max_fanout`` is a maximum, ``cache_hit_rate`` is recomputed
as total hits over total matches, and ``avg_fanout`` is weighted by the
number of cached subjects each index contributed.

Two worker reports are optional (newer workers send them, older ones do not):

* ``Stats.account_stats``: one record per account with cumulative traffic
  counters and the account's ``Sublist.stats()``;
* ``ConnStats.subs_detail``: per subscription sid, queue group and delivered
  count.

Without them, numbers are derived from the per-connection counters, which
only cover connections still open, and the sublist cache figures are 0.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

from natsd.ipc import messages as M
from supervisor.monitor_format import gofloat

SUBLIST_COUNTS = ("num_subscriptions", "num_cache", "num_inserts", "num_removes", "num_matches")


@dataclasses.dataclass
class AccountSummary:
    name: str
    conns: int = 0
    subscriptions: int = 0
    in_msgs: int = 0
    in_bytes: int = 0
    out_msgs: int = 0
    out_bytes: int = 0
    slow_consumers: int = 0


def _account_records(s: M.Stats) -> list[Any]:
    return list(getattr(s, "account_stats", None) or [])


def account_summaries(stats: Iterable[M.Stats]) -> dict[str, AccountSummary]:
    """One summary per account that has a worker record or a connection."""
    out: dict[str, AccountSummary] = {}
    for s in stats:
        records = _account_records(s)
        if records:
            for r in records:
                out[r.name] = AccountSummary(
                    name=r.name,
                    conns=r.conns,
                    subscriptions=int(r.num_subscriptions),
                    in_msgs=r.in_msgs,
                    in_bytes=r.in_bytes,
                    out_msgs=r.out_msgs,
                    out_bytes=r.out_bytes,
                    slow_consumers=r.slow_consumers,
                )
            continue
        for c in s.connections:
            a = out.setdefault(c.account, AccountSummary(name=c.account))
            a.conns += 1
            a.subscriptions += c.subs
            a.in_msgs += c.in_msgs
            a.in_bytes += c.in_bytes
            a.out_msgs += c.out_msgs
            a.out_bytes += c.out_bytes
    return out


def merge_sublist_stats(stats: Iterable[M.Stats], account: str | None) -> dict[str, Any]:
    """nats-server's ``SublistStats`` for one account, or summed over all."""
    counts = dict.fromkeys(SUBLIST_COUNTS, 0)
    hits = 0.0
    fanout_weighted = 0.0
    max_fanout = 0
    for s in stats:
        records = _account_records(s)
        if not records:
            # Old worker: only the subscription count is known.
            if account is None:
                counts["num_subscriptions"] += s.subscriptions
            else:
                counts["num_subscriptions"] += sum(
                    c.subs for c in s.connections if c.account == account
                )
            continue
        for r in records:
            if account is not None and r.name != account:
                continue
            for k in SUBLIST_COUNTS:
                counts[k] += int(getattr(r, k))
            hits += r.cache_hit_rate * r.num_matches
            fanout_weighted += r.avg_fanout * r.num_cache
            max_fanout = max(max_fanout, int(r.max_fanout))
    out: dict[str, Any] = dict(counts)
    out["cache_hit_rate"] = gofloat(hits / counts["num_matches"]) if counts["num_matches"] else 0
    out["max_fanout"] = max_fanout
    out["avg_fanout"] = gofloat(fanout_weighted / counts["num_cache"]) if counts["num_cache"] else 0
    return out


def sub_entries(c: M.ConnStats, *, with_account: bool) -> list[dict[str, Any]]:
    """``SubDetail`` records for one connection (``/subsz`` and ``subs=detail``)."""
    out: list[dict[str, Any]] = []
    detail = getattr(c, "subs_detail", None)
    if detail:
        for d in detail:
            e: dict[str, Any] = (
                {"account": c.account, "account_tag": c.account} if with_account else {}
            )
            e["subject"] = d.subject
            if d.queue:
                e["qgroup"] = d.queue
            e.update(sid=d.sid, msgs=d.msgs, cid=c.cid)
            out.append(e)
        return out
    for subject in c.subjects:
        e = {"account": c.account, "account_tag": c.account} if with_account else {}
        e.update(subject=subject, cid=c.cid)
        out.append(e)
    return out

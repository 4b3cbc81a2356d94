"""Benchmarks for the subject index.

Run with ``.venv/bin/python -m pytest perf/test_bench_sublist.py --benchmark-enable -q``.

The populated index resembles a busy account: 10,000 literal subscriptions spread over a
``svc.<region>.<n>.<op>`` namespace, a few hundred ``*`` and ``>`` subscriptions, and
queue groups. "cached" benchmarks repeat one subject (the L2 cache hit, one dict
lookup); "uncached" ones use ``Sublist(cache=False)`` so every call walks the trie.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from natsd.subjects.sublist import Sublist, Subscription

REGIONS = [b"us", b"eu", b"ap", b"sa"]
OPS = [b"get", b"put", b"del"]


def populate(sl: Sublist[Subscription]) -> None:
    for region, i, op in itertools.product(REGIONS, range(834), OPS):
        queue = b"workers" if i % 10 == 0 else None
        sl.insert(Subscription(b"svc.%s.%d.%s" % (region, i, op), queue))
    for region in REGIONS:
        for i in range(0, 834, 10):
            sl.insert(Subscription(b"svc.%s.%d.*" % (region, i)))
        sl.insert(Subscription(b"svc.%s.>" % region))
    sl.insert(Subscription(b"svc.*.1.get"))
    sl.insert(Subscription(b">"))


@pytest.fixture(scope="module")
def cached() -> Sublist[Subscription]:
    sl: Sublist[Subscription] = Sublist()
    populate(sl)
    return sl


@pytest.fixture(scope="module")
def uncached() -> Sublist[Subscription]:
    sl: Sublist[Subscription] = Sublist(cache=False)
    populate(sl)
    return sl


def test_match_literal_cached(benchmark: Any, cached: Sublist[Subscription]) -> None:
    cached.match(b"svc.us.17.get")
    r = benchmark(cached.match, b"svc.us.17.get")
    assert len(r.psubs) == 3  # the literal, svc.us.>, >


def test_match_literal_uncached(benchmark: Any, uncached: Sublist[Subscription]) -> None:
    r = benchmark(uncached.match, b"svc.us.17.get")
    assert len(r.psubs) == 3


def test_match_wildcard_heavy_uncached(benchmark: Any, uncached: Sublist[Subscription]) -> None:
    # svc.eu.1.get hits a literal, svc.eu.1.*? no (1 % 10), svc.*.1.get, svc.eu.>, >.
    r = benchmark(uncached.match, b"svc.eu.1.get")
    assert len(r.psubs) == 4


def test_match_queue_uncached(benchmark: Any, uncached: Sublist[Subscription]) -> None:
    r = benchmark(uncached.match, b"svc.ap.20.put")
    assert len(r.qsubs) == 1


def test_match_no_interest_uncached(benchmark: Any) -> None:
    sl: Sublist[Subscription] = Sublist(cache=False)
    for i in range(1000):
        sl.insert(Subscription(b"a.%d" % i))
    r = benchmark(sl.match, b"b.1")
    assert not r.psubs


def test_match_rotating_subjects_cached(benchmark: Any, cached: Sublist[Subscription]) -> None:
    # More distinct subjects than the cache holds: misses, inserts and sweeps.
    subjects = itertools.cycle([b"svc.sa.%d.del" % i for i in range(2000)])

    def run() -> Any:
        return cached.match(next(subjects))

    benchmark(run)


def test_insert_remove_literal(benchmark: Any, cached: Sublist[Subscription]) -> None:
    sub = Subscription(b"svc.us.17.new")

    def run() -> None:
        cached.insert(sub)
        cached.remove(sub)

    benchmark(run)


def test_insert_remove_wildcard_inbox(benchmark: Any, cached: Sublist[Subscription]) -> None:
    # The common wildcard churn: a connecting client's ``_INBOX.<id>.*``, which
    # overlaps no cached subject; the cache scan is the whole cost.
    for i in range(1000):
        cached.match(b"svc.eu.%d.get" % i)
    sub = Subscription(b"_INBOX.p5QHqTUz2mTPD7Vb1q8r3K.*")

    def run() -> None:
        cached.insert(sub)
        cached.remove(sub)

    benchmark(run)


def test_insert_remove_wildcard_overlapping(benchmark: Any, cached: Sublist[Subscription]) -> None:
    # Worst case: the new wildcard matches every cached subject, so each insert
    # patches ~1000 results and each remove deletes them (then they are re-matched).
    subjects = [b"svc.eu.%d.get" % i for i in range(1000)]
    sub = Subscription(b"svc.eu.*.get")

    def run() -> None:
        for s in subjects:
            cached.match(s)
        cached.insert(sub)
        cached.remove(sub)

    benchmark(run)

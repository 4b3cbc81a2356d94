"""Benchmarks for per-connection subject permissions.

Run with ``.venv/bin/python -m pytest perf/test_bench_permissions.py --benchmark-enable -q``.

The user resembles a typical restricted service account: a dozen publish allow
patterns (literal, ``*`` and ``>``) with two deny entries, and a subscribe list with
plain and queue-qualified entries. "cached" benchmarks repeat one subject (the
per-connection verdict cache hit, one dict lookup); "uncached" ones rotate through
more distinct subjects than the cache holds (4096), so every call scans the pattern
lists and evicts a cache entry. ``can_subscribe`` has no cache (it runs once per SUB).
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from natsd.auth.permissions import CompiledPermissions
from natsd.config.schema import Permissions, ResponsePermission, SubjectPermission

PUB_ALLOW = (
    "orders.created", "orders.updated", "orders.*.cancel", "billing.>",
    "inventory.*.reserve", "inventory.*.release", "audit.>", "metrics.*.*",
    "svc.us.*.get", "svc.eu.*.get", "svc.ap.*.get", "_INBOX.>",
)
PUB_DENY = ("billing.internal.>", "audit.secret")
SUB_ALLOW = (
    "orders.>", "inventory.*.events", "svc.*.*.get workers", "svc.*.*.put workers",
    "_INBOX.>", "metrics.>",
)
SUB_DENY = ("orders.secret.*", "metrics.internal.>", "svc.*.admin.* workers")


def make(allow_responses: bool = False) -> CompiledPermissions:
    p = Permissions(
        publish=SubjectPermission(allow=PUB_ALLOW, deny=PUB_DENY),
        subscribe=SubjectPermission(allow=SUB_ALLOW, deny=SUB_DENY),
        allow_responses=ResponsePermission() if allow_responses else None,
    )
    cp = CompiledPermissions.build(p)
    assert cp is not None
    return cp


@pytest.fixture
def perms() -> CompiledPermissions:
    return make()


def _rotating(fmt: bytes, n: int = 10_000) -> Any:
    """More distinct subjects than the verdict cache holds, forever."""
    return itertools.cycle([fmt % i for i in range(n)])


# -- build ------------------------------------------------------------------------


def test_build(benchmark: Any) -> None:
    p = Permissions(
        publish=SubjectPermission(allow=PUB_ALLOW, deny=PUB_DENY),
        subscribe=SubjectPermission(allow=SUB_ALLOW, deny=SUB_DENY),
    )
    assert benchmark(CompiledPermissions.build, p) is not None


# -- can_publish --------------------------------------------------------------------


def test_can_publish_cached(benchmark: Any, perms: CompiledPermissions) -> None:
    perms.can_publish(b"svc.us.17.get", 0.0)
    assert benchmark(perms.can_publish, b"svc.us.17.get", 0.0)


def test_can_publish_uncached_allowed(benchmark: Any, perms: CompiledPermissions) -> None:
    # Matches the 11th allow pattern, then the two deny patterns are checked.
    subjects = _rotating(b"svc.ap.%d.get")
    assert perms.can_publish(next(subjects), 0.0)

    def run() -> bool:
        return perms.can_publish(next(subjects), 0.0)

    assert benchmark(run)


def test_can_publish_uncached_denied(benchmark: Any, perms: CompiledPermissions) -> None:
    # Allowed by billing.>, then refused by billing.internal.>.
    subjects = _rotating(b"billing.internal.%d")

    def run() -> bool:
        return perms.can_publish(next(subjects), 0.0)

    assert not benchmark(run)


def test_can_publish_uncached_no_match(benchmark: Any, perms: CompiledPermissions) -> None:
    # Worst case for the allow scan: every pattern is tried and none matches.
    subjects = _rotating(b"weather.%d.today")

    def run() -> bool:
        return perms.can_publish(next(subjects), 0.0)

    assert not benchmark(run)


def test_can_publish_tracked_reply(benchmark: Any) -> None:
    # allow_responses: a reply outside the allow list is admitted once per delivery.
    perms = make(allow_responses=True)
    replies = _rotating(b"reply.%d")

    def run() -> bool:
        reply = next(replies)
        perms.track_reply(reply, 1.0)
        return perms.can_publish(reply, 1.0)

    assert benchmark(run)


def test_unrestricted_fast_path(benchmark: Any) -> None:
    # What an unrestricted user costs the worker: build() gives None, one ``is None``.
    perms = CompiledPermissions.build(Permissions())

    def run() -> bool:
        return perms is None or perms.can_publish(b"svc.us.17.get", 0.0)

    assert benchmark(run)


# -- can_subscribe ------------------------------------------------------------------


def test_can_subscribe_literal(benchmark: Any, perms: CompiledPermissions) -> None:
    assert benchmark(perms.can_subscribe, b"orders.created", None)


def test_can_subscribe_wildcard_denied(benchmark: Any, perms: CompiledPermissions) -> None:
    # Admitted by the allow metrics.>, refused by the deny metrics.internal.>.
    assert not benchmark(perms.can_subscribe, b"metrics.internal.*", None)


def test_can_subscribe_queue(benchmark: Any, perms: CompiledPermissions) -> None:
    assert benchmark(perms.can_subscribe, b"svc.eu.3.get", b"workers")


def test_can_subscribe_queue_refused(benchmark: Any, perms: CompiledPermissions) -> None:
    # Queue entries for the subject exist and none matches this queue.
    assert not benchmark(perms.can_subscribe, b"svc.eu.3.get", b"others")


# -- can_deliver / needs_delivery_filter ----------------------------------------------


def test_can_deliver_cached(benchmark: Any, perms: CompiledPermissions) -> None:
    perms.can_deliver(b"orders.created", None)
    assert benchmark(perms.can_deliver, b"orders.created", None)


def test_can_deliver_cached_queue(benchmark: Any, perms: CompiledPermissions) -> None:
    # The cache key for a queue subscription is built per call (subject + b" " + queue).
    perms.can_deliver(b"svc.eu.3.get", b"workers")
    assert benchmark(perms.can_deliver, b"svc.eu.3.get", b"workers")


def test_can_deliver_uncached(benchmark: Any, perms: CompiledPermissions) -> None:
    subjects = _rotating(b"orders.%d.created")

    def run() -> bool:
        return perms.can_deliver(next(subjects), None)

    assert benchmark(run)


def test_can_deliver_uncached_denied(benchmark: Any, perms: CompiledPermissions) -> None:
    subjects = _rotating(b"orders.secret.%d")

    def run() -> bool:
        return perms.can_deliver(next(subjects), None)

    assert not benchmark(run)


def test_needs_delivery_filter(benchmark: Any, perms: CompiledPermissions) -> None:
    # orders.> is allowed but intersects the deny orders.secret.*: filter each message.
    assert benchmark(perms.needs_delivery_filter, b"orders.>", None)

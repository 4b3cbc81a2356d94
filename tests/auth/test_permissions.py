"""Subject permissions: publish, subscribe, delivery filter, reply tracking (spec §4)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.auth.permissions import (
    CompiledPermissions,
    queue_matches,
    reserved_publish,
    reserved_queue,
    reserved_reply,
)
from natsd.config.schema import Permissions, ResponsePermission, SubjectPermission
from natsd.subjects.tokens import has_wildcard, subject_is_subset, subject_matches


def _perms(
    pub_allow: tuple[str, ...] | None = None,
    pub_deny: tuple[str, ...] | None = None,
    sub_allow: tuple[str, ...] | None = None,
    sub_deny: tuple[str, ...] | None = None,
    responses: ResponsePermission | None = None,
    **kw: int,
) -> CompiledPermissions:
    p = Permissions(
        publish=SubjectPermission(allow=pub_allow, deny=pub_deny),
        subscribe=SubjectPermission(allow=sub_allow, deny=sub_deny),
        allow_responses=responses,
    )
    compiled = CompiledPermissions.build(p, **kw)
    assert compiled is not None
    return compiled


# -- build --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "p",
    [
        None,
        Permissions(),
        Permissions(publish=SubjectPermission(), subscribe=SubjectPermission(deny=())),
    ],
)
def test_unrestricted_builds_to_none(p: Permissions | None) -> None:
    assert CompiledPermissions.build(p) is None


# -- publish ------------------------------------------------------------------------------


def test_publish_allow_and_deny() -> None:
    c = _perms(pub_allow=("foo.>", "bar"), pub_deny=("foo.secret",))
    assert c.can_publish(b"foo.a", 0.0)
    assert c.can_publish(b"bar", 0.0)
    assert not c.can_publish(b"foo.secret", 0.0)  # deny wins
    assert not c.can_publish(b"baz", 0.0)
    assert not c.responses_enabled


def test_publish_deny_only() -> None:
    c = _perms(pub_deny=("$SYS.>",))
    assert c.can_publish(b"anything", 0.0)
    assert not c.can_publish(b"$SYS.REQ.SERVER.PING", 0.0)


# -- reserved names -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "reserved"),
    [
        (b"_R_.abc", True),
        (b"$JS.ACK.stream.x", True),
        (b"_GR_.x.y", True),
        (b"_INBOX.abc", False),
        (b"_R_", False),
        (b"x._R_.y", False),
    ],
)
def test_reserved_reply(reply: bytes, reserved: bool) -> None:
    assert reserved_reply(reply) is reserved


def test_reserved_publish() -> None:
    assert reserved_publish(b"_GR_.a", is_system=True)
    assert reserved_publish(b"_GR_.a", is_system=False)
    assert reserved_publish(b"$NRG.x", is_system=False)
    assert not reserved_publish(b"$NRG.x", is_system=True)
    assert not reserved_publish(b"foo", is_system=False)


def test_sys_queue_reserved_for_everyone() -> None:
    assert reserved_queue(b"_sys_") and not reserved_queue(b"sys") and not reserved_queue(None)
    assert not _perms(pub_deny=("x",)).can_subscribe(b"foo", b"_sys_")


# -- subscribe and the delivery filter ---------------------------------------------------------


def test_star_allow_admits_full_wildcard_sub_but_never_delivers_deeper() -> None:
    c = _perms(sub_allow=("foo.*",))
    assert c.can_subscribe(b"foo.>", None)  # nats-server's quirk, accepted
    assert c.needs_delivery_filter(b"foo.>", None)
    assert c.can_deliver(b"foo.a", None)
    assert not c.can_deliver(b"foo.a.b", None)  # natsd is stricter than nats-server
    assert not c.needs_delivery_filter(b"foo.*", None)
    assert not c.can_subscribe(b"bar", None)
    assert not c.can_subscribe(b"foo.a.b", None)


def test_wildcard_sub_overlapping_deny_is_filtered() -> None:
    c = _perms(sub_allow=("foo.*",), sub_deny=("foo.baz",))
    assert c.can_subscribe(b"foo.*", None)
    assert c.needs_delivery_filter(b"foo.*", None)
    assert not c.can_deliver(b"foo.baz", None)
    assert c.can_deliver(b"foo.bar", None)
    assert not c.can_subscribe(b"foo.baz", None)


def test_intersecting_not_superset_deny_triggers_filter() -> None:  # advisory 2026-17
    c = _perms(sub_deny=("*.bar",))
    assert c.can_subscribe(b"foo.*", None)
    assert c.needs_delivery_filter(b"foo.*", None)
    assert not c.can_deliver(b"foo.bar", None)
    assert not c.needs_delivery_filter(b"baz.baz", None)


def test_sub_subset_of_deny_is_refused() -> None:
    c = _perms(sub_deny=("foo.>",))
    for s in (b"foo.a", b"foo.*", b"foo.>", b"foo.*.b"):
        assert not c.can_subscribe(s, None), s
    assert c.can_subscribe(b"*", None)
    assert c.can_subscribe(b">", None) and c.needs_delivery_filter(b">", None)


@pytest.mark.parametrize(
    ("allow", "queue", "ok"),
    [
        (("foo",), None, True),
        (("foo",), b"any", True),
        (("foo v1",), None, False),
        (("foo v1",), b"v1", True),
        (("foo v1",), b"v2", False),
        (("foo", "foo v1"), None, True),
        (("foo", "foo v1"), b"v1", True),
        (("foo", "foo v1"), b"v2", False),
        (("foo v.*",), b"v.1", True),
        (("foo v.*",), b"v.1.2", False),
        (("foo *",), b"*", True),
    ],
)
def test_queue_qualified_allow(allow: tuple[str, ...], queue: bytes | None, ok: bool) -> None:
    c = _perms(sub_allow=allow)
    assert c.can_subscribe(b"foo", queue) is ok
    assert c.can_deliver(b"foo", queue) is ok


def test_queue_deny_cannot_override_plain_deny() -> None:  # advisory 2026-18
    c = _perms(sub_deny=("foo.>", "foo.> q1"))
    assert not c.can_subscribe(b"foo.x", b"q2")
    assert not c.can_deliver(b"foo.x", b"q2")
    assert not c.can_subscribe(b"foo.x", None)


def test_queue_deny_with_wildcard_queue() -> None:
    c = _perms(sub_deny=("> *.prod",))
    assert not c.can_subscribe(b"orders", b"a.prod")
    assert not c.can_subscribe(b"orders.*", b"*.prod")
    assert c.can_subscribe(b"orders", b"dev")
    assert c.can_subscribe(b"orders", None)
    assert not c.needs_delivery_filter(b"orders", None)


def test_queue_deny_reaches_wildcard_queue_subs() -> None:  # CVE-2022-29946
    c = _perms(sub_deny=("foo.bar q1",))
    assert c.can_subscribe(b"foo.*", b"q1")
    assert c.needs_delivery_filter(b"foo.*", b"q1")
    assert not c.can_deliver(b"foo.bar", b"q1")
    assert c.can_deliver(b"foo.baz", b"q1")
    assert not c.needs_delivery_filter(b"foo.*", b"q2")
    assert c.can_deliver(b"foo.bar", b"q2")


# -- allow_responses ------------------------------------------------------------------------


def test_responses_default_to_one_reply_for_two_minutes() -> None:
    c = _perms(responses=ResponsePermission(max_msgs=0, expires=0))
    assert c.responses_enabled
    assert not c.can_publish(b"anything", 0.0)  # publish allow list forced to exist
    c.track_reply(b"_INBOX.a", 0.0)
    assert c.can_publish(b"_INBOX.a", 119.0)
    assert not c.can_publish(b"_INBOX.a", 119.5)
    c.track_reply(b"_INBOX.b", 0.0)
    assert not c.can_publish(b"_INBOX.b", 121.0)


def test_responses_max_and_expiry() -> None:
    c = _perms(responses=ResponsePermission(max_msgs=3, expires=10.0))
    c.track_reply(b"r", 100.0)
    assert [c.can_publish(b"r", 101.0) for _ in range(4)] == [True, True, True, False]
    c.track_reply(b"r", 200.0)
    assert not c.can_publish(b"r", 210.5)
    assert not c.can_publish(b"never-tracked", 200.0)


def test_tracked_reply_bypasses_publish_deny() -> None:
    c = _perms(pub_allow=("app.>",), pub_deny=("_INBOX.>",), responses=ResponsePermission())
    assert not c.can_publish(b"_INBOX.x", 0.0)
    c.track_reply(b"_INBOX.x", 0.0)
    assert c.can_publish(b"_INBOX.x", 1.0)


def test_statically_allowed_replies_are_not_tracked() -> None:
    c = _perms(pub_allow=("_INBOX.>",), responses=ResponsePermission())
    c.track_reply(b"_INBOX.x", 0.0)
    assert c.tracked_replies == 0
    assert c.can_publish(b"_INBOX.x", 0.0) and c.can_publish(b"_INBOX.x", 0.0)


def test_reply_table_is_bounded_and_evicts_oldest() -> None:
    c = _perms(responses=ResponsePermission(max_msgs=1, expires=1e9), max_replies=8)
    for i in range(20):
        c.track_reply(b"r.%d" % i, float(i) * 1e-3)
    assert c.tracked_replies == 8
    assert not c.can_publish(b"r.0", 1.0)
    assert not c.can_publish(b"r.11", 1.0)
    assert all(c.can_publish(b"r.%d" % i, 1.0) for i in range(12, 20))
    assert c.tracked_replies == 0  # used-up entries are released immediately


def test_expired_replies_are_pruned() -> None:
    c = _perms(responses=ResponsePermission(max_msgs=5, expires=10.0))
    for i in range(100):
        c.track_reply(b"old.%d" % i, 0.0)
    c.track_reply(b"new", 50.0)
    assert c.tracked_replies == 1


def test_refreshing_a_reply_makes_it_newest() -> None:
    c = _perms(responses=ResponsePermission(max_msgs=1, expires=1e9), max_replies=2)
    c.track_reply(b"a", 0.0)
    c.track_reply(b"b", 0.0)
    c.track_reply(b"a", 0.0)
    c.track_reply(b"c", 0.0)  # evicts b, the oldest
    assert c.can_publish(b"a", 0.0) and c.can_publish(b"c", 0.0)
    assert not c.can_publish(b"b", 0.0)


# -- models ----------------------------------------------------------------------------------

_TOK = ["a", "b", "c"]
UNIVERSE = [".".join(t).encode() for n in range(1, 5) for t in itertools.product(_TOK, repeat=n)]
QUEUES: list[bytes | None] = [None, b"q1", b"q2", b"g.x"]

_pattern = st.builds(
    lambda toks, fwc: ".".join(toks + ([">"] if fwc else [])),
    st.lists(st.sampled_from(["a", "b", "*"]), min_size=1, max_size=3),
    st.booleans(),
)
_queue_pat = st.sampled_from(["q1", "q2", "g.*"])
_sub_entry = st.one_of(_pattern, st.builds(lambda p, q: f"{p} {q}", _pattern, _queue_pat))
_entries = st.one_of(st.none(), st.lists(_sub_entry, max_size=4).map(tuple))
_pub_entries = st.one_of(st.none(), st.lists(_pattern, max_size=4).map(tuple))


def _split(entries: tuple[str, ...] | None) -> list[tuple[bytes, bytes | None]]:
    out: list[tuple[bytes, bytes | None]] = []
    for e in entries or ():
        parts = e.split()
        out.append((parts[0].encode(), parts[1].encode() if len(parts) > 1 else None))
    return out


def _qmatch(queue: bytes, pat: bytes) -> bool:
    return queue == pat or (has_wildcard(pat) and subject_is_subset(queue, pat))


def model_deliver(
    allow: tuple[str, ...] | None, deny: tuple[str, ...] | None, subj: bytes, queue: bytes | None
) -> bool:
    """Spec §4.3 on a literal subject, with plain denies always winning."""
    if allow is not None:
        hits = [(p, q) for p, q in _split(allow) if subject_matches(p, subj)]
        plain_hit = any(q is None for _, q in hits)
        queue_hits = [q for _, q in hits if q is not None]
        if queue is not None and queue_hits:
            ok = any(_qmatch(queue, q) for q in queue_hits)
        else:
            ok = plain_hit
        if not ok:
            return False
    for p, q in _split(deny):
        if subject_matches(p, subj) and (q is None or (queue is not None and _qmatch(queue, q))):
            return False
    return True


def model_publish(allow: tuple[str, ...] | None, deny: tuple[str, ...] | None, subj: bytes) -> bool:
    ok = allow is None or any(subject_matches(p.encode(), subj) for p in allow)
    return ok and not any(subject_matches(d.encode(), subj) for d in deny or ())


@settings(max_examples=150, deadline=None)
@given(allow=_pub_entries, deny=_pub_entries)
def test_publish_matches_model(allow: tuple[str, ...] | None, deny: tuple[str, ...] | None) -> None:
    c = CompiledPermissions.build(Permissions(publish=SubjectPermission(allow=allow, deny=deny)))
    for subj in UNIVERSE + UNIVERSE[:10]:  # second pass is served from the cache
        expected = model_publish(allow, deny, subj)
        assert (c is None or c.can_publish(subj, 0.0)) is expected, subj


@settings(max_examples=150, deadline=None)
@given(allow=_entries, deny=_entries)
def test_deliver_matches_model(allow: tuple[str, ...] | None, deny: tuple[str, ...] | None) -> None:
    c = CompiledPermissions.build(Permissions(subscribe=SubjectPermission(allow=allow, deny=deny)))
    for subj, queue in itertools.product(UNIVERSE, QUEUES):
        expected = model_deliver(allow, deny, subj, queue)
        got = c is None or c.can_deliver(subj, queue)
        assert got is expected, (subj, queue)
        # A literal SUB is allowed exactly when its messages are deliverable.
        assert c is None or c.can_subscribe(subj, queue) is expected


def _near_misses(*lists: tuple[str, ...] | None) -> list[str]:
    """SUBs that probe the edges of the configured patterns: the patterns themselves,
    a trailing ``*`` widened to ``>`` (nats-server's quirk) and one token deeper."""
    out: list[str] = []
    for entries in lists:
        for p, _ in _split(entries):
            pat = p.decode()
            out += [pat, pat + ".>", ">"]
            if pat.endswith("*"):
                out.append(pat[:-1] + ">")
    return out


@settings(max_examples=150, deadline=None)
@given(allow=_entries, deny=_entries, subs=st.lists(_pattern, min_size=1, max_size=4))
def test_unfiltered_subscriptions_only_cover_deliverable_subjects(
    allow: tuple[str, ...] | None, deny: tuple[str, ...] | None, subs: list[str]
) -> None:
    """Whatever SUB is accepted, a message reaches it only if the model allows it."""
    c = CompiledPermissions.build(Permissions(subscribe=SubjectPermission(allow=allow, deny=deny)))
    if c is None:
        return
    for sub, queue in itertools.product(subs + _near_misses(allow, deny), QUEUES):
        s = sub.encode()
        if not c.can_subscribe(s, queue):
            continue
        filtered = c.needs_delivery_filter(s, queue)
        for subj in UNIVERSE:
            if not subject_matches(s, subj):
                continue
            delivered = (not filtered) or c.can_deliver(subj, queue)
            if delivered:
                assert model_deliver(allow, deny, subj, queue), (sub, queue, subj)


@settings(max_examples=100, deadline=None)
@given(deny=st.lists(_pattern, min_size=1, max_size=3).map(tuple), sub=_pattern)
def test_plain_deny_always_wins(deny: tuple[str, ...], sub: str) -> None:
    c = _perms(sub_allow=(">", "> q1"), sub_deny=deny + tuple(f"{d} q2" for d in deny))
    s = sub.encode()
    if any(subject_is_subset(s, d.encode()) for d in deny):
        assert not any(c.can_subscribe(s, q) for q in QUEUES)
    for subj in UNIVERSE:
        if any(subject_matches(d.encode(), subj) for d in deny):
            assert not any(c.can_deliver(subj, q) for q in QUEUES)


def test_plain_allow_does_not_cover_a_queue_the_queue_entries_reject() -> None:
    c = _perms(sub_allow=("a.>", "a.b q1"))
    assert c.can_subscribe(b"a.*", b"q2")
    assert c.needs_delivery_filter(b"a.*", b"q2")
    assert not c.can_deliver(b"a.b", b"q2")
    assert c.can_deliver(b"a.c", b"q2")
    assert not c.needs_delivery_filter(b"a.*", b"q1")


def test_queue_matches() -> None:
    assert queue_matches(b"q1", b"q1")
    assert queue_matches(b"g.x", b"g.*")
    assert queue_matches(b"*", b"*")
    assert not queue_matches(b"g", b"g.*")
    assert not queue_matches(b"q1", b"q2")

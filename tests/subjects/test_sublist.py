"""Tests for natsd.subjects.sublist.

Every test runs twice, with and without the match cache (nats-server's
``sublist_test.go`` does the same), and the Hypothesis state machine checks random
insert/remove/match sequences against a brute-force model: a list of subs filtered
with ``subject_matches``. The cached variant uses a tiny cache so sweeping and
patching are exercised constantly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from natsd.subjects.sublist import (
    EMPTY_RESULT,
    InvalidSubjectError,
    Sublist,
    SublistResult,
    Subscription,
)
from natsd.subjects.tokens import subject_matches, subjects_intersect

Factory = Callable[[], Sublist[Subscription]]

FACTORIES: dict[str, Factory] = {
    "cache": lambda: Sublist(cache=True),
    "tinycache": lambda: Sublist(cache=True, cache_max=4, cache_sweep=1),
    "nocache": lambda: Sublist(cache=False),
}


@pytest.fixture(params=sorted(FACTORIES))
def sl(request: pytest.FixtureRequest) -> Sublist[Subscription]:
    return FACTORIES[request.param]()


def ids(subs: Any) -> set[int]:
    return {id(s) for s in subs}


def norm(r: SublistResult[Subscription]) -> tuple[set[int], dict[bytes | None, set[int]]]:
    """A result as (plain sub ids, queue name -> member ids), checking shape on the way."""
    assert len(set(map(id, r.psubs))) == len(r.psubs), "duplicate plain sub"
    groups: dict[bytes | None, set[int]] = {}
    for g in r.qsubs:
        assert g, "empty queue group in result"
        name = g[0].queue
        assert name is not None and name not in groups, "groups not merged by name"
        assert all(s.queue == name for s in g)
        assert len(ids(g)) == len(g), "duplicate queue member"
        groups[name] = ids(g)
    assert all(s.queue is None for s in r.psubs)
    return ids(r.psubs), groups


def expected(subs: list[Subscription], subject: bytes) -> tuple[set[int], dict[bytes | None, set[int]]]:
    hits = [s for s in subs if subject_matches(s.subject, subject)]
    groups: dict[bytes | None, set[int]] = {}
    for s in hits:
        if s.queue is not None:
            groups.setdefault(s.queue, set()).add(id(s))
    return ids(s for s in hits if s.queue is None), groups


# -- examples -----------------------------------------------------------------------


def test_literal_and_wildcards(sl: Sublist[Subscription]) -> None:
    lit, pwc, fwc, root = (Subscription(s) for s in (b"foo.bar", b"foo.*", b"foo.>", b">"))
    for s in (lit, pwc, fwc, root):
        sl.insert(s)
    assert sl.count() == 4
    assert ids(sl.match(b"foo.bar").psubs) == ids([lit, pwc, fwc, root])
    assert ids(sl.match(b"foo.baz").psubs) == ids([pwc, fwc, root])
    assert ids(sl.match(b"foo.bar.baz").psubs) == ids([fwc, root])
    assert ids(sl.match(b"foo").psubs) == ids([root])
    assert ids(sl.match(b"bar.x").psubs) == ids([root])


def test_empty_result_is_shared(sl: Sublist[Subscription]) -> None:
    assert sl.match(b"nothing.here") is EMPTY_RESULT
    assert sl.match(b"nothing.here") is EMPTY_RESULT
    sub = Subscription(b"x")
    sl.insert(sub)
    sl.remove(sub)
    assert sl.match(b"x") is EMPTY_RESULT
    assert not sl.has_interest(b"x")


def test_queue_groups_merged_across_nodes(sl: Sublist[Subscription]) -> None:
    a = Subscription(b"foo.bar", b"q1")
    b = Subscription(b"foo.*", b"q1")
    c = Subscription(b"foo.>", b"q2")
    d = Subscription(b"foo.bar")
    for s in (a, b, c, d):
        sl.insert(s)
    plain, groups = norm(sl.match(b"foo.bar"))
    assert plain == ids([d])
    assert groups == {b"q1": ids([a, b]), b"q2": ids([c])}
    sl.remove(a)
    sl.remove(b)
    assert norm(sl.match(b"foo.bar"))[1] == {b"q2": ids([c])}


def test_duplicate_subjects_are_distinct_subs(sl: Sublist[Subscription]) -> None:
    subs = [Subscription(b"a.b", sid=str(i).encode()) for i in range(5)]
    for s in subs:
        sl.insert(s)
    assert len(sl.match(b"a.b").psubs) == 5
    assert sl.remove(subs[2])
    assert ids(sl.match(b"a.b").psubs) == ids(subs[:2] + subs[3:])
    assert sl.count() == 4


def test_identity_not_equality(sl: Sublist[Subscription]) -> None:
    class EqSub(Subscription):
        __slots__ = ()

        def __eq__(self, other: object) -> bool:
            return True

        __hash__ = None  # type: ignore[assignment]

    a, b = EqSub(b"x"), EqSub(b"x")
    sl.insert(a)
    sl.insert(b)
    assert sl.count() == 2
    assert not sl.remove(EqSub(b"x"))
    assert sl.remove(a) and sl.count() == 1


def test_remove_unknown_and_double_insert(sl: Sublist[Subscription]) -> None:
    s = Subscription(b"foo.*")
    assert not sl.remove(s)
    assert not sl.remove(Subscription(b"never.inserted.>"))
    assert not sl.remove(Subscription(b"bad..subject"))
    g0 = sl.genid
    sl.insert(s)
    sl.insert(s)
    assert sl.count() == 1 and sl.genid == g0 + 1
    assert len(sl.match(b"foo.x").psubs) == 1
    assert sl.remove(s)
    assert not sl.remove(s)
    assert sl.count() == 0 and sl.genid == g0 + 2
    # Same subject, different queue: not the same indexed entry.
    q = Subscription(b"foo.*", b"q")
    sl.insert(q)
    assert not sl.remove(Subscription(b"foo.*", b"other"))
    assert not sl.remove(Subscription(b"foo.*"))


@pytest.mark.parametrize("bad", [b"", b"foo..bar", b"foo.>.bar", b".foo", b"foo.", b"a b"])
def test_insert_rejects_invalid(sl: Sublist[Subscription], bad: bytes) -> None:
    with pytest.raises(InvalidSubjectError):
        sl.insert(Subscription(bad))
    assert sl.count() == 0


@pytest.mark.parametrize("subject", [b"", b"foo..bar", b".foo", b"foo."])
def test_match_invalid_is_empty(sl: Sublist[Subscription], subject: bytes) -> None:
    sl.insert(Subscription(b">"))
    assert sl.match(subject) is EMPTY_RESULT
    assert not sl.has_interest(subject)


def test_pruning_keeps_trie_small(sl: Sublist[Subscription]) -> None:
    subs = [Subscription(b"a.b.c.d"), Subscription(b"a.*.c"), Subscription(b"a.>")]
    for s in subs:
        sl.insert(s)
    for s in subs:
        assert sl.remove(s)
    root = sl._root
    assert root.is_empty(), "empty branches must be pruned"
    assert sl.all_subs() == []


def test_cache_patched_on_insert_and_remove() -> None:
    sl: Sublist[Subscription] = Sublist()
    sl.match(b"foo.bar")
    sl.match(b"foo.baz")
    sl.match(b"other")
    w = Subscription(b"foo.*")
    sl.insert(w)
    assert sl.cache_count() == 3
    assert ids(sl.match(b"foo.bar").psubs) == ids([w])
    assert sl.match(b"other") is EMPTY_RESULT
    lit = Subscription(b"foo.bar", b"q")
    sl.insert(lit)
    assert norm(sl.match(b"foo.bar")) == (ids([w]), {b"q": ids([lit])})
    sl.remove(w)
    assert norm(sl.match(b"foo.bar")) == (set(), {b"q": ids([lit])})
    assert sl.match(b"foo.baz") is EMPTY_RESULT


def test_cache_is_bounded() -> None:
    sl: Sublist[Subscription] = Sublist(cache_max=1024, cache_sweep=256)
    sl.insert(Subscription(b"s.*"))
    for i in range(3000):
        sl.match(b"s.%d" % i)
        assert sl.cache_count() <= 1024
    assert sl.cache_count() >= 256
    # The most recent subject survives a sweep.
    assert len(sl.match(b"s.2999").psubs) == 1


def test_cached_literal_hit_returns_same_object() -> None:
    sl: Sublist[Subscription] = Sublist()
    sl.insert(Subscription(b"a"))
    r = sl.match(b"a")
    assert sl.match(b"a") is r
    assert Sublist(cache=False).cache_count() == 0


def test_stats() -> None:
    sl: Sublist[Subscription] = Sublist()
    subs = [Subscription(b"a.*"), Subscription(b"a.b"), Subscription(b"a.b", b"q")]
    for s in subs:
        sl.insert(s)
    sl.remove(subs[0])
    sl.match(b"a.b")
    sl.match(b"a.b")
    sl.match(b"a.c")
    st_ = sl.stats()
    assert st_["num_subscriptions"] == 2
    assert st_["num_inserts"] == 3 and st_["num_removes"] == 1
    assert st_["num_matches"] == 3 and st_["num_cache"] == 2
    assert st_["cache_hit_rate"] == pytest.approx(1 / 3)
    assert st_["max_fanout"] == 2  # a.b: one plain sub + one queue group
    assert st_["avg_fanout"] == pytest.approx(1.0)


def test_genid_bumps_on_every_change(sl: Sublist[Subscription]) -> None:
    seen = {sl.genid}
    subs = [Subscription(b"x.%d" % i) for i in range(3)]
    for s in subs:
        sl.insert(s)
        seen.add(sl.genid)
    sl.match(b"x.1")
    seen_after_match = sl.genid
    for s in subs:
        sl.remove(s)
        seen.add(sl.genid)
    assert len(seen) == 7
    assert seen_after_match in seen


def test_match_intersecting(sl: Sublist[Subscription]) -> None:
    subjects = [b"a.b", b"a.*", b"a.>", b">", b"*.c", b"b.c.d", b"a.b.c", b"*"]
    subs = [Subscription(s) for s in subjects]
    subs.append(Subscription(b"a.b", b"q"))
    for s in subs:
        sl.insert(s)
    for pattern in [b"a.b", b"a.*", b"a.>", b">", b"*", b"*.*", b"x.y", b"*.c.>", b"b.c"]:
        got = sl.match_intersecting(pattern)
        assert len(got) == len(ids(got)), "duplicates"
        assert ids(got) == ids(s for s in subs if subjects_intersect(s.subject, pattern))


# -- model-based --------------------------------------------------------------------

TOKENS = [b"a", b"b", b"c"]
pattern_st = st.lists(st.sampled_from([*TOKENS, b"*"]), min_size=0, max_size=3).flatmap(
    lambda toks: st.sampled_from(
        [b".".join(toks)] * bool(toks) + [b".".join([*toks, b">"])]
    )
)
literal_st = st.lists(st.sampled_from([*TOKENS, b"d"]), min_size=1, max_size=4).map(b".".join)
queue_st = st.sampled_from([None, None, b"q1", b"q2", b"q3"])


class SublistModel(RuleBasedStateMachine):
    factory: Factory

    def __init__(self) -> None:
        super().__init__()
        self.sl = self.factory()
        self.subs: list[Subscription] = []

    @rule(subject=pattern_st, queue=queue_st)
    def insert(self, subject: bytes, queue: bytes | None) -> None:
        sub = Subscription(subject, queue)
        g = self.sl.genid
        self.sl.insert(sub)
        self.subs.append(sub)
        assert self.sl.genid > g

    @precondition(lambda self: self.subs)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        sub = data.draw(st.sampled_from(self.subs))
        self.subs = [s for s in self.subs if s is not sub]
        assert self.sl.remove(sub)
        assert not self.sl.remove(sub)

    @rule(subject=pattern_st, queue=queue_st)
    def remove_unknown(self, subject: bytes, queue: bytes | None) -> None:
        g = self.sl.genid
        assert not self.sl.remove(Subscription(subject, queue))
        assert self.sl.genid == g

    @rule(subject=literal_st)
    def match(self, subject: bytes) -> None:
        assert norm(self.sl.match(subject)) == expected(self.subs, subject)
        want = any(subject_matches(s.subject, subject) for s in self.subs)
        assert self.sl.has_interest(subject) is want

    @rule(pattern=pattern_st)
    def intersecting(self, pattern: bytes) -> None:
        got = self.sl.match_intersecting(pattern)
        assert len(got) == len(ids(got))
        assert ids(got) == ids(s for s in self.subs if subjects_intersect(s.subject, pattern))

    @invariant()
    def counts(self) -> None:
        assert self.sl.count() == len(self.subs)
        assert ids(self.sl.all_subs()) == ids(self.subs)

    @invariant()
    def cache_is_exact(self) -> None:
        # Every cached result must equal a fresh computation -- never stale.
        cache = self.sl._cache or {}
        for key, r in list(cache.items()):
            assert norm(r) == expected(self.subs, key), key


_settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


def _machine(name: str) -> Any:
    cls = type(f"SublistModel_{name}", (SublistModel,), {"factory": staticmethod(FACTORIES[name])})
    return _settings(cls).TestCase  # type: ignore[attr-defined]


TestModelCache = _machine("cache")
TestModelTinyCache = _machine("tinycache")
TestModelNoCache = _machine("nocache")


@pytest.mark.parametrize(
    ("sub_subject", "hit", "miss"),
    [(b"foo*", b"foo*", b"foox"), (b"a.b.>", b"a.b.c", b"a.b"), (b"a.*.c", b"a.x.c", b"a.x"),
     (b"*.b", b"z.b", b"z.b.c"), (b">", b"q", b""), (b"a.>", b"a.b.c.d", b"b.a")],
)
def test_cache_patch_edges(sub_subject: bytes, hit: bytes, miss: bytes) -> None:
    sl: Sublist[Subscription] = Sublist()
    for s in (hit, miss):
        sl.match(s)
    sub = Subscription(sub_subject)
    sl.insert(sub)
    assert sl.match(hit).psubs == (sub,)
    assert sl.match(miss) is EMPTY_RESULT
    sl.remove(sub)
    assert sl.match(hit) is EMPTY_RESULT


def test_newline_subjects_are_not_cached() -> None:
    # The cache scan joins keys with b"\n"; such keys must never be cached.
    sl: Sublist[Subscription] = Sublist()
    sl.insert(Subscription(b"a.*"))
    assert len(sl.match(b"a.x\ny").psubs) == 1
    assert sl.cache_count() == 0
    w = Subscription(b"a.>")
    sl.insert(w)
    assert len(sl.match(b"a.x\ny").psubs) == 2


# -- deep subjects ------------------------------------------------------------------


@settings(max_examples=300)
@given(st.lists(st.tuples(pattern_st, queue_st), max_size=12), literal_st)
def test_deep_walk_matches_the_recursive_walk_in_order(entries: list[tuple[bytes, bytes | None]], subject: bytes) -> None:
    """The explicit-stack walk used for very long subjects returns exactly
    what the recursive one does, in the same order (delivery order)."""
    from natsd.subjects.sublist import _match_deep, _match_level

    sl: Sublist[Subscription] = Sublist(cache=False)
    for i, (pattern, queue) in enumerate(entries):
        sl.insert(Subscription(pattern, queue, sid=str(i).encode()))
    toks = subject.split(b".")
    rec_p: list[Subscription] = []
    rec_q: dict[bytes, list[Subscription]] = {}
    deep_p: list[Subscription] = []
    deep_q: dict[bytes, list[Subscription]] = {}
    _match_level(sl._root, toks, 0, rec_p, rec_q)
    _match_deep(sl._root, toks, deep_p, deep_q)
    assert [s.sid for s in deep_p] == [s.sid for s in rec_p]
    assert {k: [s.sid for s in v] for k, v in deep_q.items()} == {k: [s.sid for s in v] for k, v in rec_q.items()}
    assert list(deep_q) == list(rec_q)


@pytest.mark.parametrize("cache", [True, False])
def test_subjects_of_thousands_of_tokens(cache: bool) -> None:
    """A client may subscribe and publish with ~2,000 tokens (4 KiB control
    line); matching must not depend on Python's recursion limit."""
    n = 3000
    literal = b".".join([b"a"] * n)
    stars = b".".join([b"*"] * (n - 1) + [b">"])
    mixed = b".".join([b"*", b"a"] * (n // 2))
    sl: Sublist[Subscription] = Sublist(cache=cache)
    subs = [Subscription(s, sid=str(i).encode()) for i, s in enumerate((literal, stars, mixed, b">"))]
    for s in subs:
        sl.insert(s)
    assert {s.sid for s in sl.match(literal).psubs} == {b"0", b"1", b"2", b"3"}
    longer = literal + b".a"
    assert {s.sid for s in sl.match(longer).psubs} == {b"1", b"3"}
    for s in subs:
        assert sl.remove(s)
    assert sl.count() == 0

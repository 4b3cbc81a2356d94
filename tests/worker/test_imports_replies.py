"""ResponseTracker: response types, thresholds, EOF, bounded size."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natsd.worker.imports_replies import ResponseTracker, base62, reply_token


def test_tokens() -> None:
    assert base62(0) == "000000"
    assert len(base62(2**64 - 1, 11)) == 11
    assert reply_token(7, 62) == "700000.010000"


def test_singleton_routes_once() -> None:
    t = ResponseTracker()
    r = t.track("A", "abc.1", "B", b"IN.1", "singleton", 2.0, now=0.0)
    assert r == b"_R_.abc.1"
    got = t.route_response("A", r, now=1.0)
    assert got is not None and (got.importer, got.reply, got.last) == ("B", b"IN.1", True)
    assert t.route_response("A", r, now=1.0) is None
    assert len(t) == 0


def test_other_account_cannot_hit_mapping() -> None:
    t = ResponseTracker()
    r = t.track("A", "abc.1", "B", b"IN.1", "singleton", 2.0, now=0.0)
    assert t.route_response("C", r, now=0.5) is None
    assert t.route_response("A", b"IN.1", now=0.5) is None
    assert len(t) == 1


@pytest.mark.parametrize("rtype", ["stream", "chunked"])
def test_stream_refreshes_until_silence_or_eof(rtype: str) -> None:
    t = ResponseTracker()
    r = t.track("A", "s.1", "B", b"IN.2", rtype, 2.0, now=0.0)
    for now in (1.5, 3.0, 4.5):  # each response pushes the deadline 2s further
        got = t.route_response("A", r, now=now)
        assert got is not None and not got.last
    assert t.get("A", r) is not None and t.get("A", r).responses == 3  # type: ignore[union-attr]
    assert t.expire(6.4) == 0
    assert t.expire(6.5) == 1
    assert t.route_response("A", r, now=6.6) is None
    r2 = t.track("A", "s.2", "B", b"IN.3", rtype, 2.0, now=10.0)
    end = t.route_response("A", r2, now=10.1, empty=True)
    assert end is not None and end.last and len(t) == 0


def test_unanswered_singleton_expires_and_late_response_dropped() -> None:
    t = ResponseTracker()
    r = t.track("A", "x.1", "B", b"IN", "singleton", 1.0, now=0.0)
    assert t.next_deadline() == 1.0
    # expire() has not run yet, but a late response is still refused.
    assert t.route_response("A", r, now=1.0) is None
    assert t.expired == 1 and len(t) == 0


def test_discard_and_duplicate_token() -> None:
    t = ResponseTracker()
    r = t.track("A", "d.1", "B", b"IN", "stream", 1.0, now=0.0)
    with pytest.raises(ValueError):
        t.track("A", "d.1", "B", b"IN", "stream", 1.0, now=0.0)
    t.track("C", "d.1", "B", b"IN", "stream", 1.0, now=0.0)  # other exporter: fine
    assert t.discard("A", r) and not t.discard("A", r)
    assert t.stats()["discarded"] == 1


def test_cap_evicts_oldest() -> None:
    t = ResponseTracker(cap=3)
    subs = [t.track("A", f"c.{i}", "B", b"IN.%d" % i, "singleton", 60.0, now=float(i)) for i in range(5)]
    assert len(t) == 3 and t.evicted == 2
    assert t.route_response("A", subs[0], now=5.0) is None
    got = t.route_response("A", subs[4], now=5.0)
    assert got is not None and got.reply == b"IN.4"


_op = st.one_of(
    st.tuples(st.just("track"), st.sampled_from(["singleton", "stream"]), st.floats(0.1, 5.0)),
    st.tuples(st.just("respond"), st.integers(0, 200), st.booleans()),
    st.tuples(st.just("advance"), st.floats(0.0, 3.0)),
    st.tuples(st.just("expire")),
)


@given(st.integers(1, 20), st.integers(20, 400), st.lists(_op, max_size=200))
def test_bounded_and_consistent(cap: int, byte_cap: int, ops: list[tuple]) -> None:  # type: ignore[type-arg]
    t = ResponseTracker(cap=cap, byte_cap=byte_cap)
    now = 0.0
    issued: list[bytes] = []
    for op in ops:
        if op[0] == "track":
            reply = b"R" * (1 + len(issued) % 17)
            issued.append(t.track("A", f"t.{len(issued)}", "B", reply, op[1], op[2], now))
        elif op[0] == "respond" and issued:
            subject = issued[op[1] % len(issued)]
            before = t.get("A", subject)
            live = before is not None and before.deadline > now
            got = t.route_response("A", subject, now, empty=op[2])
            assert (got is not None) == live
        elif op[0] == "advance":
            now += op[1]
        elif op[0] == "expire":
            t.expire(now)
            assert all(p.deadline > now for p in t._map.values())
        assert len(t) <= cap
        assert t.bytes == sum(len(p.subject) + len(p.reply) for p in t._map.values()) <= byte_cap
        assert len(t._heap) <= 2 * len(t) + 65
    # Every mapping ends up gone once time passes every threshold.
    t.expire(now + 10.0)
    assert len(t) == 0 and t.bytes == 0
    assert t.tracked == len(issued)


def test_byte_budget_evicts_the_oldest() -> None:
    """Long reply subjects: the byte budget, not the entry cap, bounds memory."""
    t = ResponseTracker(cap=1000, byte_cap=10_000)
    for i in range(10):
        t.track("A", f"t.{i}", "B", b"r" * 3000, "singleton", 60.0, now=0.0)
    assert len(t) == 3 and t.evicted == 7 and t.bytes <= 10_000
    assert t.get("A", b"_R_.t.9") is not None and t.get("A", b"_R_.t.0") is None

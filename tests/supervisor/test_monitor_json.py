"""Unit tests of the monitoring documents: pure ``Snapshot -> dict`` builders."""

from __future__ import annotations

from typing import Any

import pytest

from natsd.config.schema import Options
from natsd.ipc import messages as M
from supervisor import monitor_format as F
from supervisor import monitor_json as J

NOW = 1_700_000_100.0
START = 1_700_000_000.0


def conn(cid: int, account: str = "$G", **kw: Any) -> M.ConnStats:
    base: dict[str, Any] = dict(
        cid=cid,
        account=account,
        user=None,
        host="127.0.0.1",
        port=40000 + cid,
        start=START + cid,
        last_activity=NOW - cid,
        in_msgs=cid,
        out_msgs=10 * cid,
        in_bytes=5 * cid,
        out_bytes=50 * cid,
        subs=cid % 3,
        pending_bytes=0,
        name=f"c{cid}",
        lang="python3",
        version="2.0",
        rtt=0.000721,
        subjects=[f"s.{cid}.{i}" for i in range(cid % 3)],
    )
    base.update(kw)
    return M.ConnStats(**base)


def stats(worker: int, conns: list[M.ConnStats], **kw: Any) -> M.Stats:
    return M.Stats(
        request_id=1,
        worker_id=worker,
        pid=1000 + worker,
        accounts=sorted({c.account for c in conns}),
        in_msgs=sum(c.in_msgs for c in conns),
        out_msgs=sum(c.out_msgs for c in conns),
        in_bytes=sum(c.in_bytes for c in conns),
        out_bytes=sum(c.out_bytes for c in conns),
        slow_consumers=kw.pop("slow_consumers", 0),
        subscriptions=sum(c.subs for c in conns),
        connections=conns,
        **kw,
    )


def snap(stats_list: list[M.Stats], **kw: Any) -> J.Snapshot:
    opts = kw.pop("opts", Options(host="127.0.0.1", port=4222, http_port=8222))
    workers = tuple(
        J.WorkerView(s.worker_id, s.pid, True, 0, len(s.connections)) for s in stats_list
    )
    base: dict[str, Any] = dict(
        server_id="NSERVER",
        server_name="srv",
        info={"version": "2.10.0", "proto": 1, "go": "python3.11", "port": 4222},
        opts=opts,
        start=START,
        now=NOW,
        total_connections=9,
        auth_timeout=2.0,
        workers=workers,
        stats=tuple(stats_list),
        mem=123,
        cpu=1.5,
        cores=2,
    )
    base.update(kw)
    return J.Snapshot(**base)


# --- formatting --------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "0s"),
        (1, "1ns"),
        (1500, "1.5µs"),
        (721_000, "721µs"),
        (1_234_567, "1.234567ms"),
        (1_000_000_000, "1s"),
        (1_500_000_000, "1.5s"),
        (62_000_000_000, "1m2s"),
        (3_600_000_000_000, "1h0m0s"),
        (-1500, "-1.5µs"),
    ],
)
def test_go_duration(ns: int, text: str) -> None:
    assert F.go_duration(ns) == text


@pytest.mark.parametrize(
    ("secs", "text"),
    [
        (0, "0s"),
        (59.9, "59s"),
        (62, "1m2s"),
        (3723, "1h2m3s"),
        (90061, "1d1h1m1s"),
        (366 * 86400, "1y1d0h0m0s"),
    ],
)
def test_uptime(secs: float, text: str) -> None:
    assert F.uptime(secs) == text


def test_rfc3339_trims_trailing_zeros() -> None:
    assert F.rfc3339(0.0) == "1970-01-01T00:00:00Z"
    assert F.rfc3339(1.5) == "1970-01-01T00:00:01.5Z"
    assert F.rfc3339(1.000123) == "1970-01-01T00:00:01.000123Z"


def test_rtt_rounds_to_microseconds_below_a_millisecond() -> None:
    assert F.rtt(0.0007214) == "721µs"
    assert F.rtt(0.0) == "0s"
    assert F.rtt(0.0015) == "1.5ms"


def test_gofloat_and_query_errors() -> None:
    assert F.gofloat(2.0) == 2 and isinstance(F.gofloat(2.0), int)
    assert F.gofloat(0.5) == 0.5
    with pytest.raises(F.BadRequest, match="Error decoding int for 'limit'"):
        F.q_int({"limit": ["abc"]}, "limit", 0)
    with pytest.raises(F.BadRequest, match="Error decoding boolean for 'subs'"):
        F.q_bool({"subs": ["maybe"]}, "subs")
    assert F.q_bool({"subs": ["1"]}, "subs") is True


# --- /varz --------------------------------------------------------------------


def test_varz_units_and_counters() -> None:
    s = snap([stats(0, [conn(1), conn(2)]), stats(1, [conn(3, "A")])])
    v = J.varz(s)
    assert v["ping_interval"] == 120_000_000_000 and v["write_deadline"] == 10_000_000_000
    assert v["auth_timeout"] == 2 and isinstance(v["auth_timeout"], int)
    assert v["uptime"] == "1m40s" and v["start"] == F.rfc3339(START)
    assert v["connections"] == 3 and v["total_connections"] == 9
    assert (v["in_msgs"], v["out_msgs"], v["in_bytes"], v["out_bytes"]) == (6, 60, 30, 300)
    assert v["subscriptions"] == 3
    assert v["system_account"] == "$SYS" and "auth_required" not in v
    assert [w["index"] for w in v["workers"]] == [0, 1]
    assert v["workers"][1]["accounts"] == ["A"] and v["workers"][1]["in_msgs"] == 3


def test_varz_silent_worker_counts_supervisor_record() -> None:
    s = snap([stats(0, [conn(1)])])
    s = J.Snapshot(**{**s.__dict__, "workers": (*s.workers, J.WorkerView(1, 1001, True, 2, 4))})
    v = J.varz(s)
    assert v["connections"] == 5
    assert v["workers"][1] == {
        "index": 1,
        "pid": 1001,
        "ready": True,
        "responding": False,
        "restarts": 2,
        "accounts": [],
        "connections": 4,
    }


def test_varz_prefers_cumulative_totals_when_reported() -> None:
    class WithTotals:
        def __init__(self, s: M.Stats) -> None:
            self.__dict__.update({f: getattr(s, f) for f in s.__struct_fields__})
            self.total_in_msgs = 100

    s = snap([WithTotals(stats(0, [conn(1)]))])  # type: ignore[list-item]
    assert J.varz(s)["in_msgs"] == 100


# --- /connz -------------------------------------------------------------------


def test_connz_fields_and_defaults() -> None:
    d = J.connz(snap([stats(0, [conn(2), conn(1)])]), {})
    assert (d["num_connections"], d["total"], d["offset"], d["limit"]) == (2, 2, 0, 1024)
    c = d["connections"][0]
    assert c["cid"] == 1 and c["kind"] == "Client" and c["type"] == "nats"
    assert c["rtt"] == "721µs" and c["uptime"] == "1m39s" and c["idle"] == "1s"
    assert "account" not in c and "subscriptions_list" not in c


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("cid", [1, 2, 3]),
        ("msgs_to", [3, 2, 1]),
        ("idle", [3, 2, 1]),
        ("start", [1, 2, 3]),
        ("uptime", [1, 2, 3]),
    ],
)
def test_connz_sort(sort: str, order: list[int]) -> None:
    d = J.connz(snap([stats(0, [conn(3), conn(1)]), stats(1, [conn(2)])]), {"sort": [sort]})
    assert [c["cid"] for c in d["connections"]] == order


def test_connz_paging_cid_acc_and_subs() -> None:
    s = snap([stats(0, [conn(i, "A" if i % 2 else "B") for i in range(1, 6)])])
    d = J.connz(s, {"offset": ["1"], "limit": ["2"]})
    assert [c["cid"] for c in d["connections"]] == [2, 3] and d["total"] == 5
    d = J.connz(s, {"cid": ["4"]})
    assert [c["cid"] for c in d["connections"]] == [4] and d["limit"] == 1
    d = J.connz(s, {"acc": ["A"], "subs": ["1"], "auth": ["true"]})
    assert [c["cid"] for c in d["connections"]] == [1, 3, 5]
    assert d["connections"][0]["subscriptions_list"] == ["s.1.0"]
    assert d["connections"][0]["account"] == "A"
    d = J.connz(s, {"subs": ["detail"]})
    assert d["connections"][0]["subscriptions_list_detail"] == [{"subject": "s.1.0", "cid": 1}]


def test_connz_auth_shows_recorded_user_only() -> None:
    s = snap([stats(0, [conn(1, "A")])], users={1: "alice"})
    c = J.connz(s, {"auth": ["1"]})["connections"][0]
    assert c["authorized_user"] == "alice" and c["name_tag"] == "A"


@pytest.mark.parametrize(
    ("query", "msg"),
    [
        ({"sort": ["bogus"]}, "invalid sorting option: bogus"),
        ({"sort": ["stop"]}, "sort by stop only valid on closed connections"),
        ({"state": ["weird"]}, "Error decoding state"),
        ({"limit": ["x"]}, "Error decoding int for 'limit'"),
    ],
)
def test_connz_bad_queries(query: J.Query, msg: str) -> None:
    with pytest.raises(F.BadRequest, match=msg):
        J.connz(snap([]), query)


def test_connz_closed_state_is_empty() -> None:
    d = J.connz(snap([stats(0, [conn(1)])]), {"state": ["closed"], "sort": ["stop"]})
    assert d["connections"] == [] and d["total"] == 0


# --- /subsz, accounts -------------------------------------------------------------


def test_subsz_without_worker_sublist_stats() -> None:
    s = snap([stats(0, [conn(1), conn(2)])])
    d = J.subsz(s, {})
    assert d["num_subscriptions"] == 3 and d["num_cache"] == 0 and d["total"] == 0
    assert "subscriptions_list" not in d
    d = J.subsz(s, {"subs": ["1"], "test": ["s.2.1"]})
    assert d["subscriptions_list"] == [
        {"account": "$G", "account_tag": "$G", "subject": "s.2.1", "cid": 2}
    ]


def test_subsz_merges_worker_sublist_stats() -> None:
    class Rec:
        def __init__(
            self, name: str, matches: int, rate: float, cache: int, avg: float, mx: int
        ) -> None:
            self.name, self.conns, self.num_subscriptions = name, 1, 2
            self.num_cache, self.num_inserts, self.num_removes, self.num_matches = (
                cache,
                3,
                1,
                matches,
            )
            self.cache_hit_rate, self.avg_fanout, self.max_fanout = rate, avg, mx
            self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = self.slow_consumers = 0

    class WithAcc:
        def __init__(self, s: M.Stats, recs: list[Rec]) -> None:
            self.__dict__.update({f: getattr(s, f) for f in s.__struct_fields__})
            self.account_stats = recs

    s0 = WithAcc(stats(0, []), [Rec("A", 4, 0.5, 2, 1.0, 1)])
    s1 = WithAcc(stats(1, []), [Rec("B", 4, 0.0, 2, 2.0, 3)])
    d = J.subsz(snap([s0, s1]), {})  # type: ignore[list-item]
    assert (d["num_subscriptions"], d["num_matches"], d["num_cache"]) == (4, 8, 4)
    assert d["cache_hit_rate"] == 0.25 and d["avg_fanout"] == 1.5 and d["max_fanout"] == 3


def test_accountz_and_accstatz() -> None:
    s = snap([stats(0, [conn(1, "A"), conn(2, "A")])], accounts=("A", "B"))
    assert J.accountz(s, {})["accounts"] == ["$G", "$SYS", "A", "B"]
    det = J.accountz(s, {"acc": ["A"]})["account_detail"]
    assert det["client_connections"] == 2 and det["sublist_stats"]["num_subscriptions"] == 3
    with pytest.raises(F.BadRequest, match="Account nope does not exist"):
        J.accountz(s, {"acc": ["nope"]})
    rows = J.accstatz(s, {})["account_statz"]
    assert [r["acc"] for r in rows] == ["A"]
    assert rows[0]["sent"]["msgs"] == 30 and rows[0]["received"]["msgs"] == 3
    assert len(J.accstatz(s, {"unused": ["1"]})["account_statz"]) == 4


def test_static_documents_and_health() -> None:
    s = snap([stats(0, [])])
    assert J.routez(s)["routes"] == [] and J.leafz(s)["leafs"] == []
    assert J.gatewayz(s)["outbound_gateways"] == {}
    assert J.jsz(s)["disabled"] is True
    assert J.healthz(s, {}) == (200, {"status": "ok"})
    down = J.Snapshot(**{**s.__dict__, "workers": (J.WorkerView(0, 0, False, 1, 0),)})
    code, doc = J.healthz(down, {"js-enabled-only": ["true"]})
    assert code == 503 and doc["status"] == "unavailable"

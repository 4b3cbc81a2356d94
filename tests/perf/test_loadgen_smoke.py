"""Smoke tests: every scenario against the real nats-server, tiny and bounded.

Each run publishes a few hundred messages (well below any slow-consumer
threshold), so every delivery must arrive: the assertions check that the
counts add up -- published == requested, delivered == published x fan-out,
queue groups deliver each message once -- and that no errors were recorded.
Nothing here asserts on timing.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from perf import servers
from perf.conn import Creds, Endpoint
from perf.report import RunResult
from perf.runner import run
from perf.scenarios import IMPORT_SUB, Options

Small = Callable[..., Options]

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(30)]


def _clean(res: RunResult) -> None:
    assert res.errors == []
    assert res.disconnects == 0


@pytest.mark.parametrize(("scenario", "pubs", "subs", "fanout"), [
    ("pub", 2, None, 0),
    ("pubsub", 1, 1, 1),
    ("fanout", 1, 4, 4),
])
def test_throughput_scenarios_count_up(small_options: Small, plain_server: servers.ServerProc, scenario: str,
                                       pubs: int, subs: int | None, fanout: int) -> None:
    res = run(small_options(plain_server, scenario, pubs=pubs, subs=subs))
    _clean(res)
    assert res.pub_msgs == 300
    assert res.sub_msgs == 300 * fanout
    assert res.pub_rate > 0
    assert len(res.sub_counts) == (subs or 0)
    if subs:
        assert set(res.sub_counts) == {300}


def test_queue_group_delivers_each_message_once(small_options: Small, plain_server: servers.ServerProc) -> None:
    res = run(small_options(plain_server, "queue", msgs=400, subs=3))
    _clean(res)
    assert res.pub_msgs == 400
    assert sum(res.sub_counts) == 400
    assert len(res.sub_counts) == 3


def test_large_payload_pubsub(small_options: Small, plain_server: servers.ServerProc) -> None:
    res = run(small_options(plain_server, "pubsub", size=64 * 1024, msgs=200))
    _clean(res)
    assert res.sub_msgs == res.pub_msgs == 200
    assert res.sub_mbps > 0


def test_paced_publisher(small_options: Small, plain_server: servers.ServerProc) -> None:
    res = run(small_options(plain_server, "pubsub", msgs=200, rate=4000.0))
    _clean(res)
    assert res.sub_msgs == res.pub_msgs == 200


def test_duration_bounded_run(small_options: Small, plain_server: servers.ServerProc) -> None:
    res = run(small_options(plain_server, "pubsub", duration=0.3, rate=2000.0))
    _clean(res)
    assert res.pub_msgs > 0
    assert res.sub_msgs == res.pub_msgs


def test_reqrep_latency(small_options: Small, plain_server: servers.ServerProc) -> None:
    res = run(small_options(plain_server, "reqrep", msgs=300, pubs=2))
    _clean(res)
    assert res.pub_msgs == res.sub_msgs == res.answered == 300
    lat = res.latency_us
    assert lat["count"] == 300
    assert 0 < lat["p50"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]


def test_conns_reports_rss(small_options: Small, plain_server: servers.ServerProc) -> None:
    res = run(small_options(plain_server, "conns", conns=200, subs_per_conn=5))
    _clean(res)
    assert res.conns == 202
    assert res.sub_msgs == res.pub_msgs == 300
    assert res.rss_before and res.rss_idle and res.rss_after


def test_multiaccount_isolation(small_options: Small, accounts_server: servers.ServerProc) -> None:
    # Same subject in three accounts: each subscriber must see only its own
    # account's share, so the total equals what was published.
    res = run(small_options(accounts_server, "multiaccount", accounts=3))
    _clean(res)
    assert res.pub_msgs == res.sub_msgs == 300
    assert sorted(res.sub_counts) == [100, 100, 100]


def test_cross_account_import(small_options: Small, import_server: servers.ServerProc) -> None:
    res = run(small_options(import_server, "import", subs=2))
    _clean(res)
    assert res.pub_msgs == 300
    assert res.sub_msgs == 600


def test_cross_account_service_requests(small_options: Small, import_server: servers.ServerProc) -> None:
    res = run(small_options(import_server, "svcimport"))
    _clean(res)
    assert res.pub_msgs == res.sub_msgs == 300  # every request from B answered by A
    assert res.latency_us.get("p50", 0) > 0


def test_tls_pubsub(small_options: Small, tls_server: servers.ServerProc, tls_material: dict[str, str]) -> None:
    ep = Endpoint(port=tls_server.port, tls=True, tls_ca=tls_material["ca"])
    res = run(small_options(tls_server, "tls", endpoint=ep))
    _clean(res)
    assert res.pub_msgs == res.sub_msgs == 300


def test_user_password_auth(small_options: Small, user_server: servers.ServerProc) -> None:
    res = run(small_options(user_server, "pubsub",
                            creds=Creds(user="bench", password="s3cret")))
    _clean(res)
    assert res.sub_msgs == 300


def test_token_auth(small_options: Small, token_server: servers.ServerProc) -> None:
    res = run(small_options(token_server, "pubsub", creds=Creds(token="tok3n")))
    _clean(res)
    assert res.sub_msgs == 300


def test_bad_credentials_fail_fast(small_options: Small, user_server: servers.ServerProc) -> None:
    opts: Options = small_options(user_server, "pubsub", creds=IMPORT_SUB)
    with pytest.raises(RuntimeError, match="could not connect"):
        run(opts)

"""supervisor/sysapi.py against a fake supervisor: option decoding, filters,
scoping and the in-flight bound (end to end, with nats-server beside it:
tests/e2e/test_system_account_api.py)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from test_monitor_http import FakeSupervisor

from natsd.config.schema import Permissions, ResponsePermission, SubjectPermission
from natsd.ipc import messages as M
from supervisor import sysapi
from supervisor.sysapi import _public_permissions, _query


def ask(subject: str, payload: bytes = b"", account: str = "$SYS", cid: int | None = 1) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        sup = FakeSupervisor()
        sup.sysapi.handle(
            M.SysRequest(account=account, subject=subject.encode(), reply=b"_INBOX.r", payload=payload, client_id=cid)
        )
        await asyncio.gather(*list(sup.sysapi._tasks))
        return [json.loads(p) for _acc, _subj, p in sup.published]

    return asyncio.run(main())


def test_varz_and_idz_for_the_system_account() -> None:
    [varz] = ask("$SYS.REQ.SERVER.PING.VARZ")
    assert varz["server"]["id"] == "NFAKE" and varz["data"]["server_id"] == "NFAKE"
    [idz] = ask("$SYS.REQ.SERVER.NFAKE.IDZ")
    assert idz == {"name": "NFAKE", "host": "127.0.0.1", "id": "NFAKE"}


def test_other_accounts_get_their_own_connections_only() -> None:
    [mine] = ask("$SYS.REQ.SERVER.PING.CONNZ", b'{"acc": "$SYS"}', account="A")
    assert [c["cid"] for c in mine["data"]["connections"]] == [1]  # the fake's one A connection
    assert ask("$SYS.REQ.SERVER.PING.CONNZ", b"", account="B")[0]["data"]["connections"] == []


def test_bad_options_and_filters() -> None:
    [bad] = ask("$SYS.REQ.SERVER.PING.VARZ", b"{nope")
    assert bad["error"]["code"] == 400 and "data" not in bad
    [arr] = ask("$SYS.REQ.SERVER.PING.VARZ", b"[1]")
    assert arr["error"]["code"] == 400
    assert ask("$SYS.REQ.SERVER.PING.VARZ", b'{"server_name": "other"}') == []
    assert ask("$SYS.REQ.SERVER.PING.VARZ", b'{"server_name": "FAK"}') != []  # substring, as nats-server
    assert ask("$SYS.REQ.SERVER.PING.VARZ", b'{"server_name": "FAK", "exact_match": true}') == []
    assert ask("$SYS.REQ.SERVER.PING.VARZ", b'{"tags": ["eu"]}') == []
    [state] = ask("$SYS.REQ.SERVER.PING.CONNZ", b'{"state": 9}')  # unknown: no connection (nats-server)
    assert state["data"]["connections"] == [] and state["data"]["total"] == 0
    [cid] = ask("$SYS.REQ.SERVER.PING.CONNZ", b'{"cid": -1}')
    assert cid["error"] == {"code": 400, "description": "json: cannot unmarshal number -1 into Go struct field .cid of type uint64"}


def test_query_mapping() -> None:
    assert _query("CONNZ", {"subscriptions_detail": True, "state": 1, "acc": "A", "limit": 5}) == {
        "acc": ["A"], "limit": ["5"], "subs": ["detail"], "state": ["closed"],
    }  # fmt: skip
    assert _query("SUBSZ", {"subscriptions": True, "account": "A", "test": "x.y"}) == {
        "subs": ["true"], "acc": ["A"], "test": ["x.y"],
    }  # fmt: skip


def test_user_info_for_an_unknown_connection_names_the_account() -> None:
    [info] = ask("$SYS.REQ.USER.INFO", account="A", cid=None)
    assert info["data"] == {"user": "", "account": "A", "account_name": "A"}


def test_public_permissions() -> None:
    p = Permissions(
        publish=SubjectPermission(allow=("a.>",)),
        subscribe=SubjectPermission(deny=("s",)),
        allow_responses=ResponsePermission(max_msgs=2, expires=1.5),
    )
    assert _public_permissions(p) == {
        "publish": {"allow": ["a.>"]},
        "subscribe": {"deny": ["s"]},
        "responses": {"max": 2, "ttl": 1_500_000_000},
    }
    assert _public_permissions(None) == {}


def test_in_flight_bound_drops_and_counts(monkeypatch: Any) -> None:
    monkeypatch.setattr(sysapi, "MAX_SYSTEM_INFLIGHT", 2)

    async def main() -> dict[str, int]:
        sup = FakeSupervisor()
        sup.gather_delay = 0.05
        for _ in range(5):
            sup.sysapi.handle(M.SysRequest(account="$SYS", subject=b"$SYS.REQ.SERVER.PING.VARZ", reply=b"r", payload=b"", client_id=1))
        await asyncio.gather(*list(sup.sysapi._tasks))
        assert len(sup.published) == 2
        return sup.sysapi.counters()

    assert asyncio.run(main()) == {"answered": 2, "dropped": 3, "in_flight": 0}


def test_tenant_requests_reuse_recent_worker_counters() -> None:
    """Another account's requests cost at most one worker gather per
    TENANT_MAX_AGE; the system account always gets fresh counters."""

    async def main() -> tuple[int, int]:
        sup = FakeSupervisor()
        for _ in range(5):
            sup.sysapi.handle(M.SysRequest(account="A", subject=b"$SYS.REQ.ACCOUNT.PING.CONNZ", reply=b"r", payload=b"", client_id=1))
            await asyncio.gather(*list(sup.sysapi._tasks))
        tenant = sup.gathers
        for _ in range(3):
            sup.sysapi.handle(M.SysRequest(account="$SYS", subject=b"$SYS.REQ.SERVER.PING.CONNZ", reply=b"r", payload=b"", client_id=1))
            await asyncio.gather(*list(sup.sysapi._tasks))
        return tenant, sup.gathers - tenant

    assert asyncio.run(main()) == (1, 3)


def test_other_accounts_never_get_system_views_even_if_forwarded() -> None:
    assert ask("$SYS.REQ.SERVER.PING.VARZ", account="A") == []
    assert ask("$SYS.REQ.ACCOUNT.B.CONNZ", account="A") == []
    assert ask("$SYS.REQ.SERVER.PING", account="A") == []


def test_deeply_nested_options_are_a_bad_request_not_a_crash() -> None:
    [deep] = ask("$SYS.REQ.ACCOUNT.PING.CONNZ", b"[" * 100_000 + b"]" * 100_000, account="A")
    assert deep["error"]["code"] == 400


def test_options_of_the_wrong_json_type_are_a_bad_request() -> None:
    for body in (b'{"limit": "abc"}', b'{"subscriptions": "yes"}', b'{"acc": 5}', b'{"accounts": "A"}',
                 b'{"accounts": [1]}', b'{"state": true}', b'{"offset": 1.5}', b'{"server_name": []}'):  # fmt: skip
        [reply] = ask("$SYS.REQ.SERVER.PING.CONNZ", body)
        assert reply["error"]["code"] == 400, body
        assert reply["error"]["description"].startswith("json: cannot unmarshal"), body
    [ok] = ask("$SYS.REQ.SERVER.PING.CONNZ", b'{"limit": 5, "subscriptions": true, "unknown": [1]}')
    assert ok["data"]["limit"] == 5


def test_a_tenant_flood_cannot_shut_out_the_system_account(monkeypatch: Any) -> None:
    monkeypatch.setattr(sysapi, "MAX_ACCOUNT_INFLIGHT", 3)
    monkeypatch.setattr(sysapi, "MAX_TENANT_INFLIGHT", 5)

    async def main() -> tuple[list[str], dict[str, int]]:
        sup = FakeSupervisor()
        sup.gather_delay = 0.05
        def req(account: str, subject: bytes) -> None:
            sup.sysapi.handle(M.SysRequest(account=account, subject=subject, reply=account.encode(), payload=b"", client_id=1))
        for _ in range(10):
            req("A", b"$SYS.REQ.ACCOUNT.PING.CONNZ")
        for _ in range(10):
            req("B", b"$SYS.REQ.ACCOUNT.PING.CONNZ")
        for _ in range(4):
            req("$SYS", b"$SYS.REQ.SERVER.PING.VARZ")
        await asyncio.gather(*list(sup.sysapi._tasks))
        return [acc for acc, _s, _p in sup.published], sup.sysapi.counters()

    published, counters = asyncio.run(main())
    assert published.count("A") == 3 and published.count("B") == 2  # per account, then the tenants' total
    assert published.count("$SYS") == 4  # the operators' budget is their own
    assert counters == {"answered": 9, "dropped": 15, "in_flight": 0}

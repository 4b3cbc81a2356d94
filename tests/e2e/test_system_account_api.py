"""The system account's monitoring API over NATS, natsd beside nats-server.

The same nats-py requests go to both servers; the reply documents must have
nats-server's keys (``feature_flags``, which natsd's advertised 2.10 does
not have, aside) and the same scoping: clients of other accounts get only
their own connection, account connections and statistics.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from servers import Server, running

pytestmark = pytest.mark.e2e

CONF = """
accounts {
  A: { users: [{user: a, password: a, permissions: {publish: {allow: ["foo.>", "$SYS.REQ.>", "_INBOX.>"]}, subscribe: {deny: "secret"}}}] }
  B: { users: [{user: b, password: b}] }
  SYS: { users: [{user: sys, password: sys}] }
}
system_account: SYS
"""
NO_REPLY = "no responders"
TIMEOUT = "timeout"
# feature_flags: nats-server 2.11+, natsd speaks 2.10. imports: these
# accounts import nothing, but nats-server lists the system imports it adds
# to every account (docs/operations.md).
IGNORED_KEYS = {"feature_flags", "imports"}


async def req(nc: nats.NATS, subject: str, data: bytes = b"", timeout: float = 3.0) -> Any:
    try:
        msg = await nc.request(subject, data, timeout=timeout)
    except NoRespondersError:
        return NO_REPLY
    except NatsTimeout:
        return TIMEOUT
    return json.loads(msg.data)


def shape(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items() if k not in IGNORED_KEYS}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


async def session(port: int) -> dict[str, Any]:
    a = await nats.connect(f"nats://a:a@127.0.0.1:{port}")
    b = await nats.connect(f"nats://b:b@127.0.0.1:{port}")
    s = await nats.connect(f"nats://sys:sys@127.0.0.1:{port}")
    await b.subscribe("b.private")
    await b.flush()
    out: dict[str, Any] = {}
    for subject in ("USER.INFO", "ACCOUNT.PING.CONNZ", "SERVER.PING.CONNZ", "ACCOUNT.PING.STATZ", "SERVER.PING", "SERVER.PING.VARZ"):
        out["a " + subject] = await req(a, "$SYS.REQ." + subject)
    out["a CONNZ of B"] = await req(a, "$SYS.REQ.ACCOUNT.PING.CONNZ", b'{"acc": "B", "subscriptions": true}')
    out["sys USER.INFO"] = await req(s, "$SYS.REQ.USER.INFO")
    for ep in ("VARZ", "IDZ", "HEALTHZ", "STATSZ", "SUBSZ", "ACCOUNTZ", "JSZ", "ROUTEZ", "LEAFZ", "GATEWAYZ", "CONNZ", "STATZ", "BOGUS"):
        out["sys PING." + ep] = await req(s, "$SYS.REQ.SERVER.PING." + ep)
    out["sys PING"] = await req(s, "$SYS.REQ.SERVER.PING")
    out["sys PING.CONNZ bad json"] = await req(s, "$SYS.REQ.SERVER.PING.CONNZ", b"{bad")
    out["sys PING.CONNZ other server"] = await req(s, "$SYS.REQ.SERVER.PING.CONNZ", b'{"server_name": "elsewhere"}', 0.5)
    out["sys PING.CONNZ subs"] = await req(s, "$SYS.REQ.SERVER.PING.CONNZ", b'{"subscriptions": true, "acc": "B"}')
    for ep in ("SUBSZ", "CONNZ", "STATZ", "JSZ", "LEAFZ", "INFO", "CONNS"):
        out["sys ACCOUNT.B." + ep] = await req(s, "$SYS.REQ.ACCOUNT.B." + ep)
    out["sys ACCOUNT.NOPE.INFO"] = await req(s, "$SYS.REQ.ACCOUNT.NOPE.INFO")
    out["sys ACCOUNT.PING.STATZ"] = await req(s, "$SYS.REQ.ACCOUNT.PING.STATZ")
    idz = out["sys PING.IDZ"]
    out["sys direct VARZ"] = await req(s, f"$SYS.REQ.SERVER.{idz['id']}.VARZ")
    out["sys other server VARZ"] = await req(s, "$SYS.REQ.SERVER.NOTUS.VARZ")
    for nc in (a, b, s):
        await nc.close()
    return out


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict[str, Any]]]:
    conf = tmp_path_factory.mktemp("sysapi") / "sys.conf"
    conf.write_text(CONF)
    out = {}
    for kind in ("natsd", "nats-server"):
        with running(kind, config=str(conf)) as server:
            out[kind] = asyncio.run(asyncio.wait_for(session(server.port), 60))
    yield out


def test_same_subjects_answered_with_the_same_shapes(results: dict[str, dict[str, Any]]) -> None:
    ours, theirs = results["natsd"], results["nats-server"]
    assert ours.keys() == theirs.keys()
    for key in theirs:
        if isinstance(theirs[key], str) or isinstance(ours[key], str):
            assert ours[key] == theirs[key], key
            continue
        ref, got = shape(theirs[key]), shape(ours[key])
        missing = _missing(ref, got)
        assert not missing, f"{key}: natsd lacks {missing}"


def _missing(ref: Any, got: Any, path: str = "") -> list[str]:
    if isinstance(ref, dict):
        if not isinstance(got, dict):
            return [path or "."]
        out = []
        for k, v in ref.items():
            out += [f"{path}.{k}"] if k not in got else _missing(v, got[k], f"{path}.{k}")
        return out
    if isinstance(ref, list) and ref and isinstance(got, list) and got:
        return _missing(ref[0], got[0], path + "[]")
    return []


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_answers_are_scoped_to_the_requester(results: dict[str, dict[str, Any]], kind: str) -> None:
    r = results[kind]
    info = r["a USER.INFO"]["data"]
    allow = info["permissions"]["publish"].pop("allow")
    assert sorted(allow) == sorted(["foo.>", "$SYS.REQ.>", "_INBOX.>"])  # nats-server's order varies
    assert info == {
        "user": "a",
        "account": "A",
        "account_name": "A",
        "permissions": {"publish": {}, "subscribe": {"deny": ["secret"]}},
    }
    assert r["sys USER.INFO"]["data"] == {"user": "sys", "account": "SYS", "account_name": "SYS"}
    for key in ("a ACCOUNT.PING.CONNZ", "a SERVER.PING.CONNZ", "a CONNZ of B"):
        conns = r[key]["data"]["connections"]
        assert [c["cid"] for c in conns] == [c["cid"] for c in r["a ACCOUNT.PING.CONNZ"]["data"]["connections"]]
        assert len(conns) == 1, key  # a's own connection, never B's
        assert "subscriptions_list" not in conns[0] or "b.private" not in conns[0]["subscriptions_list"]
    assert [row["acc"] for row in r["a ACCOUNT.PING.STATZ"]["data"]["account_statz"]] == ["A"]
    # What only the system account may ask has no responder for anyone else.
    assert r["a SERVER.PING"] == r["a SERVER.PING.VARZ"] == NO_REPLY


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_system_account_views(results: dict[str, dict[str, Any]], kind: str) -> None:
    r = results[kind]
    assert r["sys PING.CONNZ"]["data"]["num_connections"] == 3
    assert r["sys ACCOUNT.B.CONNZ"]["data"]["num_connections"] == 1
    subs = r["sys PING.CONNZ subs"]["data"]["connections"]
    assert len(subs) == 1 and "b.private" in subs[0]["subscriptions_list"]
    assert "b.private" in [s["subject"] for s in r["sys ACCOUNT.B.SUBSZ"]["data"]["subscriptions_list"]]
    assert sorted(row["acc"] for row in r["sys ACCOUNT.PING.STATZ"]["data"]["account_statz"]) == ["A", "B", "SYS"]
    assert r["sys PING.HEALTHZ"]["data"] == {"status": "ok", "status_code": 200}
    assert r["sys ACCOUNT.B.JSZ"]["error"] == {"code": 500, "description": "jetstream not enabled"}
    assert r["sys ACCOUNT.B.INFO"]["data"]["client_connections"] == 1
    assert r["sys ACCOUNT.NOPE.INFO"]["error"] == {"code": 500, "description": "Account NOPE does not exist"}
    assert r["sys PING.CONNZ bad json"]["error"]["code"] == 400
    assert r["sys PING.CONNZ other server"] == TIMEOUT  # filtered: no reply
    assert r["sys PING.STATZ"] == r["sys PING.BOGUS"] == r["sys other server VARZ"] == NO_REPLY
    assert r["sys direct VARZ"]["data"]["server_id"] == r["sys PING.IDZ"]["id"]
    assert r["sys PING"]["statsz"]["connections"] == 3


def test_tenant_flood_is_bounded(tmp_path: Path) -> None:
    """300 monitoring requests at once from one tenant: past the account's
    rate (50/s, bursts of 100) they get no responder at once; the rest are
    answered (or dropped past the in-flight budget), all counted; the system
    account is still answered."""
    conf = tmp_path / "sys.conf"
    conf.write_text(CONF)

    async def main(port: int) -> tuple[list[Any], dict[str, Any]]:
        a = await nats.connect(f"nats://a:a@127.0.0.1:{port}")
        s = await nats.connect(f"nats://sys:sys@127.0.0.1:{port}")
        replies = await asyncio.gather(*(req(a, "$SYS.REQ.ACCOUNT.PING.CONNZ", timeout=5) for _ in range(300)))
        varz = await req(s, "$SYS.REQ.SERVER.PING.VARZ", timeout=5)
        await a.close()
        await s.close()
        return replies, varz

    with running("natsd", config=str(conf)) as server:
        replies, varz = asyncio.run(asyncio.wait_for(main(server.port), 60))
    answered = sum(1 for x in replies if isinstance(x, dict))
    limited = replies.count(NO_REPLY)
    assert answered >= 50 and limited >= 100, (answered, limited)
    counters = varz["data"]["system_api"]
    # Every forwarded request was answered or dropped before the VARZ (itself in flight).
    assert counters["answered"] + counters["dropped"] == 300 - limited
    assert sum(w["router"]["api_limited"] for w in varz["data"]["workers"]) == limited


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_user_info_in_operator_mode_names_come_from_the_jwts(kind: str) -> None:
    from servers import SHARED

    fix = SHARED / "fixtures" / "jwt"
    if not (fix / "expected.json").exists():
        pytest.skip("shared JWT fixtures not present beside the repo")
    expected = json.loads((fix / "expected.json").read_text())

    async def main(server: Server) -> Any:
        nc = await nats.connect(server.url, user_credentials=str(fix / "users/A/alice.creds"))
        info = await req(nc, "$SYS.REQ.USER.INFO")
        await nc.close()
        return info

    with running(kind, config=str(fix / "server-memory-resolver.conf")) as server:
        info = asyncio.run(asyncio.wait_for(main(server), 30))
    data = info["data"]
    assert data["account"] == expected["accounts"]["A"]["public"]
    assert (data["account_name"], data["user_name"]) == ("A", "alice")
    assert data["user"].startswith("U") and len(data["user"]) == 56


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_connect_and_disconnect_advisories(kind: str, tmp_path: Path) -> None:
    conf = tmp_path / "sys.conf"
    conf.write_text(CONF)

    async def main(port: int) -> list[dict[str, Any]]:
        s = await nats.connect(f"nats://sys:sys@127.0.0.1:{port}")
        connects = await s.subscribe("$SYS.ACCOUNT.*.CONNECT")
        disconnects = await s.subscribe("$SYS.ACCOUNT.B.DISCONNECT")
        await s.flush()
        b = await nats.connect(f"nats://b:b@127.0.0.1:{port}", name="billing-app")
        await b.publish("b.x", b"hello")
        await b.flush()
        await b.close()
        events = [json.loads((await sub.next_msg(timeout=5)).data) for sub in (connects, disconnects)]
        await s.close()
        return events

    with running(kind, config=str(conf)) as server:
        connect, disconnect = asyncio.run(asyncio.wait_for(main(server.port), 30))
    assert connect["type"] == "io.nats.server.advisory.v1.client_connect"
    assert disconnect["type"] == "io.nats.server.advisory.v1.client_disconnect"
    for event in (connect, disconnect):
        client = event["client"]
        assert (client["acc"], client["user"], client["name"], client["kind"]) == ("B", "b", "billing-app", "Client")
        assert "jwt" not in client and event["server"]["id"]
    assert connect["client"]["id"] == disconnect["client"]["id"]
    assert disconnect["sent"] == {"msgs": 1, "bytes": 5}
    assert disconnect["received"] == {"msgs": 0, "bytes": 0}
    assert disconnect["reason"] == "Client Closed" and "stop" in disconnect["client"]


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_authentication_failures_are_reported_to_the_system_account(kind: str, tmp_path: Path) -> None:
    import socket

    conf = tmp_path / "sys.conf"
    conf.write_text(CONF)

    async def main(port: int) -> dict[str, Any]:
        s = await nats.connect(f"nats://sys:sys@127.0.0.1:{port}")
        sub = await s.subscribe("$SYS.SERVER.*.CLIENT.AUTH.ERR")
        await s.flush()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.recv(4096)
            raw.sendall(b'CONNECT {"user":"a","pass":"wrong","verbose":false,"name":"x\\u0001y"}\r\nPING\r\n')
            assert raw.recv(4096) == b"-ERR 'Authorization Violation'\r\n"
        event = json.loads((await sub.next_msg(timeout=5)).data)
        await s.close()
        return event

    with running(kind, config=str(conf)) as server:
        event = asyncio.run(asyncio.wait_for(main(server.port), 30))
    assert event["type"] == "io.nats.server.advisory.v1.client_disconnect"
    assert event["reason"] == "Authentication Failure"
    client = event["client"]
    assert (client["acc"], client["user"], client["name"]) == ("$G", "a", "x\x01y")
    assert "pass" not in json.dumps(event) and "wrong" not in json.dumps(event)


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
@pytest.mark.parametrize(("signame", "event"), [("SIGUSR2", "LAMEDUCK"), ("SIGTERM", "SHUTDOWN")])
def test_lame_duck_and_shutdown_events(kind: str, signame: str, event: str, tmp_path: Path) -> None:
    """A system-account subscriber hears ``$SYS.SERVER.<id>.LAMEDUCK`` /
    ``.SHUTDOWN`` (the server block) before its connection goes."""
    import signal
    import socket
    import time

    conf = tmp_path / "sys.conf"
    conf.write_text(CONF + 'lame_duck_grace_period: "0s"\n')
    with running(kind, config=str(conf)) as server, socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.recv(65536)
        raw.sendall(b'CONNECT {"user":"sys","pass":"sys","verbose":false}\r\nSUB $SYS.SERVER.*.%s 1\r\nPING\r\n' % event.encode())
        buf = b""
        while b"PONG\r\n" not in buf:
            buf += raw.recv(65536)
        server.signal(getattr(signal, signame))
        buf, deadline = b"", time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = buf.split(b"\r\n")
            msg = next((i for i, x in enumerate(lines) if x.startswith(b"MSG ")), None)
            if msg is not None and msg + 1 < len(lines) - 1:
                break
            chunk = raw.recv(65536)
            if not chunk:
                break
            buf += chunk
    lines = buf.split(b"\r\n")
    msg = next(i for i, x in enumerate(lines) if x.startswith(b"MSG "))
    assert lines[msg].split()[1].endswith(b"." + event.encode())
    body = json.loads(lines[msg + 1])
    assert body["id"] in lines[msg].decode() and body["host"] == "127.0.0.1"

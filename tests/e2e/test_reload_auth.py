"""SIGHUP reload of users, passwords and permissions, on live connections.

The config file lives in tmp_path; clients connect, the file is rewritten and
the server gets SIGHUP. Both servers log "Reloaded server configuration" when
done, which is what the tests wait for (never a sleep). Behaviour that both
servers share is asserted on both; natsd's own choices are asserted on natsd.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from authconf import Raw, connect_line, nkey_user, sign_nonce, wait_closed, wait_log
from rawproto import transcript
from servers import Server, running

pytestmark = pytest.mark.e2e

NK_SEED, NK_PUB = nkey_user(7)
AUTH_VIOLATION = "-ERR 'Authorization Violation'"

BEFORE = f"""
authorization {{
  users: [
    {{ user: keep, password: keep-pw }}
    {{ user: gone, password: gone-pw }}
    {{ user: pwchange, password: old-pw }}
    {{ user: perm, password: perm-pw, permissions: {{ publish: "a.>", subscribe: "a.>" }} }}
    {{ nkey: {NK_PUB} }}
  ]
}}
accounts {{ M: {{ users: [ {{ user: mover, password: mover-pw }} ] }}, N: {{}} }}
"""
AFTER = """
authorization {
  users: [
    { user: keep, password: keep-pw }
    { user: pwchange, password: new-pw }
    { user: perm, password: perm-pw, permissions: { publish: "b.>", subscribe: "b.>" } }
    { user: added, password: added-pw }
  ]
}
accounts { M: {}, N: { users: [ { user: mover, password: mover-pw } ] } }
"""


def login(user: str, pw: str) -> bytes:
    return connect_line(user=user, password=pw)


def write_atomic(conf: Path, text: str) -> None:
    """Replace the file in one step: a server must never read it half-written."""
    tmp = conf.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(conf)


def reload(server: Server, conf: Path, text: str, count: int = 1) -> None:
    write_atomic(conf, text)
    server.signal(signal.SIGHUP)
    wait_log(server, "Reloaded server configuration", count)


@pytest.fixture(params=["natsd", "nats-server"])
def reloaded(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, dict[str, Raw]]]:
    """A server whose config went from BEFORE to AFTER with clients connected."""
    conf = tmp_path / "reload.conf"
    conf.write_text(BEFORE)
    with running(request.param, config=str(conf)) as server:
        conns = {
            "keep": Raw(server.port, login("keep", "keep-pw")),
            "gone": Raw(server.port, login("gone", "gone-pw")),
            "pwchange": Raw(server.port, login("pwchange", "old-pw")),
            "perm": Raw(server.port, login("perm", "perm-pw")),
            "mover": Raw(server.port, login("mover", "mover-pw")),
        }
        nk = Raw(server.port, b"")
        nk.send(connect_line(nkey=NK_PUB, sig=sign_nonce(NK_SEED, nk.info["nonce"])))
        conns["nkey"] = nk
        for name, c in conns.items():
            assert c.sync(b"SUB a.x 1\r\n" if name == "perm" else b"") == [], name
        reload(server, conf, AFTER)
        try:
            yield server, conns
        finally:
            for c in conns.values():
                c.close()


@pytest.mark.parametrize("name", ["gone", "pwchange", "nkey", "mover"])
def test_removed_or_changed_identity_closed(reloaded, name: str) -> None:  # type: ignore[no-untyped-def]
    """natsd says why (Authorization Violation) for every identity that is no longer valid.

    nats-server sends it only for a changed password; a removed user or nkey, or a
    user moved to another account, is closed without -ERR.
    """
    server, conns = reloaded
    lines = wait_closed(conns[name])
    if server.kind == "nats-server" and name != "pwchange":
        assert lines == ["<closed>"], f"{name}: {lines}"
    else:
        assert lines == [AUTH_VIOLATION, "<closed>"], f"{name}: {lines}"


def test_unaffected_connection_keeps_working(reloaded) -> None:  # type: ignore[no-untyped-def]
    _server, conns = reloaded
    keep = conns["keep"]
    assert keep.sync(b"SUB k 1\r\nPUB k 2\r\nok\r\n") == ["MSG k 1 2", "ok"]


def test_new_permissions_apply_to_live_connection(reloaded) -> None:  # type: ignore[no-untyped-def]
    _server, conns = reloaded
    perm = conns["perm"]
    # Both servers drop the now-forbidden SUB a.x at reload and say which one.
    assert perm.sync(b"PUB a.x 1\r\nx\r\n") == [
        "-ERR 'Permissions Violation for Subscription to \"a.x\" (sid \"1\")'",
        "-ERR 'Permissions Violation for Publish to \"a.x\"'",
    ]
    assert perm.sync(b"SUB b.y 2\r\nPUB b.y 1\r\ny\r\n") == ["MSG b.y 2 1", "y"]
    assert perm.sync(b"SUB a.z 3\r\n") == ["-ERR 'Permissions Violation for Subscription to \"a.z\"'"]


def test_logins_follow_the_new_config(reloaded) -> None:  # type: ignore[no-untyped-def]
    server, _conns = reloaded
    ok = ["PONG"]
    refused = [AUTH_VIOLATION, "<closed>"]
    assert transcript(server.port, login("added", "added-pw") + b"PING\r\n") == ok
    assert transcript(server.port, login("pwchange", "new-pw") + b"PING\r\n") == ok
    assert transcript(server.port, login("pwchange", "old-pw") + b"PING\r\n") == refused
    assert transcript(server.port, login("gone", "gone-pw") + b"PING\r\n") == refused
    assert transcript(server.port, login("keep", "keep-pw") + b"PING\r\n") == ok
    assert transcript(server.port, login("mover", "mover-pw") + b"PING\r\n") == ok


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_existing_subscription_no_longer_allowed_is_removed(kind: str, tmp_path: Path) -> None:
    """A wildcard SUB the new permissions no longer allow is removed with an
    -ERR naming its sid; one still allowed keeps receiving; nothing on the old
    subjects reaches the client afterwards."""
    conf = tmp_path / "r.conf"
    conf.write_text(BEFORE)
    with running(kind, config=str(conf)) as server:
        perm = Raw(server.port, login("perm", "perm-pw"))
        assert perm.sync(b"SUB a.> 1\r\nSUB a.b 2\r\n") == []
        after = AFTER.replace('publish: "b.>", subscribe: "b.>"', 'publish: ">", subscribe: ["b.>", "a.b"]')
        reload(server, conf, after)
        assert perm.sync() == ["-ERR 'Permissions Violation for Subscription to \"a.>\" (sid \"1\")'"]
        keep = Raw(server.port, login("keep", "keep-pw"))
        assert keep.sync(b"PUB a.y 1\r\ny\r\nPUB a.b 1\r\nb\r\n") == []
        assert perm.sync() == ["MSG a.b 2 1", "b"]
        # The removed sid is gone: UNSUB of it is a no-op, a new SUB a.> is refused.
        assert perm.sync(b"UNSUB 1\r\nSUB a.> 3\r\n") == [
            "-ERR 'Permissions Violation for Subscription to \"a.>\"'"
        ]
        perm.close()
        keep.close()


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_switching_auth_on_closes_anonymous_clients(kind: str, tmp_path: Path) -> None:
    conf = tmp_path / "on.conf"
    conf.write_text("max_payload: 1MB\n")
    with running(kind, config=str(conf)) as server:
        anon = Raw(server.port, connect_line())
        assert anon.sync(b"SUB s 1\r\n") == []
        reload(server, conf, 'authorization { users: [ { user: u, password: p } ] }\n')
        assert wait_closed(anon) == [AUTH_VIOLATION, "<closed>"]
        assert transcript(server.port, b"CONNECT {}\r\nPING\r\n") == [AUTH_VIOLATION, "<closed>"]
        assert transcript(server.port, login("u", "p") + b"PING\r\n") == ["PONG"]
        anon.close()


@pytest.mark.parametrize("kind", ["natsd", "nats-server"])
def test_broken_config_leaves_server_untouched(kind: str, tmp_path: Path) -> None:
    conf = tmp_path / "broken.conf"
    conf.write_text(BEFORE)
    with running(kind, config=str(conf)) as server:
        gone = Raw(server.port, login("gone", "gone-pw"))
        assert gone.sync() == []
        write_atomic(conf, AFTER + "\nauthorization {{{ broken\n")
        server.signal(signal.SIGHUP)
        wait_log(server, "Failed to reload server configuration")
        assert gone.sync(b"SUB g 1\r\nPUB g 1\r\nx\r\n") == ["MSG g 1 1", "x"]
        assert transcript(server.port, login("added", "added-pw") + b"PING\r\n") == [AUTH_VIOLATION, "<closed>"]
        gone.close()


@pytest.mark.parametrize(
    "kind",
    [
        "nats-server",
        "natsd",
    ],
)
def test_connection_types_no_longer_admitting_client_close_it(kind: str, tmp_path: Path) -> None:
    conf = tmp_path / "ct.conf"
    conf.write_text("authorization { users: [ { user: u, password: p } ] }\n")
    with running(kind, config=str(conf)) as server:
        u = Raw(server.port, login("u", "p"))
        assert u.sync() == []
        reload(server, conf, 'authorization { users: [ { user: u, password: p, allowed_connection_types: ["WEBSOCKET"] } ] }\n')
        assert wait_closed(u) == [AUTH_VIOLATION, "<closed>"]
        u.close()


@pytest.mark.parametrize(
    "kind",
    [
        "nats-server",
        "natsd",
    ],
)
def test_reload_to_no_auth_user_leaves_no_unrestricted_anonymous_client(kind: str, tmp_path: Path) -> None:
    conf = tmp_path / "nau.conf"
    conf.write_text("max_payload: 1MB\n")
    with running(kind, config=str(conf)) as server:
        old = Raw(server.port, connect_line())
        assert old.sync() == []
        write_atomic(
            conf,
            'no_auth_user: anon\naccounts { A: { users: [ { user: anon, password: x, '
            'permissions: { publish: "anon.>", subscribe: "anon.>" } } ] } }\n',
        )
        server.signal(signal.SIGHUP)
        wait_log(server, "server configuration")  # "Reloaded ..." or "Failed to reload ..."
        new_policy = transcript(server.port, connect_line() + b"PUB foo 1\r\nx\r\nPING\r\n")
        got = old.sync(b"PUB foo 1\r\nx\r\n")
        if new_policy == ["PONG"]:
            assert got == [], "config not applied: the old client keeps working"
        else:
            assert got != [], f"new clients get {new_policy} but the old anonymous client publishes freely"
        old.close()

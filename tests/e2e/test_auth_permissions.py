"""Subject permissions end to end: natsd must answer as nats-server, except where
natsd is deliberately stricter (asserted on both servers, so the divergence is
real and pinned).

Each scenario drives one or more raw connections (``authconf.Raw``) and returns
everything each connection saw; the results from the two servers must be equal.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator

import pytest
from authconf import Raw, both, connect_line, write_conf
from rawproto import transcript
from servers import Server, free_port, running

pytestmark = [pytest.mark.e2e, pytest.mark.differential]

CONF = """
authorization {
  default_permissions: { publish: "dflt.>", subscribe: ["dflt.>", "_INBOX.>"] }
  users: [
    { user: admin, password: pw, permissions: { publish: ">", subscribe: ">" } }
    { user: dflt, password: pw }
    { user: limited, password: pw, permissions: {
        publish: { allow: ["foo.>"], deny: ["foo.secret"] }
        subscribe: { allow: ["foo.>", "_INBOX.>"], deny: ["foo.secret", "foo.hidden.>"] } } }
    { user: queues, password: pw, permissions: {
        subscribe: { allow: ["work.> q1", "jobs", "jobs v1", "mixed.>", "secret q1"],
                     deny: ["work.private q1", "> *.prod", "secret"] } } }
    { user: denyonly, password: pw, permissions: { publish: { deny: ["no.>"] }, subscribe: { deny: ["no.>"] } } }
    { user: resp, password: pw, permissions: { subscribe: "svc.>", allow_responses: { max: 2, expires: "1s" } } }
    { user: resp1, password: pw, permissions: { subscribe: "svc.>", allow_responses: true } }
    { user: respdeny, password: pw, permissions: {
        publish: { allow: ["pub.>"], deny: ["_INBOX.>"] }, subscribe: "svc.>", allow_responses: true } }
    { user: star, password: pw, permissions: { publish: ">", subscribe: "foo.*" } }
  ]
}
"""


def login(user: str, **kw: object) -> bytes:
    return connect_line(user=user, password="pw", **kw)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    conf = write_conf(tmp_path_factory.mktemp("perms"), "perms.conf", CONF)
    with both(conf) as p:
        yield p


# -- single-connection transcripts --------------------------------------------------------

SCRIPTS: dict[str, bytes] = {
    "pub-denied-stays-open": login("limited") + b"PUB bar 1\r\nx\r\nSUB foo.a 1\r\nPUB foo.a 1\r\ny\r\nPING\r\n",
    "pub-denied-verbose-no-ok": login("limited", verbose=True) + b"PUB bar 1\r\nx\r\nPING\r\n",
    "pub-deny-wins": login("limited") + b"PUB foo.secret 1\r\nx\r\nPUB foo.secrets 1\r\ny\r\nPING\r\n",
    "pub-wildcard-subject-literal": login("limited") + b"PUB foo.* 1\r\nx\r\nPUB foo.> 1\r\ny\r\nPING\r\n",
    "hpub-denied": login("limited", headers=True) + b"HPUB bar 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
    "pub-reply-not-checked": login("limited") + b"SUB foo.a 1\r\nPUB foo.a bar.reply 1\r\nx\r\nPING\r\n",
    "sub-denied": login("limited") + b"SUB bar 1\r\nSUB foo.secret 2\r\nSUB foo.hidden.x 3\r\nSUB foo.hidden.> 4\r\nPING\r\n",
    "sub-denied-then-works": login("limited") + b"SUB bar 1\r\nSUB foo.ok 1\r\nPUB foo.ok 1\r\nz\r\nPING\r\n",
    "sub-wildcard-overlapping-deny-allowed": login("limited") + b"SUB foo.* 1\r\nSUB foo.> 2\r\nPING\r\n",
    "sub-superset-of-deny": login("limited") + b"SUB foo.hidden.* 1\r\nSUB > 2\r\nSUB foo.*.x 3\r\nPING\r\n",
    "queue-allowed": login("queues") + b"SUB work.a q1 1\r\nSUB work.a.b q1 2\r\nPING\r\n",
    "queue-plain-denied": login("queues") + b"SUB work.a 1\r\nSUB work.a q2 2\r\nPING\r\n",
    "queue-deny": login("queues") + b"SUB work.private q1 1\r\nSUB work.private q2 2\r\nPING\r\n",
    "queue-deny-pattern": login("queues") + b"SUB jobs a.prod 1\r\nSUB mixed.x b.prod 2\r\nSUB mixed.x prod 3\r\nPING\r\n",
    "queue-plain-or-named": login("queues") + b"SUB jobs 1\r\nSUB jobs v1 2\r\nSUB jobs v2 3\r\nPING\r\n",
    "queue-sys-reserved": login("admin") + b"SUB foo _sys_ 1\r\nPING\r\n",
    "queue-wildcard-queue-name": login("queues") + b"SUB jobs *.prod 1\r\nSUB jobs > 2\r\nPING\r\n",
    "plain-deny-beats-queue-allow": login("queues") + b"SUB secret q1 1\r\nSUB secret 2\r\nPING\r\n",
    "deny-only-user": login("denyonly") + b"SUB no.x 1\r\nSUB yes 2\r\nPUB no.y 1\r\nx\r\nPUB yes 1\r\ny\r\nPING\r\n",
    "default-permissions": login("dflt") + b"SUB dflt.a 1\r\nPUB dflt.a 1\r\nx\r\nPUB other 1\r\ny\r\nSUB other 2\r\nPING\r\n",
    "allow-responses-no-pub": login("resp") + b"PUB foo 1\r\nx\r\nPUB _INBOX.x 1\r\ny\r\nPING\r\n",
    "reserved-reply-prefixes": login("admin")
    + b"PUB a _R_.x 1\r\nx\r\nPUB a $JS.ACK.x 1\r\nx\r\nPUB a _GR_.x 1\r\nx\r\nPUB a _INBOX.ok 1\r\nx\r\nPING\r\n",
    "reserved-publish": login("admin") + b"SUB > 1\r\nPUB _GR_.x 1\r\nx\r\nPUB $NRG.x 1\r\ny\r\nPING\r\n",
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_same_transcript(pair: tuple[Server, Server], name: str) -> None:
    natsd, ref = pair
    expected = transcript(ref.port, SCRIPTS[name])
    got = transcript(natsd.port, SCRIPTS[name])
    assert got == expected, f"{name}: natsd {got} != nats-server {expected}"


# -- multi-connection scenarios -----------------------------------------------------------


def delivery_filter(port: int) -> dict[str, list[str]]:
    sub = Raw(port, login("limited"))
    first = sub.sync(b"SUB foo.* 1\r\nSUB foo.> 2\r\nSUB foo.hidden.* 3\r\n")
    pub = Raw(port, login("admin"))
    pub.sync(b"".join(b"PUB foo.%s 1\r\nx\r\n" % s for s in (b"a", b"secret", b"hidden", b"hidden.x", b"b.c")))
    got = {"sub-errors": first, "sub": sub.sync()}
    sub.close()
    pub.close()
    return got


def queue_filter(port: int) -> dict[str, list[str]]:
    sub = Raw(port, login("queues"))
    first = sub.sync(b"SUB work.* q1 1\r\nSUB other.> q1 2\r\n")
    pub = Raw(port, login("admin"))
    pub.sync(b"PUB work.private 1\r\np\r\nPUB work.public 1\r\nq\r\n")
    got = {"sub-errors": first, "sub": sub.sync()}
    sub.close()
    pub.close()
    return got


def _responder(port: int, user: str, replies: int, wait: float = 0.0) -> dict[str, list[str]]:
    svc = Raw(port, login(user))
    svc.sync(b"SUB svc.a 1\r\n")
    req = Raw(port, login("admin"))
    req.sync(b"SUB _INBOX.r 9\r\nPUB svc.a _INBOX.r 3\r\nreq\r\n")
    seen = svc.sync()
    if wait:
        time.sleep(wait)
    errs = svc.sync(b"".join(b"PUB _INBOX.r 2\r\nr%d\r\n" % i for i in range(replies)))
    got = {"svc-request": seen, "svc-errors": errs, "requester": req.sync()}
    svc.close()
    req.close()
    return got


def allow_responses_max(port: int) -> dict[str, list[str]]:
    return _responder(port, "resp", 3)


def allow_responses_default_max_one(port: int) -> dict[str, list[str]]:
    return _responder(port, "resp1", 2)


def allow_responses_beats_deny(port: int) -> dict[str, list[str]]:
    return _responder(port, "respdeny", 2)


def allow_responses_expired(port: int) -> dict[str, list[str]]:
    # expires is 1s; waiting well past it is about the semantics, not the timing.
    return _responder(port, "resp", 1, wait=1.6)


def allow_responses_other_reply_denied(port: int) -> dict[str, list[str]]:
    svc = Raw(port, login("resp"))
    svc.sync(b"SUB svc.a 1\r\n")
    req = Raw(port, login("admin"))
    req.sync(b"PUB svc.a _INBOX.r 1\r\nx\r\n")
    got = {"svc": svc.sync(b"PUB _INBOX.other 1\r\nx\r\nPUB _INBOX.r.x 1\r\ny\r\n")}
    svc.close()
    req.close()
    return got


SCENARIOS: dict[str, Callable[[int], dict[str, list[str]]]] = {
    f.__name__: f
    for f in (
        delivery_filter,
        queue_filter,
        allow_responses_max,
        allow_responses_default_max_one,
        allow_responses_beats_deny,
        allow_responses_expired,
        allow_responses_other_reply_denied,
    )
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_same_scenario(pair: tuple[Server, Server], name: str) -> None:
    natsd, ref = pair
    expected = SCENARIOS[name](ref.port)
    got = SCENARIOS[name](natsd.port)
    assert got == expected, f"{name}: natsd {got} != nats-server {expected}"


# -- natsd stricter: the wildcard-subscription over-grant ---------------------------------


def _star(port: int) -> dict[str, list[str]]:
    sub = Raw(port, login("star"))
    first = sub.sync(b"SUB foo.> 1\r\n")
    pub = Raw(port, login("admin"))
    pub.sync(b"PUB foo.a 1\r\n1\r\nPUB foo.a.b 1\r\n2\r\nPUB foo.a.b.c 1\r\n3\r\n")
    got = {"sub-errors": first, "sub": sub.sync()}
    sub.close()
    pub.close()
    return got


def test_star_allow_admits_sub_gt_on_both(pair: tuple[Server, Server]) -> None:
    """allow ``foo.*`` accepts ``SUB foo.>`` on both servers (nats-server quirk kept)."""
    for s in pair:
        assert _star(s.port)["sub-errors"] == [], s.kind


def test_star_allow_sub_gt_never_receives_deeper_subjects_natsd(pair: tuple[Server, Server]) -> None:
    natsd, _ = pair
    assert _star(natsd.port)["sub"] == ["MSG foo.a 1 1", "1"]


def test_star_allow_sub_gt_over_grant_is_real_in_nats_server(pair: tuple[Server, Server]) -> None:
    _, ref = pair
    assert _star(ref.port)["sub"] == ["MSG foo.a 1 1", "1", "MSG foo.a.b 1 1", "2", "MSG foo.a.b.c 1 1", "3"]


# -- queue-deny bypass attempts: never receive a denied subject through a queue ----------


def _bypass(port: int, subs: bytes) -> list[str]:
    sub = Raw(port, login("queues"))
    sub.sync(subs)
    pub = Raw(port, login("admin"))
    pub.sync(b"PUB work.private 1\r\np\r\nPUB jobs 1\r\nj\r\nPUB mixed.a 1\r\nm\r\n")
    got = sub.sync()
    sub.close()
    pub.close()
    return got


@pytest.mark.parametrize(
    "subs",
    [
        b"SUB work.* q1 1\r\n",
        b"SUB work.> q1 1\r\n",
        b"SUB *.private q1 1\r\n",
        b"SUB > q1 1\r\n",
        b"SUB jobs x.prod 1\r\nSUB mixed.* y.prod 2\r\nSUB mixed.> *.prod 3\r\n",
    ],
    ids=["star", "gt", "leading-star", "full-wildcard", "prod-queues"],
)
def test_queue_deny_bypass_natsd(pair: tuple[Server, Server], subs: bytes) -> None:
    natsd, _ = pair
    got = _bypass(natsd.port, subs)
    assert "p" not in got, got
    if b"prod" in subs:
        assert not any(line.startswith("MSG") for line in got), got


# -- natsd stricter: empty permission lists are config errors -----------------------------


@pytest.mark.parametrize("perms", ["publish: []", "subscribe: { allow: [] }", "publish: {}"])
def test_empty_permission_list_rejected_at_load(tmp_path, perms: str) -> None:  # type: ignore[no-untyped-def]
    """nats-server reads an empty list as "unrestricted" and starts; natsd refuses the file."""
    conf = write_conf(tmp_path, "empty.conf", f"authorization {{ users: [ {{ user: u, password: p, permissions: {{ {perms} }} }} ] }}\n")
    with running("nats-server", config=conf) as ref:
        script = connect_line(user="u", password="p") + b"PUB x 1\r\nx\r\nPING\r\n"
        assert transcript(ref.port, script) == ["PONG"]
    proc = subprocess.run(
        [sys.executable, "-m", "natsd", "-c", conf, "-a", "127.0.0.1", "-p", str(free_port()), "--workers", "1"],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert b"empty" in proc.stdout + proc.stderr

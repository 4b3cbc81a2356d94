"""Account isolation: a client of one account never sees another account's traffic.

Seven accounts (``$G`` through an authorization user, and A to F) each get a
subscriber on a set of subjects including ``>`` and wildcards, plus a queue
member, and each account publishes on a set of subjects (with a reply
subject). Every subscriber must receive exactly its own account's messages.

natsd places accounts on workers by hash (``supervisor.sharding``); with four
workers this set has pairs on the same worker and pairs on different workers
(asserted, so the test keeps covering both), and every pair is checked. The
same scenario runs against nats-server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from authconf import Raw, connect_line, write_conf
from servers import Server, running

from natsd.sharding import worker_for

pytestmark = pytest.mark.e2e

ACCOUNTS = ["A", "B", "C", "D", "E", "F"]
ALL = ["$G", *ACCOUNTS]
USER = {"$G": "g", **{a: a.lower() for a in ACCOUNTS}}

CONF = "authorization { users: [ { user: g, password: pw } ] }\naccounts {\n" + "".join(
    f"  {a}: {{ users: [ {{ user: {a.lower()}, password: pw }} ] }}\n" for a in ACCOUNTS
) + "}\n"

SUB_SUBJECTS = [b">", b"*", b"foo", b"foo.*", b"foo.>", b"*.bar", b"_INBOX.>", b"$SYS.>"]
PUB_SUBJECTS = [b"foo", b"foo.bar", b"foo.bar.baz", b"x.bar", b"_INBOX.r", b"$SYS.x"]


def test_config_spans_same_and_different_workers() -> None:
    pairs = list(itertools.combinations(ALL, 2))
    same = [p for p in pairs if worker_for(p[0], 4) == worker_for(p[1], 4)]
    assert same and len(same) < len(pairs)


@pytest.fixture(scope="module")
def conf(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_conf(tmp_path_factory.mktemp("iso"), "accounts.conf", CONF)


@pytest.fixture(scope="module", params=["natsd-1", "natsd-4", "nats-server"])
def server(request: pytest.FixtureRequest, conf: str) -> Iterator[Server]:
    kind = request.param
    workers = int(kind.split("-")[1]) if kind.startswith("natsd") else None
    with running("natsd" if workers else "nats-server", config=conf, workers=workers) as s:
        yield s


def _login(account: str) -> bytes:
    return connect_line(user=USER[account], password="pw")


def _payloads(lines: list[str]) -> list[str]:
    """The payload of every MSG (the line after each MSG line)."""
    return [lines[i + 1] for i, line in enumerate(lines) if line.startswith("MSG ")]


def test_every_account_sees_only_itself(server: Server) -> None:
    subs: dict[str, Raw] = {}
    queues: dict[str, Raw] = {}
    try:
        for acc in ALL:
            subs[acc] = Raw(server.port, _login(acc))
            script = b"".join(b"SUB %s %d\r\n" % (s, i) for i, s in enumerate(SUB_SUBJECTS, 1))
            assert subs[acc].sync(script) == [], acc
            queues[acc] = Raw(server.port, _login(acc))
            assert queues[acc].sync(b"SUB foo shared 1\r\n") == [], acc
        for acc in ALL:
            pub = Raw(server.port, _login(acc))
            payload = acc.encode()
            script = b"".join(
                b"PUB %s _INBOX.%s %d\r\n%s\r\n" % (s, payload, len(payload), payload) for s in PUB_SUBJECTS
            )
            assert pub.sync(script) == [], acc
            pub.close()
        for acc in ALL:
            got = _payloads(subs[acc].sync())
            # positive control: each subscription matching a subject got its own copy
            want = sum(_matches(s, p) for s in SUB_SUBJECTS for p in PUB_SUBJECTS)
            assert got == [acc] * want, f"{acc} saw {sorted(set(got))} ({len(got)} msgs, want {want})"
            assert _payloads(queues[acc].sync()) == [acc], acc
    finally:
        for r in (*subs.values(), *queues.values()):
            r.close()


def test_pairwise_requests_do_not_cross(server: Server) -> None:
    """For every ordered pair: a request in X reaches no responder in Y."""
    for x, y in itertools.permutations(ALL, 2):
        responder = Raw(server.port, _login(y))
        responder.sync(b"SUB svc 1\r\nSUB _INBOX.> 2\r\n")
        requester = Raw(server.port, _login(x))
        requester.sync(b"SUB _INBOX.me 1\r\nPUB svc _INBOX.me 2\r\nhi\r\n")
        assert responder.sync() == [], (x, y)
        # the responder answers on the same subject in its own account: never seen by x
        responder.sync(b"PUB _INBOX.me 2\r\nyo\r\n")
        assert requester.sync() == [], (x, y)
        responder.close()
        requester.close()


def _matches(pattern: bytes, subject: bytes) -> bool:
    pt, st = pattern.split(b"."), subject.split(b".")
    for i, t in enumerate(pt):
        if t == b">":
            return len(st) > i
        if i >= len(st) or (t != b"*" and t != st[i]):
            return False
    return len(pt) == len(st)

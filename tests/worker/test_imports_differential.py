"""The pure import mapping against the real nats-server.

One nats-server runs with accounts A (exports), B (imports in every spelling)
and C (nothing). nats-py drives it; the test checks that what B's subscribers
and A's responders see is exactly what :class:`ImportTable` computes from the
same config (parsed by natsd's own loader).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from natsd.config.load import options_from_text
from natsd.subjects.tokens import subject_matches
from natsd.worker.imports import ImportTable

nats = pytest.importorskip("nats")
from nats.errors import NoRespondersError, TimeoutError  # noqa: E402
from servers import Server, nats_server_bin, running  # noqa: E402

pytestmark = [pytest.mark.differential, pytest.mark.e2e]

CONF = """
accounts: {
  A: { users: [{user: a, password: a}],
       exports: [
         {stream: "a.>"}
         {stream: "m.*.*"}
         {stream: "tok.*.data", account_token_position: 2}
         {service: "svc.x"}
         {service: "svc.s", response_type: stream, threshold: "5s"}
         {service: "w.*.>"}
         {service: "nobody"}
       ] }
  B: { users: [{user: b, password: b}],
       imports: [
         {stream: {account: A, subject: "a.>"}, prefix: "fa"}
         {stream: {account: A, subject: "m.*.*"}, to: "mm.$2.$1"}
         {stream: {account: A, subject: "tok.B.data"}}
         {service: {account: A, subject: "svc.x"}, to: "bx"}
         {service: {account: A, subject: "svc.s"}}
         {service: {account: A, subject: "w.*.>"}, to: "bw.*.>"}
         {service: {account: A, subject: "nobody"}}
       ] }
  C: { users: [{user: c, password: c}] }
}
"""
B_SUBS = [">", "fa.>", "fa.a.*", "fa.*", "*.a.x", "mm.*.5", "mm.2.1", "tok.*.*", "a.>"]
A_PUBS = ["a.x", "a.x.y", "a.5", "m.1.2", "m.5.9", "m.9.5", "tok.B.data", "tok.C.data", "zz", "a"]
SENTINEL = "a.zz-end"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if nats_server_bin() is None:
        pytest.skip("nats-server binary not available")
    path = Path(tmp_path_factory.mktemp("imports")) / "accounts.conf"
    path.write_text(CONF)
    with running("nats-server", config=str(path)) as s:
        yield s


@pytest.fixture(scope="module")
def table() -> ImportTable:
    opts, _ = options_from_text(CONF)
    t = ImportTable.build(opts.accounts)
    assert t.skipped == []
    return t


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


def url(s: Server, user: str) -> str:
    return f"nats://{user}:{user}@127.0.0.1:{s.port}"


async def drain(sub) -> list[tuple[str, str | None]]:  # type: ignore[no-untyped-def]
    out = []
    while True:
        try:
            m = await sub.next_msg(timeout=0.05)
        except TimeoutError:  # queue empty: everything queued has been read
            return out
        out.append((m.subject, m.reply or None))


def test_stream_subjects_match_reference(server: Server, table: ImportTable) -> None:
    async def main() -> dict[str, list[tuple[str, str | None]]]:
        a, b, c = [await nats.connect(url(server, u)) for u in "abc"]
        subs = {p: await b.subscribe(p) for p in B_SUBS}
        c_sub = await c.subscribe(">")
        end = await b.subscribe("fa." + SENTINEL)
        await b.flush()
        await c.flush()
        for p in A_PUBS:
            await a.publish(p, b"x", reply="rep.1")
        await a.publish(SENTINEL, b"")
        await a.flush()
        await end.next_msg(timeout=20)  # everything before it is queued by now
        got = {p: await drain(s) for p, s in subs.items()}
        got["C"] = await drain(c_sub)
        for nc in (a, b, c):
            await nc.close()
        return got

    got = run(main())
    assert got.pop("C") == []
    assert sum(map(len, got.values())) >= 15  # the scenario exercises the imports
    for pat, received in got.items():
        expected = []
        for p in [*A_PUBS, SENTINEL]:
            for t in table.stream_targets("A", p.encode()):
                if t.importer == "B" and subject_matches(pat.encode(), t.subject):
                    expected.append((t.subject.decode(), "rep.1" if p != SENTINEL else None))
                    # Interest computed from the subscription alone must agree.
                    assert any(subject_matches(s.subject, p.encode()) for s in table.shadows("B", pat.encode()))
        assert sorted(received) == sorted(expected), pat


def test_services_match_reference(server: Server, table: ImportTable) -> None:
    async def main() -> tuple[list, dict[str, list[bytes]], str]:  # type: ignore[type-arg]
        a, b = [await nats.connect(url(server, u)) for u in "ab"]
        seen: list[tuple[str, str, dict[str, str] | None]] = []

        async def responder(m) -> None:  # type: ignore[no-untyped-def]
            seen.append((m.subject, m.reply, m.headers))
            await a.publish(m.reply, b"r1")
            await a.publish(m.reply, b"r2")
            if m.subject == "svc.s":
                await a.publish(m.reply, b"")  # end of stream
                await a.publish(m.reply, b"after-eof")

        await a.subscribe("svc.*", cb=responder)
        await a.subscribe("w.>", cb=responder)
        await a.flush()
        inbox = {k: await b.subscribe(f"IN.{k}") for k in ("bx", "svc.s", "bw.7.z.q")}
        await b.flush()
        for k in inbox:
            await b.publish(k, b"q", reply=f"IN.{k}")
        await b.flush()
        got: dict[str, list[bytes]] = {k: [] for k in inbox}
        want = {"bx": 1, "svc.s": 3, "bw.7.z.q": 1}
        for k, s in inbox.items():
            for _ in range(want[k]):
                got[k].append((await s.next_msg(timeout=20)).data)
        # A trailing round trip through the same responder flushes anything extra.
        await b.publish("bx", b"q", reply="IN.bx")
        got["bx"].append((await inbox["bx"].next_msg(timeout=20)).data)
        for k, s in inbox.items():
            got[k] += [b"extra"] * len(await drain(s))
        try:
            await b.request("nobody", b"", timeout=20)
            nr = "answered"
        except NoRespondersError:
            nr = "503"
        await a.close()
        await b.close()
        return seen, got, nr

    seen, got, nr = run(main())
    # Request subjects in A are the table's mapping of B's local subjects.
    mapped = {t.subject.decode() for k in ("bx", "svc.s", "bw.7.z.q") for t in table.service_targets("B", k.encode())}
    assert {s for s, _, _ in seen} == mapped == {"svc.x", "svc.s", "w.7.z.q"}
    for _, reply, headers in seen:
        assert re.fullmatch(r"_R_\.[0-9A-Za-z]{6}\.[0-9A-Za-z]{6}", reply)
        assert headers is not None and json.loads(headers["Nats-Request-Info"])["acc"] == "B"
    # Response types, as the table reports them.
    rt = {k: table.service_targets("B", k.encode())[0].response_type for k in got}
    assert rt == {"bx": "singleton", "svc.s": "stream", "bw.7.z.q": "singleton"}
    assert got["bx"] == [b"r1", b"r1"]  # singleton: the second response is dropped
    assert got["bw.7.z.q"] == [b"r1"]
    assert got["svc.s"] == [b"r1", b"r2", b""]  # stream: all until the empty EOF
    # A request through an import that reaches nobody in A is a 503 for the requester.
    assert table.service_targets("B", b"nobody") and nr == "503"

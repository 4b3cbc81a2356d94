"""Accounts that share: stream and service imports, across and within workers.

Stream imports are exercised in the prefix form, the plain form and the `to`
form with wildcard token mapping (`mapped.$2.$1`).

The same config runs on nats-server (the reference) and on natsd with one
worker, with exporter and importer on the same worker, and on different
workers (account names chosen so that the hash places them apart).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.errors import NoRespondersError
from servers import Server, running

from natsd.sharding import worker_for

pytestmark = pytest.mark.e2e

CONF = """
accounts {
  %(exp)s: {
    users: [ {user: exp, password: exp} ]
    exports: [
      {stream: "a.>"}
      {service: "svc.x"}
      {service: "svc.s", response_type: stream}
      {stream: "priv.>", accounts: [%(imp)s]}
      {stream: "m.>"}
    ]
  }
  %(imp)s: {
    users: [ {user: imp, password: imp} ]
    imports: [
      {stream: {account: %(exp)s, subject: "a.>"}, prefix: "from"}
      {stream: {account: %(exp)s, subject: "priv.>"}}
      {stream: {account: %(exp)s, subject: "m.*.*"}, to: "mapped.$2.$1"}
      {service: {account: %(exp)s, subject: "svc.x"}, to: "x"}
      {service: {account: %(exp)s, subject: "svc.s"}}
    ]
  }
  OTHER: { users: [ {user: other, password: other} ] }
}
"""

# (exporter, importer, natsd workers): names picked so that with 2 workers
# ACME/B share a worker and EXP/IMP do not.
LAYOUTS = [("ACME", "IMP", 1), ("A", "B", 2), ("EXP", "IMP", 2)]


def _conf(tmp: Path, exp: str, imp: str) -> str:
    path = tmp / f"imports-{exp}-{imp}.conf"
    path.write_text(CONF % {"exp": exp, "imp": imp})
    return str(path)


@pytest.fixture(params=LAYOUTS + [("EXP", "IMP", 0)], ids=lambda p: f"{p[0]}-{p[1]}-w{p[2]}" if p[2] else "nats-server")
def layout(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Server, int]]:
    exp, imp, workers = request.param
    if workers == 2:
        same = worker_for(exp, 2) == worker_for(imp, 2)
        assert same == (exp == "A"), "layout names no longer land where the test expects"
    conf = _conf(tmp_path, exp, imp)
    kind = "natsd" if workers else "nats-server"
    with running(kind, config=conf, workers=workers or None) as s:
        yield s, workers


def url(server: Server, user: str) -> str:
    return f"nats://{user}:{user}@127.0.0.1:{server.port}"


def run(coro) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(asyncio.wait_for(coro, 30))


def test_stream_import_prefix_and_private(layout: tuple[Server, int]) -> None:
    server, _ = layout

    async def main() -> None:
        exp = await nats.connect(url(server, "exp"))
        imp = await nats.connect(url(server, "imp"))
        other = await nats.connect(url(server, "other"))
        prefixed = await imp.subscribe("from.a.>")
        unprefixed = await imp.subscribe("a.>")
        private = await imp.subscribe("priv.>")
        mapped = await imp.subscribe("mapped.>")
        nothing = await other.subscribe(">")
        await imp.flush()
        await other.flush()
        await asyncio.sleep(0.2)  # interest crosses workers asynchronously
        await exp.publish("a.one", b"1")
        await exp.publish("priv.two", b"2")
        await exp.publish("b.three", b"3")
        await exp.publish("m.x.y", b"4")
        await exp.flush()
        m = await prefixed.next_msg(timeout=3)
        assert (m.subject, m.data) == ("from.a.one", b"1")
        m = await private.next_msg(timeout=3)
        assert (m.subject, m.data) == ("priv.two", b"2")
        m = await mapped.next_msg(timeout=3)
        assert (m.subject, m.data) == ("mapped.y.x", b"4")
        for sub in (unprefixed, nothing, prefixed, private, mapped):
            with pytest.raises(nats.errors.TimeoutError):
                await sub.next_msg(timeout=0.3)
        for nc in (exp, imp, other):
            await nc.close()

    run(main())


async def _first_request(nc, subject: str, data: bytes):  # type: ignore[no-untyped-def]
    """The first request through an import, retried while the servers (both
    of them, on a loaded 2-core machine) finish wiring the import."""
    for attempt in range(5):
        try:
            return await nc.request(subject, data, timeout=3)
        except (NoRespondersError, nats.errors.TimeoutError):
            if attempt == 4:
                raise
            await asyncio.sleep(0.3)
    raise AssertionError("unreachable")


def test_service_import_singleton_and_stream(layout: tuple[Server, int]) -> None:
    server, _ = layout

    async def main() -> None:
        exp = await nats.connect(url(server, "exp"))
        imp = await nats.connect(url(server, "imp"))
        other = await nats.connect(url(server, "other"))

        async def echo(msg) -> None:  # type: ignore[no-untyped-def]
            await exp.publish(msg.reply, b"echo:" + msg.data)
            await exp.publish(msg.reply, b"second")  # singleton: dropped

        async def stream(msg) -> None:  # type: ignore[no-untyped-def]
            for i in range(3):
                await exp.publish(msg.reply, b"part%d" % i)

        await exp.subscribe("svc.x", cb=echo)
        await exp.subscribe("svc.s", cb=stream)
        await exp.flush()
        r = await _first_request(imp, "x", b"hi")
        assert r.data == b"echo:hi"
        inbox = imp.new_inbox()
        sub = await imp.subscribe(inbox)
        await imp.publish("x", b"again", reply=inbox)
        assert (await sub.next_msg(timeout=3)).data == b"echo:again"
        with pytest.raises(nats.errors.TimeoutError):
            await sub.next_msg(timeout=0.4)
        inbox2 = imp.new_inbox()
        parts = await imp.subscribe(inbox2)
        await imp.publish("svc.s", b"go", reply=inbox2)
        got = [(await parts.next_msg(timeout=3)).data for _ in range(3)]
        assert got == [b"part0", b"part1", b"part2"]
        with pytest.raises(NoRespondersError):
            await other.request("x", b"nobody", timeout=2)
        for nc in (exp, imp, other):
            await nc.close()

    run(main())


def test_service_import_no_responders(layout: tuple[Server, int]) -> None:
    server, _ = layout

    async def main() -> None:
        imp = await nats.connect(url(server, "imp"))
        with pytest.raises(NoRespondersError):
            await imp.request("x", b"anyone?", timeout=3)
        await imp.close()

    run(main())


def test_importer_queue_group_is_not_the_exporters(layout: tuple[Server, int]) -> None:
    """A queue group of the same name in exporter and importer.

    nats-server puts the importer's queue subscriber into the exporter's
    group (its shadow subscription keeps the queue name), so an importing
    tenant can take work from the exporter's own queue workers just by
    picking the same name. natsd keeps queue groups per account: each
    group gets every message once (docs/security.md).
    """
    server, workers = layout
    n = 60

    async def main() -> dict[str, int]:
        exp = await nats.connect(url(server, "exp"))
        imp = await nats.connect(url(server, "imp"))
        got = {"exp": 0, "imp": 0}

        def counter(key: str):  # type: ignore[no-untyped-def]
            async def cb(_msg) -> None:  # type: ignore[no-untyped-def]
                got[key] += 1
            return cb

        await exp.subscribe("priv.job", queue="workers", cb=counter("exp"))
        await imp.subscribe("priv.job", queue="workers", cb=counter("imp"))
        await exp.flush()
        await imp.flush()
        await asyncio.sleep(0.2)  # interest crosses workers asynchronously
        for _ in range(n):
            await exp.publish("priv.job", b"j")
        await exp.flush()
        deadline = asyncio.get_running_loop().time() + 5
        while got["exp"] + got["imp"] < (n if not workers else 2 * n):
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        for nc in (exp, imp):
            await nc.close()
        return got

    got = asyncio.run(asyncio.wait_for(main(), 30))
    if workers:
        assert got == {"exp": n, "imp": n}
    else:
        assert got["exp"] + got["imp"] == n and got["imp"] > 0, got

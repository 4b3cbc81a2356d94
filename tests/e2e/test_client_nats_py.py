"""nats-py against natsd (and the same scenarios against nats-server).

Each test runs against both servers through ``any_server``: natsd must
behave as the reference does for a real, unmodified client.
"""

from __future__ import annotations

import asyncio

import nats
import pytest
from nats.errors import NoRespondersError, TimeoutError

pytestmark = pytest.mark.e2e


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_pub_sub_wildcards_and_flush(any_server) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        nc = await nats.connect(any_server.url)
        got: list[tuple[str, bytes]] = []
        async def cb(m) -> None:  # type: ignore[no-untyped-def]
            got.append((m.subject, m.data))

        await nc.subscribe("foo.*", cb=cb)
        await nc.subscribe("foo.>", cb=cb)
        await nc.subscribe("bar", cb=cb)
        await nc.flush()
        await nc.publish("foo.a", b"1")
        await nc.publish("foo.a.b", b"2")
        await nc.publish("bar", b"3")
        await nc.publish("baz", b"4")
        await nc.flush()
        await asyncio.sleep(0.2)
        await nc.close()
        assert sorted(got) == sorted([("foo.a", b"1"), ("foo.a", b"1"), ("foo.a.b", b"2"), ("bar", b"3")])

    run(main())


def test_queue_groups_deliver_once(any_server) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        nc = await nats.connect(any_server.url)
        counts = {"a": 0, "b": 0, "plain": 0}

        def make(name: str):  # type: ignore[no-untyped-def]
            async def cb(msg) -> None:  # type: ignore[no-untyped-def]
                counts[name] += 1

            return cb

        await nc.subscribe("work", queue="q", cb=make("a"))
        await nc.subscribe("work", queue="q", cb=make("b"))
        await nc.subscribe("work", cb=make("plain"))
        await nc.flush()
        for i in range(200):
            await nc.publish("work", str(i).encode())
        await nc.flush()
        await asyncio.sleep(0.3)
        await nc.close()
        assert counts["a"] + counts["b"] == 200
        assert counts["plain"] == 200

    run(main())


def test_request_reply_headers_and_no_responders(any_server) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        nc = await nats.connect(any_server.url)

        async def echo(msg) -> None:  # type: ignore[no-untyped-def]
            if msg.headers:
                await nc.publish(msg.reply, msg.data, headers={"X-Echo": msg.headers.get("X-Req", "")})
            else:
                await msg.respond(msg.data.upper())

        await nc.subscribe("svc", cb=echo)
        await nc.flush()
        r = await nc.request("svc", b"hi", timeout=2)
        assert r.data == b"HI"
        r = await nc.request("svc", b"hdr", timeout=2, headers={"X-Req": "42"})
        assert r.headers == {"X-Echo": "42"}
        assert r.data == b"hdr"
        with pytest.raises(NoRespondersError):
            await nc.request("nobody.home", b"?", timeout=2)
        await nc.close()

    run(main())


def test_drain_and_unsubscribe_max(any_server) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        nc = await nats.connect(any_server.url)
        got: list[bytes] = []

        async def cb(msg) -> None:  # type: ignore[no-untyped-def]
            got.append(msg.data)

        sub = await nc.subscribe("limited", cb=cb)
        await sub.unsubscribe(limit=3)
        await nc.flush()
        for i in range(10):
            await nc.publish("limited", str(i).encode())
        await nc.flush()
        await asyncio.sleep(0.2)
        assert got == [b"0", b"1", b"2"]
        sub2 = await nc.subscribe("d", cb=cb)
        await nc.publish("d", b"last")
        await nc.flush()
        await sub2.drain()
        await nc.drain()
        assert got[-1] == b"last"

    run(main())


def test_echo_false(any_server) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        nc = await nats.connect(any_server.url, no_echo=True)
        other = await nats.connect(any_server.url)
        mine = await nc.subscribe("e")
        theirs = await other.subscribe("e")
        await nc.flush()
        await other.flush()
        await nc.publish("e", b"x")
        await nc.flush()
        m = await theirs.next_msg(timeout=2)
        assert m.data == b"x"
        with pytest.raises(TimeoutError):
            await mine.next_msg(timeout=0.3)
        await nc.close()
        await other.close()

    run(main())


def test_large_payload_and_many_messages(any_server) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        nc = await nats.connect(any_server.url)
        sub = await nc.subscribe("big")
        await nc.flush()
        payload = bytes(range(256)) * 2048  # 512 KiB
        await nc.publish("big", payload)
        for i in range(2000):
            await nc.publish("big", b"%d" % i)
        await nc.flush()
        m = await sub.next_msg(timeout=5)
        assert m.data == payload
        for i in range(2000):
            m = await sub.next_msg(timeout=5)
            assert m.data == b"%d" % i
        await nc.close()

    run(main())

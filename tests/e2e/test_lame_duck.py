"""Lame duck mode (SIGUSR2) as a nats-py client experiences it.

Server A is told to enter lame duck mode: it stops accepting, sends INFO with
``"ldm": true`` to its clients (nats-py calls ``lame_duck_mode_cb``), waits
``lame_duck_grace_period`` and closes its clients over
``lame_duck_duration``. A client that also knows server B reconnects there
and its subscriptions work again.

nats-server refuses a ``lame_duck_duration`` under 30 s, so it cannot run
this scenario in test time; natsd accepts short values (documented).
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import nats
import pytest
from servers import Server, running

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

LDM_CONF = 'lame_duck_duration: "2s"\nlame_duck_grace_period: "0.5s"\n'


async def _wait(event: asyncio.Event, what: str, timeout: float = 20.0) -> None:
    try:
        await asyncio.wait_for(event.wait(), timeout)
    except TimeoutError:
        pytest.fail(f"timed out waiting for {what}")


async def scenario(a: Server, b: Server) -> None:
    ldm, reconnected = asyncio.Event(), asyncio.Event()

    async def on_ldm() -> None:
        ldm.set()

    async def on_reconnect() -> None:
        reconnected.set()

    nc = await nats.connect(
        servers=[a.url, b.url],
        dont_randomize=True,
        reconnect_time_wait=0.1,
        max_reconnect_attempts=-1,
        lame_duck_mode_cb=on_ldm,
        reconnected_cb=on_reconnect,
    )
    try:
        assert nc.connected_url is not None and nc.connected_url.port == a.port
        sub = await nc.subscribe("ldm.test")
        await nc.flush()
        a.signal(signal.SIGUSR2)
        await _wait(ldm, "the lame duck INFO")
        await _wait(reconnected, "the reconnect to the other server")
        assert nc.connected_url is not None and nc.connected_url.port == b.port
        await nc.publish("ldm.test", b"after")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"after"
    finally:
        await nc.close()


def test_client_sees_ldm_and_moves_to_the_other_server(tmp_path: Path) -> None:
    conf = tmp_path / "ldm.conf"
    conf.write_text(LDM_CONF)
    with running("natsd", config=str(conf)) as a, running("natsd") as b:
        asyncio.run(scenario(a, b))
        # Once its clients are gone the lame duck server exits by itself.
        assert a.proc.wait(timeout=30) == 0
        assert "lame duck" in a.log().lower()


def test_lame_duck_refuses_new_clients(tmp_path: Path) -> None:
    conf = tmp_path / "ldm.conf"
    conf.write_text(LDM_CONF)

    async def main(a: Server) -> None:
        holder = await nats.connect(a.url, max_reconnect_attempts=0)
        a.signal(signal.SIGUSR2)
        # The listener closes first: a new TCP connection is refused while
        # the existing client is still being served (grace period).
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", a.port), timeout=1).close()
            except ConnectionRefusedError:
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("listener still accepting in lame duck mode")
        await holder.close()

    with running("natsd", config=str(conf)) as a:
        asyncio.run(main(a))
        assert a.proc.wait(timeout=30) == 0

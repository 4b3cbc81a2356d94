"""A crashed worker costs only its own connections; clients reconnect."""

from __future__ import annotations

import asyncio
import os
import signal

import nats
import psutil
import pytest
from servers import running

from supervisor.sharding import worker_for

pytestmark = pytest.mark.e2e


def worker_pids(pid: int) -> list[int]:
    kids = psutil.Process(pid).children()
    return sorted(p.pid for p in kids if "natsd.worker" in " ".join(p.cmdline()))


def test_client_reconnects_after_its_worker_is_killed() -> None:
    with running("natsd", workers=2) as server:
        async def main() -> None:
            reconnected = asyncio.Event()

            async def on_reconnect() -> None:
                reconnected.set()

            nc = await nats.connect(server.url, reconnected_cb=on_reconnect, reconnect_time_wait=0.2, max_reconnect_attempts=50)
            sub = await nc.subscribe("x")
            await nc.publish("x", b"before")
            assert (await sub.next_msg(timeout=2)).data == b"before"
            pids = worker_pids(server.proc.pid)
            assert len(pids) == 2
            # Workers are started in slot order, so the lowest pid is slot 0 at boot.
            victim = pids[worker_for("$G", 2)]
            os.kill(victim, signal.SIGKILL)
            await asyncio.wait_for(reconnected.wait(), 15)
            await nc.flush()
            await nc.publish("x", b"after")
            assert (await sub.next_msg(timeout=5)).data == b"after"
            await nc.close()
            # The restarted worker replaced the dead one; the other kept running.
            now = worker_pids(server.proc.pid)
            assert victim not in now and len(now) == 2

        asyncio.run(asyncio.wait_for(main(), 40))
        assert "died" in server.log()

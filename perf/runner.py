"""Coordinator: spawns worker processes, shows progress, gathers results.

Timeline of one run:

1. deal the plan's connections to ``procs`` worker processes (fork);
2. wait until every worker reports ``ready`` -- all connections are up and
   every SUB is acknowledged by a PONG -- and sample server RSS (``conns``);
3. store the shared start time and set the start event;
4. poll the shared counter rows (10 Hz) for the progress line and for the end
   condition: every publisher has seen its final PONG and the subscribers
   have either received ``published x fanout`` messages or made no progress
   for ``quiet_s`` seconds (the remainder is reported as loss, e.g. a slow
   consumer the server cut off); a hard ``timeout`` always ends the run;
5. set the stop event and collect one result dict per worker.

Rates are computed from timestamps the workers took (CLOCK_MONOTONIC is
system-wide, so they share the coordinator's start time): pub side is
published / (last publisher PONG - start), sub side is received /
(last delivery - start).
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from array import array
from dataclasses import dataclass
from typing import Any

from perf.report import RunResult, percentiles
from perf.scenarios import Options, build_plan, deal
from perf.servers import rss_tree
from perf.worker import C_PUB, C_PUBS_DONE, C_SUB, NCOUNTERS, worker_main


@dataclass
class Control:
    queue: Any
    start: Any
    stop: Any
    start_time: Any
    counters: Any


class Progress:
    """One refreshed stderr line, shown only once a run lasts over a second."""

    def __init__(self, enabled: bool, label: str) -> None:
        self.enabled = enabled and sys.stderr is not None
        self.label = label
        self.shown = False
        self.next = 1.0

    def update(self, elapsed: float, pub: float, sub: float) -> None:
        if not self.enabled or elapsed < self.next:
            return
        self.next = elapsed + 0.5
        self.shown = True
        sys.stderr.write(f"\r[{self.label}] {elapsed:6.1f}s  pub {pub:>12,.0f} msgs"
                         f"  ({pub / elapsed:>11,.0f}/s)  sub {sub:>12,.0f} msgs\x1b[K")
        sys.stderr.flush()

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()


def _context() -> Any:
    return mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")


def run(opts: Options, label: str = "") -> RunResult:
    plan = build_plan(opts)
    slices = deal(plan, opts.procs)
    ctx = _context()
    n = len(slices)
    ctl = Control(ctx.Queue(), ctx.Event(), ctx.Event(), ctx.RawValue("d", 0.0),
                  ctx.RawArray("d", n * NCOUNTERS))
    res = RunResult(scenario=opts.scenario, target=label or f"{opts.endpoint.host}:"
                    f"{opts.endpoint.port}", size=opts.size, procs=n,
                    conns=len(plan.conns))
    res.rss_before = rss_tree(opts.server_pid)
    procs = [ctx.Process(target=worker_main, args=(i, sl, opts, ctl), daemon=True,
                         name=f"perf-worker-{i}") for i, sl in enumerate(slices)]
    for p in procs:
        p.start()
    try:
        _wait_ready(ctl, n, procs, opts)
        if opts.scenario == "conns":
            time.sleep(0.5)  # let the server settle before sampling RSS
        res.rss_idle = rss_tree(opts.server_pid)
        results = _measure(ctl, n, plan.n_pubs, plan.fanout, opts, res)
    finally:
        ctl.stop.set()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.terminate()
                p.join(2)
    _merge(res, results, ctl.start_time.value)
    res.expected_sub = int(res.pub_msgs * plan.fanout)
    return res


def _wait_ready(ctl: Control, n: int, procs: list[Any], opts: Options) -> None:
    ready = 0
    limit = time.monotonic() + max(30.0, opts.endpoint.connect_timeout * 3)
    while ready < n:
        try:
            kind, idx, info = ctl.queue.get(timeout=0.5)
        except Exception:
            if time.monotonic() > limit:
                raise TimeoutError("workers did not finish connecting in time") from None
            if any(not p.is_alive() for p in procs):
                raise RuntimeError("a worker process died while connecting") from None
            continue
        if kind == "error":
            raise RuntimeError(f"worker {idx} could not connect: {info}")
        ready += 1


def _measure(ctl: Control, n: int, n_pubs: int, fanout: float, opts: Options,
             res: RunResult) -> list[dict[str, Any]]:
    progress = Progress(opts.progress, f"{opts.scenario} {res.target}")
    start = time.monotonic()
    ctl.start_time.value = start
    ctl.start.set()
    hard = start + opts.timeout + opts.duration
    last_sub, last_change = -1.0, start
    c = ctl.counters
    while True:
        time.sleep(0.1)
        now = time.monotonic()
        pub = sum(c[i * NCOUNTERS + C_PUB] for i in range(n))
        sub = sum(c[i * NCOUNTERS + C_SUB] for i in range(n))
        done = sum(c[i * NCOUNTERS + C_PUBS_DONE] for i in range(n))
        progress.update(now - start, pub, sub)
        if sub != last_sub:
            last_sub, last_change = sub, now
        if now > hard:
            res.errors.append(f"hard timeout after {now - start:.1f}s "
                              f"({done:.0f}/{n_pubs} publishers done)")
            break
        if done >= n_pubs:
            if sub >= pub * fanout or now - last_change >= opts.quiet_s:
                break
    progress.clear()
    ctl.stop.set()
    res.rss_after = rss_tree(opts.server_pid)
    results: list[dict[str, Any]] = []
    deadline = time.monotonic() + 10
    while len(results) < n and time.monotonic() < deadline:
        try:
            kind, _idx, info = ctl.queue.get(timeout=0.5)
        except Exception:
            continue
        if kind == "result":
            results.append(info)
    if len(results) < n:
        res.errors.append(f"only {len(results)}/{n} workers reported")
    return results


def _merge(res: RunResult, results: list[dict[str, Any]], start: float) -> None:
    lat = array("d")
    pub_end = sub_last = 0.0
    for r in results:
        res.pub_msgs += r["pub_msgs"]
        res.sub_msgs += r["sub_msgs"]
        res.sub_counts += r["sub_counts"]
        res.answered += r["answered"]
        res.disconnects += r["disconnects"]
        res.errors += r["errors"]
        pub_end = max(pub_end, r["pub_end"])
        sub_last = max(sub_last, r["sub_last"])
        chunk = array("d")
        chunk.frombytes(r["lat_us"])
        lat.extend(chunk)
    res.pub_secs = max(0.0, pub_end - start) if pub_end else 0.0
    res.sub_secs = max(0.0, sub_last - start) if sub_last else 0.0
    if lat:
        res.latency_us = percentiles(sorted(lat))

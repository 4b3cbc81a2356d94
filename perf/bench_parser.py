"""Parser micro-benchmarks (python-ceilings.md §4).

Run: .venv/bin/python -m pytest perf/bench_parser.py --benchmark-enable -p no:randomly
(pytest collects a file passed explicitly even if its name does not match
``python_files``). Each benchmark parses one 64 KiB buffer of identical PUB
frames; ``extra_info["frames_per_s"]`` is frames / mean time.
"""

from __future__ import annotations

from typing import Any

import pytest

from natsd.proto.parser import OP_PUB, Parser

BUF = 64 * 1024


def _buffer(payload: int, subjects: int = 1) -> tuple[bytes, int]:
    frames = [b"PUB foo.%d %d\r\n" % (i, payload) + b"x" * payload + b"\r\n" for i in range(subjects)]
    per = sum(len(f) for f in frames)
    count = BUF // per
    return b"".join(frames) * count, count * subjects


@pytest.mark.parametrize(
    ("payload", "subjects"), [(16, 1), (16, 100), (1024, 1)], ids=["16B", "16B-100subj", "1KB"]
)
def test_bench_pub(benchmark: Any, payload: int, subjects: int) -> None:
    data, frames = _buffer(payload, subjects)
    parser = Parser()
    parser.feed(data)  # warm the header cache, as a long-lived connection has it

    ops = benchmark(parser.feed, data)

    assert len(ops) == frames and ops[-1][0] == OP_PUB
    if benchmark.stats is not None:
        mean = benchmark.stats.stats.mean
        benchmark.extra_info["frames_per_s"] = round(frames / mean)
        print(f"\n{payload} B x {subjects} subjects: {frames / mean / 1e6:.2f} M frames/s")


def test_bench_pub_split_reads(benchmark: Any) -> None:
    """The same 16 B stream cut into 1500-byte reads (frames straddle reads)."""
    data, frames = _buffer(16)
    chunks = [data[i : i + 1500] for i in range(0, len(data), 1500)]
    parser = Parser()

    def feed_all() -> int:
        n = 0
        for c in chunks:
            n += len(parser.feed(c))
        return n

    assert benchmark(feed_all) == frames
    if benchmark.stats is not None:
        benchmark.extra_info["frames_per_s"] = round(frames / benchmark.stats.stats.mean)

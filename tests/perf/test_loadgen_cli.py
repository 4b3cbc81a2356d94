"""The command line: compare and sweep modes, config writers, unit parsing.

Comparison and sweep run nats-server on *both* sides through ``--natsd-cmd``
(natsd itself may not be runnable yet), which exercises the generic launcher,
free-port selection, config generation and the ratio/CSV/JSON output.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from perf import servers
from perf.proto import CARRY, FrameCounter, parse_count, parse_duration, parse_size

ROOT = Path(__file__).resolve().parents[2]


def _loadgen(*args: str, timeout: float = 25) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "perf.loadgen", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)


def _natsd_cmd() -> str:
    return f"{servers.nats_server_binary()} -a 127.0.0.1 -p {{port}}"


@pytest.mark.e2e
@pytest.mark.timeout(30)
def test_compare_mode_prints_ratios(tmp_path: Path) -> None:
    out = tmp_path / "cmp.json"
    p = _loadgen("pubsub", "--compare", "--natsd-cmd", _natsd_cmd(), "--msgs", "300",
                 "--no-progress", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert "natsd / nats-server" in p.stdout
    data = json.loads(out.read_text())
    targets = [r["target"] for r in data["results"]]
    assert targets == ["nats-server", "natsd"]
    assert all(r["sub_msgs"] == 300 for r in data["results"])


@pytest.mark.e2e
@pytest.mark.timeout(30)
def test_workers_sweep_multiaccount(tmp_path: Path) -> None:
    csv_path = tmp_path / "sweep.csv"
    p = _loadgen("multiaccount", "--workers-sweep", "1,2", "--natsd-cmd", _natsd_cmd(),
                 "--accounts", "2", "--msgs", "300", "--no-progress", "--csv", str(csv_path))
    assert p.returncode == 0, p.stderr
    assert "natsd w=2" in p.stdout and "#" in p.stdout
    rows = csv_path.read_text().strip().splitlines()
    assert len(rows) == 4  # header + nats-server + two natsd points
    assert all(r.endswith(",300,300,300") for r in rows[1:])


def test_config_writers(tmp_path: Path) -> None:
    acc, imp = tmp_path / "acc.conf", tmp_path / "imp.conf"
    p = _loadgen("--write-accounts-config", "3", str(acc), "--write-import-config", str(imp))
    assert p.returncode == 0, p.stderr
    text = acc.read_text()
    assert "u2" in text and "p2" in text and "A2" in text
    assert "a.>" in imp.read_text()


def test_help_documents_scenarios() -> None:
    p = _loadgen("--help")
    assert p.returncode == 0
    for word in ("pubsub", "fanout", "reqrep", "multiaccount", "--workers-sweep", "--natsd-cmd"):
        assert word in p.stdout


def test_units() -> None:
    assert parse_size("16") == 16
    assert parse_size("1k") == 1024
    assert parse_size("64KiB") == 65536
    assert parse_count("100k") == 100_000
    assert parse_count("1M") == 1_000_000
    assert parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120.0
    with pytest.raises(ValueError):
        parse_size("12q")


def test_frame_counter_handles_split_patterns() -> None:
    stream = (b"MSG a 1 2\r\nxx\r\nPING\r\n" * 5) + b"-ERR 'boom'\r\n"
    for step in (1, 2, 3, 5, 7, 64):
        fc = FrameCounter()
        buf = bytearray(CARRY + 64)
        for i in range(0, len(stream), step):
            piece = stream[i:i + step]
            fc.prime(buf)
            buf[CARRY:CARRY + len(piece)] = piece
            fc.feed(buf, len(piece))
        assert (fc.msgs, fc.pings) == (5, 5), step
        assert fc.nbytes == len(stream)
        if step >= 16:
            assert fc.errors == ["'boom'"]

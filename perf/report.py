"""Results: the per-run record, tables, natsd/nats-server ratios, CSV, charts.

Message rates are messages per second; MB/s is *payload* megabytes (10^6
bytes) per second, as ``nats bench`` reports it, so numbers for different
sizes compare on the same footing.  Latency percentiles use the nearest-rank
method over every request of the run.

The ratio table divides natsd by nats-server for throughput (higher is
better) and for latency/RSS (lower is better); rows the project tracks carry
their target from :data:`TARGETS` and a met/MISSED verdict.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from perf.proto import human_size

# (scenario, payload size or None for any, metric) -> (kind, bound)
#  kind ">=": natsd/nats-server ratio must be at least bound; "<=": at most.
TARGETS: dict[tuple[str, int | None, str], tuple[str, float]] = {
    ("pub", 16, "pub_rate"): (">=", 0.5),
    ("pubsub", 16, "sub_rate"): (">=", 0.6),
    ("fanout", 16, "sub_rate"): (">=", 0.6),
    ("pubsub", 1024, "sub_rate"): (">=", 0.8),
    ("reqrep", None, "p50_us"): ("<=", 1.5),
    ("conns", None, "rss_idle_mib"): ("<=", 3.0),
}
SWEEP_TARGET = 1.7  # multi-account throughput, --workers 2 over --workers 1


@dataclass
class RunResult:
    scenario: str
    target: str
    size: int
    procs: int = 0
    conns: int = 0
    workers: int | None = None
    pub_msgs: int = 0
    pub_secs: float = 0.0
    sub_msgs: int = 0
    sub_secs: float = 0.0
    expected_sub: int = 0
    answered: int = 0
    sub_counts: list[int] = field(default_factory=list)
    latency_us: dict[str, float] = field(default_factory=dict)
    rss_before: int | None = None
    rss_idle: int | None = None
    rss_after: int | None = None
    disconnects: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def pub_rate(self) -> float:
        return self.pub_msgs / self.pub_secs if self.pub_secs else 0.0

    @property
    def sub_rate(self) -> float:
        return self.sub_msgs / self.sub_secs if self.sub_secs else 0.0

    @property
    def pub_mbps(self) -> float:
        return self.pub_rate * self.size / 1e6

    @property
    def sub_mbps(self) -> float:
        return self.sub_rate * self.size / 1e6

    @property
    def primary(self) -> float:
        """The one throughput number a sweep charts."""
        if self.scenario == "pub":
            return self.pub_rate
        return self.sub_rate or self.pub_rate

    def metrics(self) -> dict[str, float | None]:
        m: dict[str, float | None] = {
            "pub_rate": self.pub_rate, "pub_mbps": self.pub_mbps,
            "sub_rate": self.sub_rate, "sub_mbps": self.sub_mbps,
        }
        for k in ("p50", "p99", "p99.9"):
            m[f"{k}_us"] = self.latency_us.get(k)
        m["rss_idle_mib"] = self.rss_idle / 2**20 if self.rss_idle else None
        m["rss_after_mib"] = self.rss_after / 2**20 if self.rss_after else None
        return m

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("sub_counts")
        d["sub_counts_min_max"] = ([min(self.sub_counts), max(self.sub_counts)]
                                   if self.sub_counts else None)
        d.update({k: v for k, v in self.metrics().items()})
        d["errors"] = self.errors[:20]
        return d


def percentiles(sorted_vals: list[float]) -> dict[str, float]:
    n = len(sorted_vals)

    def rank(q: float) -> float:
        return sorted_vals[min(n - 1, max(0, math.ceil(q * n) - 1))]

    return {"min": sorted_vals[0], "p50": rank(0.5), "p90": rank(0.9), "p99": rank(0.99),
            "p99.9": rank(0.999), "max": sorted_vals[-1], "mean": sum(sorted_vals) / n,
            "count": float(n)}


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v else "-"


def _mib(v: int | None) -> str:
    return f"{v / 2**20:,.1f} MiB" if v else "-"


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for j, r in enumerate(rows):
        out.append("  ".join(c.rjust(w) if i else c.ljust(w)
                             for i, (c, w) in enumerate(zip(r, widths, strict=True))))
        if j == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)


def results_table(results: list[RunResult]) -> str:
    rows: list[tuple[str, ...]] = [("target", "scenario", "size", "pub msgs", "pub msgs/s",
                                    "pub MB/s", "sub msgs", "sub msgs/s", "sub MB/s",
                                    "p50 us", "p99 us", "p99.9 us", "server RSS")]
    for r in results:
        lat = r.latency_us
        rows.append((r.target, r.scenario, human_size(r.size), f"{r.pub_msgs:,}",
                     _fmt_rate(r.pub_rate), f"{r.pub_mbps:,.1f}", f"{r.sub_msgs:,}",
                     _fmt_rate(r.sub_rate), f"{r.sub_mbps:,.1f}",
                     *(f"{lat[k]:,.0f}" if k in lat else "-" for k in ("p50", "p99", "p99.9")),
                     _mib(r.rss_after)))
    text = table(rows)
    notes = []
    for r in results:
        if r.expected_sub and r.sub_msgs != r.expected_sub:
            notes.append(f"{r.target}: subscribers got {r.sub_msgs:,} of "
                         f"{r.expected_sub:,} expected deliveries")
        if r.scenario == "conns" and r.rss_idle:
            per = (r.rss_idle - (r.rss_before or 0)) / max(1, r.conns)
            notes.append(f"{r.target}: RSS before {_mib(r.rss_before)}, with {r.conns:,} "
                         f"connections {_mib(r.rss_idle)} (~{per / 1024:,.1f} KiB/conn), "
                         f"after traffic {_mib(r.rss_after)}")
        if r.disconnects:
            notes.append(f"{r.target}: {r.disconnects} connection(s) closed by the server")
        notes += [f"{r.target}: {e}" for e in r.errors[:5]]
    return text + ("\n" + "\n".join("  * " + n for n in notes) if notes else "")


def ratio_rows(scenario: str, size: int, natsd: RunResult,
               ref: RunResult) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    a, b = natsd.metrics(), ref.metrics()
    for k, va in a.items():
        vb = b.get(k)
        if not va or not vb:
            continue
        ratio = va / vb
        target = TARGETS.get((scenario, size, k)) or TARGETS.get((scenario, None, k))
        verdict = ""
        if target:
            ok = ratio >= target[1] if target[0] == ">=" else ratio <= target[1]
            verdict = f"{target[0]}{target[1]}x {'met' if ok else 'MISSED'}"
        rows.append((k, f"{va:,.1f}", f"{vb:,.1f}", f"{ratio:.2f}x", verdict))
    return rows


def ratio_table(natsd: RunResult, ref: RunResult) -> str:
    head: tuple[str, ...] = ("metric", "natsd", "nats-server", "natsd/nats-server", "target")
    rows = ratio_rows(natsd.scenario, natsd.size, natsd, ref)
    return table([head, *rows]) if rows else "(no comparable metrics)"


def ascii_chart(points: list[tuple[str, float]], width: int = 50, unit: str = "msgs/s") -> str:
    top = max((v for _, v in points), default=0.0) or 1.0
    lw = max(len(k) for k, _ in points)
    return "\n".join(f"{k.rjust(lw)} | {'#' * max(0, round(v / top * width)):<{width}} "
                     f"{v:,.0f} {unit}" for k, v in points)


def sweep_csv(results: list[RunResult]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["target", "workers", "scenario", "size", "pub_rate", "sub_rate",
                "pub_mbps", "sub_mbps", "pub_msgs", "sub_msgs", "expected_sub"])
    for r in results:
        w.writerow([r.target, r.workers if r.workers is not None else "", r.scenario, r.size,
                    round(r.pub_rate), round(r.sub_rate), round(r.pub_mbps, 2),
                    round(r.sub_mbps, 2), r.pub_msgs, r.sub_msgs, r.expected_sub])
    return buf.getvalue()


def write_json(path: str, payload: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
        f.write("\n")

"""Go-compatible value formatting and query decoding for the monitor.

Theory of operation
-------------------
Tools written for nats-server (the ``nats`` CLI, Prometheus exporters,
dashboards) parse ``/varz`` and ``/connz`` with Go's ``encoding/json`` into
typed structs, so natsd must not only use the same keys but also the same
value *encodings*:

* timestamps are ``time.Time`` marshalled as RFC 3339 with nanoseconds and
  trailing zeros trimmed (``2024-01-02T03:04:05.123456Z``);
* ``ping_interval`` and ``write_deadline`` are ``time.Duration``, i.e. an
  integer number of nanoseconds;
* ``uptime`` and ``idle`` use nats-server's own ``myUptime`` (``1d2h3m4s``,
  whole seconds), while ``rtt`` uses Go's ``Duration.String`` (``721µs``);
* ``float64`` fields print without a fraction when integral (Go writes
  ``2``, not ``2.0``), which matters to clients that decode into ``int``.

Query decoding follows the error texts of nats-server's ``decodeInt`` /
``decodeBool`` so a wrong request fails with a 400 that reads the same.
Everything here is pure: the clock is passed in.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

# strconv.ParseBool's accepted spellings.
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})

_NS = 1_000_000_000


class BadRequest(Exception):
    """A query the endpoint refuses; the text is the 400 body."""


def rfc3339(ts: float) -> str:
    """A Unix time as Go marshals ``time.Time`` in UTC (RFC3339Nano).

    A float timestamp only carries about microsecond precision, so it is
    rounded there rather than printing float noise as nanoseconds."""
    ns = round(ts * 1_000_000) * 1000
    secs, frac = divmod(ns, _NS)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + "Z"


def duration_ns(seconds: float) -> int:
    """A ``time.Duration`` as JSON: integer nanoseconds."""
    return round(seconds * _NS)


def uptime(seconds: float) -> str:
    """nats-server's ``myUptime``: whole seconds, with days and years."""
    tsecs = max(0, int(seconds))
    tmins, thrs = tsecs // 60, tsecs // 3600
    tdays = thrs // 24
    tyrs = tdays // 365
    if tyrs:
        return f"{tyrs}y{tdays % 365}d{thrs % 24}h{tmins % 60}m{tsecs % 60}s"
    if tdays:
        return f"{tdays}d{thrs % 24}h{tmins % 60}m{tsecs % 60}s"
    if thrs:
        return f"{thrs}h{tmins % 60}m{tsecs % 60}s"
    if tmins:
        return f"{tmins}m{tsecs % 60}s"
    return f"{tsecs}s"


def _frac(value: int, unit: int) -> str:
    whole, rest = divmod(value, unit)
    if not rest:
        return str(whole)
    digits = len(str(unit)) - 1
    return f"{whole}." + f"{rest:0{digits}d}".rstrip("0")


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String`` (``0s``, ``1.5µs``, ``2m3.5s``, ``1h0m0s``)."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_frac(u, 1000)}µs"
    if u < _NS:
        return f"{sign}{_frac(u, 1_000_000)}ms"
    secs, rest = divmod(u, _NS)
    hours, secs = divmod(secs, 3600)
    mins, secs = divmod(secs, 60)
    out = _frac(secs * _NS + rest, _NS) + "s"
    if hours:
        out = f"{hours}h{mins}m" + out
    elif mins:
        out = f"{mins}m" + out
    return sign + out


def rtt(seconds: float) -> str:
    """A round-trip time as ``/connz`` shows it (nats ``getRTT``: rounded to
    the microsecond between 1µs and 1ms, else to the nanosecond)."""
    ns = round(seconds * _NS)
    if 1000 < ns < 1_000_000:
        ns = round(ns / 1000) * 1000
    return go_duration(ns)


def gofloat(x: float) -> float | int:
    """Go prints an integral float64 without a fraction; so do we."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    return x


# --- query decoding ---------------------------------------------------------


def q_str(q: Mapping[str, list[str]], key: str, default: str = "") -> str:
    vals = q.get(key)
    return vals[0] if vals else default


def q_int(q: Mapping[str, list[str]], key: str, default: int) -> int:
    raw = q_str(q, key)
    if raw == "":
        return default
    try:
        return int(raw, 10)
    except ValueError:
        raise BadRequest(
            f"Error decoding int for '{key}': strconv.Atoi: parsing \"{raw}\": invalid syntax"
        ) from None


def q_bool(q: Mapping[str, list[str]], key: str, default: bool = False) -> bool:
    raw = q_str(q, key)
    if raw == "":
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise BadRequest(
        f"Error decoding boolean for '{key}': strconv.ParseBool: parsing \"{raw}\": invalid syntax"
    )

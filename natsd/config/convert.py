"""Typed access to parsed nodes, with every problem recorded, not raised.

Theory of operation
-------------------
The option builders (``load.py`` and the ``options_*`` modules) turn a
``Node`` tree into msgspec structs. They all share one :class:`Ctx`, which
collects errors and warnings with positions, so a bad value costs one message
and the build goes on to find the next problem. Converters therefore return
``None`` after recording an error, and builders skip a field that came back
``None`` (leaving the schema default in place; the load fails anyway).

:func:`pick` is the single place that knows how keys are matched: case-
insensitively, through an alias table that maps each accepted spelling to a
canonical name. A key it does not know is an ``unknown field`` error unless
the entry only exists to be referenced as a ``$variable`` (nats-server's rule).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from natsd.config.errors import ConfigError, Pos
from natsd.config.parser import Node


class Ctx:
    """Errors and warnings of one load, plus cross-section facts."""

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []
        self.warnings: list[str] = []
        # ("user"|"nkey", name) -> where first defined: identities are global
        # across the authorization block and every account.
        self.identities: dict[tuple[str, str], Pos] = {}

    def err(self, at: Node | Pos, reason: str) -> None:
        self.errors.append(ConfigError.at(at.pos if isinstance(at, Node) else at, reason))

    def warn(self, at: Node | Pos, reason: str) -> None:
        self.warnings.append(str(ConfigError.at(at.pos if isinstance(at, Node) else at, reason)))


def aliases(table: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """``{"user": ["username"]}`` -> ``{"user": "user", "username": "user"}``."""
    out: dict[str, str] = {}
    for canon, others in table.items():
        out[canon] = canon
        for a in others:
            out[a] = canon
    return out


def pick(
    ctx: Ctx, node: Node, table: Mapping[str, str], unknown: str = 'unknown field "{}"'
) -> dict[str, Node]:
    """Canonical name -> node for the entries of map ``node`` (later wins)."""
    out: dict[str, Node] = {}
    if not isinstance(node.value, dict):
        ctx.err(node, f"expected a map, got {describe(node)}")
        return out
    for key, child in node.value.items():
        canon = table.get(key.lower())
        if canon is None:
            if not child.used:
                ctx.err(child.key_pos or child.pos, unknown.format(key))
            continue
        out[canon] = child
    return out


def describe(node: Node) -> str:
    v = node.value
    if isinstance(v, dict):
        return "a map"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, bool):
        return f"boolean {v}"
    if isinstance(v, str):
        return f"string {v!r}"
    return f"{type(v).__name__} {v!r}"


def as_str(ctx: Ctx, node: Node, name: str) -> str | None:
    v = node.value
    if isinstance(v, str):
        return v
    if isinstance(v, int | float) and not isinstance(v, bool):
        return str(v)  # `server_name: 42` is fine for nats-server too
    ctx.err(node, f"{name}: expected a string, got {describe(node)}")
    return None


def as_bool(ctx: Ctx, node: Node, name: str) -> bool | None:
    if isinstance(node.value, bool):
        return node.value
    ctx.err(node, f"{name}: expected a boolean, got {describe(node)}")
    return None


def as_int(ctx: Ctx, node: Node, name: str, minimum: int | None = None) -> int | None:
    v = node.value
    if not isinstance(v, int) or isinstance(v, bool):
        ctx.err(node, f"{name}: expected an integer, got {describe(node)}")
        return None
    if minimum is not None and v < minimum:
        ctx.err(node, f"{name}: {v} is below the minimum {minimum}")
        return None
    return v


def as_size(ctx: Ctx, node: Node, name: str) -> int | None:
    """Bytes from an int (suffix already applied) or a string like ``"1GB"``."""
    v = node.value
    if isinstance(v, str):
        from natsd.config.lexer import SIZE_SUFFIXES

        m = re.fullmatch(r"\s*(-?\d+)\s*([a-zA-Z]*)\s*", v)
        mult = SIZE_SUFFIXES.get(m.group(2).lower()) if m else None
        if m is None or mult is None:
            ctx.err(node, f"{name}: invalid size {v!r}")
            return None
        return int(m.group(1)) * mult
    return as_int(ctx, node, name)


def as_str_list(ctx: Ctx, node: Node, name: str) -> tuple[str, ...] | None:
    """A string or an array of strings."""
    items = node.value if isinstance(node.value, list) else [node]
    out: list[str] = []
    for item in items:
        s = as_str(ctx, item, name)
        if s is None:
            return None
        out.append(s)
    return tuple(out)


_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}
_DUR_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> float:
    """Seconds for a Go ``time.ParseDuration`` string; ``ValueError`` if invalid."""
    s = text
    sign = 1.0
    if s[:1] in ("+", "-"):
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    i = 0
    while i < len(s):
        m = _DUR_PART.match(s, i)
        if m is None:
            if re.match(r"[\d.]+\Z", s[i:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        total += float(m.group(1)) * _UNITS[m.group(2)]
        i = m.end()
    return sign * total


def as_duration(ctx: Ctx, node: Node, name: str, legacy_seconds: bool = True) -> float | None:
    """Seconds from a duration string; a bare number is legacy seconds (warned)."""
    v = node.value
    if isinstance(v, str):
        try:
            return parse_go_duration(v)
        except ValueError as e:
            ctx.err(node, f"error parsing {name}: {e}")
            return None
    if isinstance(v, int | float) and not isinstance(v, bool) and legacy_seconds:
        ctx.warn(node, f'invalid use of field "{name}": {name} should be converted to a duration')
        return float(v)
    ctx.err(node, f'{name}: expected a duration string like "2m", got {describe(node)}')
    return None


def seconds_or_duration(ctx: Ctx, node: Node, name: str) -> float | None:
    """Fields where nats-server takes a number of seconds natively (auth timeouts)."""
    v = node.value
    if isinstance(v, int | float) and not isinstance(v, bool):
        return float(v)
    return as_duration(ctx, node, name)


def plain_map(node: Node) -> dict[str, Any]:
    return node.plain() if isinstance(node.value, dict) else {}

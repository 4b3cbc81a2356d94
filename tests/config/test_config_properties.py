"""Hypothesis round-trips: what we write in conf syntax parses back to the value."""

from __future__ import annotations

import string

from hypothesis import given
from hypothesis import strategies as st

from natsd.config.convert import parse_go_duration
from natsd.config.lexer import SIZE_SUFFIXES
from natsd.config.parser import parse_text


def value_of(text: str) -> object:
    return parse_text(f"v: {text}\n", "p.conf", env={}).plain()["v"]


def dq(s: str) -> str:
    """Quote ``s`` with the escapes the format allows."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\t\n\r":
            out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r"}[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


@given(
    st.integers(min_value=-(10**6), max_value=10**6),
    st.sampled_from(sorted(SIZE_SUFFIXES)),
    st.booleans(),
)
def test_integers_with_suffixes(n: int, suffix: str, upper: bool) -> None:
    text = f"{n}{suffix.upper() if upper else suffix}"
    assert value_of(text) == n * SIZE_SUFFIXES[suffix]


@given(st.text(alphabet=st.characters(max_codepoint=0x7F, blacklist_categories=("Cs",))))
def test_double_quoted_strings_round_trip(s: str) -> None:
    assert value_of(dq(s)) == s


@given(st.text(st.characters(blacklist_characters="'", blacklist_categories=("Cs",))))
def test_single_quoted_strings_are_raw(s: str) -> None:
    assert value_of(f"'{s}'") == s


_BARE = string.ascii_letters + string.digits + "._-/>*@%+"


@given(st.text(alphabet=_BARE, min_size=1).filter(lambda s: s[0].isalpha()))
def test_bare_strings_are_themselves_unless_bool(s: str) -> None:
    got = value_of(s)
    if s.lower() in ("true", "false", "yes", "no", "on", "off"):
        assert got is (s.lower() in ("true", "yes", "on"))
    else:
        assert got == s


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False).map(lambda f: round(f, 3)))
def test_floats(f: float) -> None:
    text = f"{f:.3f}"
    assert value_of(text) == float(text)


@given(
    st.lists(
        st.tuples(st.integers(0, 1000), st.sampled_from(["h", "m", "s", "ms", "us", "ns"])),
        min_size=1,
        max_size=4,
    )
)
def test_go_durations(parts: list[tuple[int, str]]) -> None:
    scale = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
    text = "".join(f"{n}{u}" for n, u in parts)
    expected = sum(n * scale[u] for n, u in parts)
    assert abs(parse_go_duration(text) - expected) < 1e-9 * max(1.0, expected)
    assert value_of(dq(text)) == text  # durations stay strings until a field reads them


@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True), st.integers(), max_size=6
    )
)
def test_maps_round_trip(d: dict[str, int]) -> None:
    body = "\n".join(f"{k}: {v}" for k, v in d.items())
    assert parse_text(f"m {{\n{body}\n}}\n", "p.conf", env={}).plain() == {"m": d}

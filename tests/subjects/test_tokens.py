"""Tests for natsd.subjects.tokens: examples plus brute-force Hypothesis oracles.

The oracles enumerate every literal subject over a small token alphabet that includes
one token ("z") the generated patterns never use, up to one token longer than the
longest pattern. That is enough to witness every difference between two patterns:
a ``*`` differs from a literal by the fresh token, and ``>`` differs from a fixed
length by one extra token.
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natsd.subjects import tokens
from natsd.subjects.tokens import (
    has_wildcard,
    num_tokens,
    subject_is_subset,
    subject_matches,
    subjects_intersect,
    tokenize,
    valid_literal_subject,
    valid_queue,
    valid_subject,
)

LITERALS = [b"a", b"b"]
ALPHABET = [*LITERALS, b"z"]


def patterns(max_tokens: int = 3) -> st.SearchStrategy[bytes]:
    """Valid patterns over LITERALS with ``*`` anywhere and ``>`` only last."""
    body = st.lists(st.sampled_from([*LITERALS, b"*"]), min_size=0, max_size=max_tokens)

    def build(args: tuple[list[bytes], bool]) -> bytes:
        toks, fwc = args
        if fwc or not toks:
            toks = [*toks[: max_tokens - 1], b">"]
        return b".".join(toks)

    return st.tuples(body, st.booleans()).map(build)


def literal_subjects(max_tokens: int) -> list[bytes]:
    out: list[bytes] = []
    for n in range(1, max_tokens + 1):
        out.extend(b".".join(p) for p in itertools.product(ALPHABET, repeat=n))
    return out


def brute_match(pattern: bytes, subject: bytes) -> bool:
    """Definition of matching, written independently (recursive, no shortcuts)."""

    def go(p: list[bytes], s: list[bytes]) -> bool:
        if not p:
            return not s
        if p[0] == b">":
            return len(s) >= 1
        if not s:
            return False
        return (p[0] == b"*" or p[0] == s[0]) and go(p[1:], s[1:])

    return go(pattern.split(b"."), subject.split(b"."))


# -- validation ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "s",
    [b"foo", b"foo.bar", b"*", b">", b"foo.*", b"foo.>", b"*.*.>", b"foo*", b"foo>.bar",
     b"f>o.*o", b"\xc3\xa9.x", b"a-b_c:d/e"],
)
def test_valid_subjects(s: bytes) -> None:
    assert valid_subject(s)


@pytest.mark.parametrize(
    "s",
    [b"", b".", b"foo.", b".foo", b"foo..bar", b"foo bar", b"foo\tbar", b"foo\r",
     b"foo\n", b"foo\fx", b">.foo", b"foo.>.bar", b">.>", b"a.>.>"],
)
def test_invalid_subjects(s: bytes) -> None:
    assert not valid_subject(s)
    assert not valid_literal_subject(s)


@pytest.mark.parametrize(
    ("s", "literal"),
    [(b"foo.bar", True), (b"foo*.bar>", True), (b"foo.*", False), (b"foo.>", False),
     (b"*", False), (b">", False), (b"a.*.b", False)],
)
def test_valid_literal_subject(s: bytes, literal: bool) -> None:
    assert valid_subject(s)
    assert valid_literal_subject(s) is literal
    assert has_wildcard(s) is not literal


@pytest.mark.parametrize(
    ("q", "ok"),
    [(b"workers", True), (b"a.b", True), (b"*", True), (b"", False), (b"a b", False),
     (b"a\tb", False), (b"a\r\n", False)],
)
def test_valid_queue(q: bytes, ok: bool) -> None:
    assert valid_queue(q) is ok


@given(st.lists(st.binary(min_size=0, max_size=4), min_size=1, max_size=5))
def test_validity_against_definition(toks: list[bytes]) -> None:
    s = b".".join(toks)
    ws = any(c in s for c in b" \t\r\n\f")
    ok = (
        not ws
        and all(t and b"." not in t for t in toks)
        and all(t != b">" for t in toks[:-1])
    )
    # Tokens containing "." re-split differently; only judge the simple cases.
    if all(b"." not in t for t in toks):
        assert valid_subject(s) is ok
        lit = ok and all(t not in (b"*", b">") for t in toks)
        assert valid_literal_subject(s) is lit


@given(st.binary(max_size=12))
def test_tokenize_and_count(s: bytes) -> None:
    assert tokenize(s) == s.split(b".")
    assert num_tokens(s) == (0 if not s else len(tokenize(s)))
    if valid_subject(s):
        assert b".".join(tokenize(s)) == s


# -- pattern algebra ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "subject", "ok"),
    [(b"foo", b"foo", True), (b"foo", b"bar", False), (b"foo.*", b"foo.bar", True),
     (b"foo.*", b"foo", False), (b"foo.*", b"foo.bar.baz", False), (b"foo.>", b"foo.bar.baz", True),
     (b"foo.>", b"foo", False), (b">", b"foo", True), (b"*", b"foo.bar", False),
     (b"*.bar", b"foo.bar", True), (b"foo*", b"foox", False), (b"foo*", b"foo*", True),
     (b"foo.>", b"foo.>", True)],
)
def test_subject_matches_examples(pattern: bytes, subject: bytes, ok: bool) -> None:
    assert subject_matches(pattern, subject) is ok


@pytest.mark.parametrize(
    ("sub", "pattern", "ok"),
    [(b"foo.*", b"foo.>", True), (b"foo.>", b"foo.*", False), (b"foo.a", b"foo.*", True),
     (b"*.b", b"*.*", True), (b"*.*", b"*.b", False), (b"foo.>", b">", True),
     (b">", b"foo.>", False), (b"foo.*.>", b"foo.>", True), (b"foo.>", b"foo.*.>", False),
     (b"a.b", b"a.b", True), (b"a", b"a.>", False), (b"a.>", b"a.>", True)],
)
def test_subject_is_subset_examples(sub: bytes, pattern: bytes, ok: bool) -> None:
    assert subject_is_subset(sub, pattern) is ok


@pytest.mark.parametrize(
    ("a", "b", "ok"),
    [(b"foo.*", b"*.bar", True), (b"foo", b"foo.>", False), (b"foo.>", b"*.*.baz", True),
     (b"a.b", b"a.c", False), (b">", b"x.y.z", True), (b"*", b"a.b", False)],
)
def test_subjects_intersect_examples(a: bytes, b: bytes, ok: bool) -> None:
    assert subjects_intersect(a, b) is ok
    assert subjects_intersect(b, a) is ok


@given(patterns(4))
def test_matches_against_brute_force(p: bytes) -> None:
    assert valid_subject(p)
    for s in literal_subjects(5):
        assert subject_matches(p, s) is brute_match(p, s), s


@given(patterns(), patterns())
def test_subset_against_brute_force(a: bytes, b: bytes) -> None:
    universe = literal_subjects(max(num_tokens(a), num_tokens(b)) + 1)
    expected = all(brute_match(b, s) for s in universe if brute_match(a, s))
    assert subject_is_subset(a, b) is expected


@given(patterns(), patterns())
def test_intersect_against_brute_force(a: bytes, b: bytes) -> None:
    universe = literal_subjects(max(num_tokens(a), num_tokens(b)) + 1)
    expected = any(brute_match(a, s) and brute_match(b, s) for s in universe)
    assert subjects_intersect(a, b) is expected
    assert subjects_intersect(b, a) is expected


@given(patterns(), patterns(), patterns())
def test_subset_is_a_preorder(a: bytes, b: bytes, c: bytes) -> None:
    assert subject_is_subset(a, a)
    if subject_is_subset(a, b) and subject_is_subset(b, c):
        assert subject_is_subset(a, c)
    if subject_is_subset(a, b):
        assert subjects_intersect(a, b)


# -- house rule: the subject core does no I/O ---------------------------------------

FORBIDDEN = {"asyncio", "socket", "ssl", "os", "time", "select", "selectors", "threading"}


def test_subjects_package_is_sans_io() -> None:
    pkg = Path(tokens.__file__).parent
    for path in sorted(pkg.glob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"

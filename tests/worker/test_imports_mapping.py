"""Subject transforms for imports: nats' spellings, strictness, exact inverse."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natsd.subjects.tokens import subject_matches, subjects_intersect
from natsd.worker.imports_mapping import MappingError, SubjectTransform, intersect, untokenize


@pytest.mark.parametrize(
    ("src", "to", "subject", "want"),
    [
        (b"a.>", b"fa.a.>", b"a.x.y", b"fa.a.x.y"),  # prefix form
        (b"m.*.*", b"mm.$2.$1", b"m.1.2", b"mm.2.1"),
        (b"m.*.*", b"mm.*.*", b"m.1.2", b"mm.1.2"),  # bare * are positional
        (b"t.*.*.*", b"tt.{{wildcard(2)}}.{{ Wildcard(3) }}.$1", b"t.1.2.3", b"tt.2.3.1"),
        (b"w.*.>", b"bw.*.>", b"w.7.z.q", b"bw.7.z.q"),
        (b"w.*.>", b"bw.>.x", None, None),  # invalid: '>' not last
        (b"x.y", b"lit", b"x.y", b"lit"),  # literal source: destination as written
        (b"x.y", b"lit.$1", b"x.y", b"lit.$1"),
    ],
)
def test_apply(src: bytes, to: bytes, subject: bytes | None, want: bytes | None) -> None:
    if want is None:
        with pytest.raises(MappingError):
            SubjectTransform.from_to(src, to)
        return
    tr = SubjectTransform.from_to(src, to)
    assert subject is not None
    assert tr.apply(subject) == want
    assert subject_matches(tr.pattern, want)


@pytest.mark.parametrize(
    ("src", "to"),
    [
        (b"m.*.*", b"mm.$1"),  # not every wildcard used: not reversible
        (b"m.*", b"mm.$2"),  # index out of range
        (b"m.*", b"mm.$0"),
        (b"m.>", b"mm.x"),  # '>' on one side only
        (b"m.*", b"mm.*.>"),
        (b"m.*", b"mm.{{partition(3,1)}}"),  # only wildcard() in imports
        (b"m..x", b"y"),
    ],
)
def test_strict_rejects(src: bytes, to: bytes) -> None:
    with pytest.raises(MappingError):
        SubjectTransform.from_to(src, to)


def test_untokenize_and_dollar_literals() -> None:
    assert untokenize(b"x.$2.{{wildcard(1)}}.$G") == b"x.*.*.$G"
    tr = SubjectTransform(b"a.*", b"$G.$1")
    assert tr.apply(b"a.b") == b"$G.b"


def test_reverse_pattern_is_exact_for_any_permutation() -> None:
    # nats-server 2.15 reverses t.$2.$3.$1 wrongly (shadow on t.3.1.2 for a sub on
    # tt.2.3.1; confirmed by probing); natsd inverts per wildcard.
    tr = SubjectTransform(b"t.*.*.*", b"tt.$2.$3.$1")
    assert tr.apply(b"t.1.2.3") == b"tt.2.3.1"
    assert tr.reverse_pattern(b"tt.2.3.1") == b"t.1.2.3"
    assert tr.reverse_pattern(b"tt.*.3.1") == b"t.1.*.3"


_tok = st.sampled_from([b"a", b"b", b"c", b"xyz", b"1"])


@st.composite
def _transforms(draw: st.DrawFn) -> tuple[SubjectTransform, list[bytes]]:
    """A random strict transform (any wildcard permutation, optional '>') and a subject."""
    n = draw(st.integers(0, 3))
    body = draw(st.permutations([*draw(st.lists(_tok, max_size=2)), *[b"*"] * n]))
    refs = [b"$%d" % k for k in draw(st.permutations(list(range(1, n + 1))))]
    dbody = draw(st.permutations([*draw(st.lists(_tok, max_size=2)), *refs]))
    tail = [b">"] if draw(st.booleans()) else []
    src = [b"s", *body, *tail]
    dest = [b"d", *dbody, *tail]
    subject = [b"s", *[draw(_tok) if t == b"*" else t for t in body]]
    if tail:
        subject += draw(st.lists(_tok, min_size=1, max_size=3))
    return SubjectTransform(b".".join(src), b".".join(dest)), subject


@given(_transforms())
def test_roundtrip(case: tuple[SubjectTransform, list[bytes]]) -> None:
    tr, toks = case
    subject = b".".join(toks)
    assert subject_matches(tr.src, subject)
    mapped = tr.apply(subject)
    assert subject_matches(tr.pattern, mapped)
    assert tr.reverse_pattern(mapped) == subject
    # The whole local pattern reverses to the whole source pattern.
    assert tr.reverse_pattern(tr.pattern) == tr.src


_pat_tok = st.sampled_from([b"a", b"b", b"*"])


@st.composite
def _patterns(draw: st.DrawFn) -> bytes:
    toks = draw(st.lists(_pat_tok, min_size=1, max_size=4))
    if draw(st.booleans()):
        toks.append(b">")
    return b".".join(toks)


@given(_patterns(), _patterns(), st.lists(st.sampled_from([b"a", b"b", b"c"]), min_size=1, max_size=6))
def test_intersect_is_exact(a: bytes, b: bytes, toks: list[bytes]) -> None:
    both = intersect(a, b)
    assert (both is not None) == subjects_intersect(a, b)
    s = b".".join(toks)
    in_both = subject_matches(a, s) and subject_matches(b, s)
    assert in_both == (both is not None and subject_matches(both, s))

"""Subject mapping for imports: reversible wildcard transforms and pattern intersection.

Theory of operation
-------------------
An import renames subjects as they cross from the exporting account A into the
importing account B. nats-server expresses every renaming as a *strict* subject
transform (``subject_transform.go``, ``NewSubjectTransformStrict``): a source
pattern in one namespace and a destination template in the other, where the only
mapping function allowed is wildcard substitution, so the transform can be run
backwards. Three spellings reach us from the config:

* ``prefix: p``        -- destination ``p.<source>``; nats appends the ``.``;
* ``to: "x.*.>"``      -- each ``*`` in the destination is the next source ``*``
  in order (nats ``transformTokenize``: the n-th ``*`` becomes ``$n``);
* ``to: "x.$2.$1"`` or ``{{wildcard(2)}}`` -- explicit positions.

A destination may use each source ``*`` in any order but must use all of them
(else it could not be reversed), must have no bare ``*`` left after tokenizing,
and ends in ``>`` exactly when the source does; the ``>`` carries the source's
trailing tokens unchanged. When the source is literal there is nothing to
substitute and the destination is the whole answer.

:meth:`SubjectTransform.apply` maps a literal subject (a publish) forwards.
:meth:`SubjectTransform.reverse_pattern` maps a *pattern* from the destination
side back to the source side; the worker needs that to turn an importer's
subscription (already narrowed to the import with :func:`intersect`) into the
interest it implies in the exporter. nats-server reverses by re-tokenizing
(``subjectTransform.reverse``), which is exact for swaps like ``$2.$1`` but not
for a longer permutation such as ``$2.$3.$1``; here the inverse is computed per
source wildcard, so ``reverse_pattern(apply(s)) == s`` for every ``s``.

Pure and sans-IO: ``bytes`` in, ``bytes`` out, no clock and no state after
construction.
"""

from __future__ import annotations

import re

from natsd.subjects.tokens import FWC, PWC, SEP, valid_subject

__all__ = ["MappingError", "SubjectTransform", "intersect", "tokenize_stars", "untokenize"]

# ``{{wildcard(2)}}`` with nats' leniency about spaces and the case of the first letter.
_WILDCARD_FN = re.compile(rb"^\{\{\s*[wW]ildcard\s*\(\s*(\d+)\s*\)\s*\}\}$")
_ANY_FN = re.compile(rb"^\{\{.*\}\}$")


class MappingError(ValueError):
    """The destination of an import cannot be a reversible transform of its source."""


def _placeholder(tok: bytes) -> int | None:
    """The 1-based wildcard index ``tok`` refers to, or None when it is a literal.

    ``$x`` that is not a number stays a literal, as in nats (``$G``-style tokens are
    legal subjects). Mustache functions other than ``wildcard`` are refused: an
    import must be reversible, so ``partition``/``split``/... cannot appear.
    """
    if len(tok) > 1 and tok[:1] == b"$":
        return int(tok[1:]) if tok[1:].isdigit() else None
    m = _WILDCARD_FN.match(tok)
    if m is not None:
        return int(m.group(1))
    if _ANY_FN.match(tok):
        raise MappingError(f"mapping function {tok.decode(errors='replace')!r} not allowed in imports")
    return None


def untokenize(dest: bytes) -> bytes:
    """``x.$2.{{wildcard(1)}}`` -> ``x.*.*``: the pattern a destination template covers."""
    out = []
    for tok in dest.split(SEP):
        try:
            out.append(PWC if _placeholder(tok) is not None else tok)
        except MappingError:
            out.append(tok)
    return SEP.join(out)


def tokenize_stars(dest: bytes) -> bytes:
    """``x.*.*`` -> ``x.$1.$2`` (nats ``transformTokenize``): ``*`` in order of appearance."""
    out = []
    n = 0
    for tok in dest.split(SEP):
        if tok == PWC:
            n += 1
            out.append(b"$%d" % n)
        else:
            out.append(tok)
    return SEP.join(out)


class SubjectTransform:
    """A strict, reversible ``src`` -> ``dest`` subject transform.

    ``dest`` is a template (``$n``/``{{wildcard(n)}}`` allowed, bare ``*`` not:
    call :func:`tokenize_stars` first for the ``to: "x.*"`` spelling).
    """

    __slots__ = ("_dtoks", "_fwc", "_inverse", "_literal", "_slots", "_stoks", "dest", "pattern", "src")

    def __init__(self, src: bytes, dest: bytes) -> None:
        if not valid_subject(src):
            raise MappingError(f"invalid source subject {src!r}")
        stoks = src.split(SEP)
        dtoks = dest.split(SEP)
        self.src = src
        self.dest = dest
        self._stoks = stoks
        self._dtoks = dtoks
        self._fwc = stoks[-1] == FWC
        # Position in ``stoks`` of the k-th (1-based) source ``*``.
        stars = [i for i, t in enumerate(stoks) if t == PWC]
        self._literal = not stars and not self._fwc
        # For each destination token: the source token index to copy, or -1 (literal).
        self._slots: list[int] = []
        used: set[int] = set()
        for tok in dtoks:
            k = None if self._literal else _placeholder(tok)
            if k is None:
                self._slots.append(-1)
                continue
            if not 1 <= k <= len(stars):
                raise MappingError(f"wildcard index {k} out of range in {dest!r}")
            used.add(k)
            self._slots.append(stars[k - 1])
        if not self._literal:
            self.pattern = untokenize(dest)
            if not valid_subject(self.pattern) or PWC in dtoks:
                raise MappingError(f"invalid destination {dest!r}")
            if (dtoks[-1] == FWC) != self._fwc:
                raise MappingError(f"{src!r} -> {dest!r}: '>' must appear in both or neither")
            if len(used) < len(stars):
                raise MappingError(f"{dest!r} does not use every wildcard of {src!r}")
        else:
            self.pattern = dest
        # Inverse: for each source ``*`` position, the first destination index holding it.
        self._inverse: dict[int, int] = {}
        for j, si in enumerate(self._slots):
            if si >= 0 and si not in self._inverse:
                self._inverse[si] = j

    @classmethod
    def from_to(cls, src: bytes, to: bytes) -> SubjectTransform:
        """The ``to:`` spelling: bare ``*`` are positional (nats ``transformTokenize``)."""
        return cls(src, tokenize_stars(to))

    def apply(self, subject: bytes) -> bytes:
        """Map a subject matching ``src`` to the destination namespace."""
        if self._literal:
            return self.dest
        toks = subject.split(SEP)
        out: list[bytes] = []
        for j, si in enumerate(self._slots):
            if si >= 0:
                out.append(toks[si])
            elif self._dtoks[j] == FWC:
                # ``>`` carries the source tail, from the source's own ``>`` position.
                out.extend(toks[len(self._stoks) - 1 :])
            else:
                out.append(self._dtoks[j])
        return SEP.join(out)

    def reverse_pattern(self, pattern: bytes) -> bytes:
        """Map a pattern that is a subset of :attr:`pattern` back to the source side.

        Wildcard tokens in ``pattern`` carry over, so ``fa.a.*`` under prefix ``fa``
        gives ``a.*``; a ``>`` in ``pattern`` lands inside the source's ``>`` tail.
        """
        if self._literal:
            return self.src
        ptoks = pattern.split(SEP)
        out: list[bytes] = []
        for i, st in enumerate(self._stoks):
            if st == PWC:
                out.append(ptoks[self._inverse[i]])
            elif st == FWC:
                out.extend(ptoks[len(self._dtoks) - 1 :])
            else:
                out.append(st)
        return SEP.join(out)

    def __repr__(self) -> str:
        return f"SubjectTransform({self.src!r} -> {self.dest!r})"


def intersect(a: bytes, b: bytes) -> bytes | None:
    """The most general pattern matched exactly by subjects matching both ``a`` and ``b``.

    None when no subject matches both. Position by position a literal beats ``*``;
    a ``>`` on one side takes the other side's remainder. The result is what
    nats-server's ``addShadowSubscriptions`` computes case by case (equal, subset,
    superset, overlap) when it turns an importer's subscription into interest.
    """
    if a == b:
        return a
    at, bt = a.split(SEP), b.split(SEP)
    out: list[bytes] = []
    for i in range(max(len(at), len(bt))):
        x = at[i] if i < len(at) else None
        y = bt[i] if i < len(bt) else None
        if x == FWC and y is not None:
            out.extend(bt[i:])
            return SEP.join(out)
        if y == FWC and x is not None:
            out.extend(at[i:])
            return SEP.join(out)
        if x is None or y is None:
            return None
        if x == y or y == PWC:
            out.append(x)
        elif x == PWC:
            out.append(y)
        else:
            return None
    return SEP.join(out)

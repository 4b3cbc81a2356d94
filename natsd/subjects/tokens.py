"""Subject syntax: validation, tokenizing and pattern algebra, on ``bytes``.

Theory of operation
-------------------
A NATS subject is a ``.``-separated list of non-empty *tokens*. Two tokens are
special when they stand alone:

* ``*`` matches exactly one token at its position;
* ``>`` matches one or more trailing tokens and is only legal as the last token.

Anything else is a literal token, including ``foo*`` and ``foo>``: the wildcard
characters only mean something when they are the whole token (nats-server
``sublist.go`` treats them the same way). Whitespace (space, tab, CR, LF, FF) is
never allowed, because the text protocol splits its control lines on it.

Published subjects must be *literal* (no wildcard token); subscriptions, permissions,
imports and exports may use wildcards. This module answers the three questions the
rest of the server asks about patterns:

* :func:`subject_matches` -- does a literal subject match a pattern?  (delivery)
* :func:`subject_is_subset` -- is everything a pattern can match also matched by
  another pattern?  (permissions: may this client subscribe to ``foo.*`` when it is
  allowed ``foo.>``?)
* :func:`subjects_intersect` -- can any literal subject match both patterns?
  (interest checks across account imports/exports)

All three compare token lists position by position. ``>`` is the only token that can
absorb a variable number of tokens, and since it is always last, a single left-to-right
walk decides each question; there is no backtracking.

Everything here works on ``bytes`` because that is what the parser hands us and what
the subject index keys on; decoding on the hot path would only cost time. The module
is pure: no I/O, no state.
"""

from __future__ import annotations

import re

__all__ = [
    "FWC",
    "PWC",
    "SEP",
    "has_wildcard",
    "num_tokens",
    "subject_is_subset",
    "subject_matches",
    "subjects_intersect",
    "tokenize",
    "valid_literal_subject",
    "valid_queue",
    "valid_subject",
]

#: Token separator.
SEP = b"."
#: Partial wildcard: matches exactly one token.
PWC = b"*"
#: Full wildcard: matches one or more trailing tokens.
FWC = b">"

# One regex scan is cheaper than five ``in`` scans for the typical short subject, and it
# keeps the set of forbidden bytes in a single place. nats-server forbids the same five.
_WHITESPACE = re.compile(rb"[ \t\r\n\f]")


def tokenize(s: bytes) -> list[bytes]:
    """Split a subject into its tokens (no validation)."""
    return s.split(SEP)


def num_tokens(s: bytes) -> int:
    """Number of tokens in ``s``; 0 for the empty subject."""
    if not s:
        return 0
    return s.count(SEP) + 1


def has_wildcard(s: bytes) -> bool:
    """True when some token of ``s`` is exactly ``*`` or ``>``.

    The two byte scans reject the overwhelmingly common literal subject without
    splitting it; only subjects that contain a wildcard *character* pay for a split,
    since ``foo*`` is literal.
    """
    if PWC not in s and FWC not in s:
        return False
    toks = s.split(SEP)
    return PWC in toks or FWC in toks


def valid_subject(s: bytes) -> bool:
    """True when ``s`` is a syntactically valid subject (wildcards allowed)."""
    if not s or _WHITESPACE.search(s) is not None:
        return False
    toks = s.split(SEP)
    if b"" in toks:
        return False
    # ``index`` finds the first ``>``; if that one is not last, either it is in the
    # middle or there are several, and both are invalid.
    return FWC not in toks or toks.index(FWC) == len(toks) - 1


def valid_literal_subject(s: bytes) -> bool:
    """True when ``s`` is valid and has no wildcard token, i.e. is publishable."""
    if not s or _WHITESPACE.search(s) is not None:
        return False
    toks = s.split(SEP)
    return b"" not in toks and PWC not in toks and FWC not in toks


def valid_queue(q: bytes) -> bool:
    """True when ``q`` is usable as a queue group name: non-empty, no whitespace."""
    return bool(q) and _WHITESPACE.search(q) is None


def subject_matches(pattern: bytes, subject: bytes) -> bool:
    """True when the literal ``subject`` is matched by ``pattern``.

    ``subject`` is assumed literal; if it contains wildcard tokens they are compared
    as ordinary tokens, which is what delivery wants (a ``*`` subject token only
    matches a ``*`` or a wildcard in the pattern).
    """
    if pattern == subject:
        return True
    if not has_wildcard(pattern):
        return False
    ptoks = pattern.split(SEP)
    stoks = subject.split(SEP)
    ns = len(stoks)
    for i, pt in enumerate(ptoks):
        if i >= ns:
            # The subject ran out first; ``>`` needs at least one more token.
            return False
        if pt == FWC:
            return True
        if pt != PWC and pt != stoks[i]:
            return False
    return len(ptoks) == ns


def subject_is_subset(sub: bytes, pattern: bytes) -> bool:
    """True when every literal subject matched by ``sub`` is matched by ``pattern``.

    Position by position, ``pattern`` must be at least as general as ``sub``:
    ``>`` covers anything that still has a token there, ``*`` covers any single token
    except ``>`` (which may stand for several), and a literal only covers itself.
    """
    if sub == pattern:
        return True
    stoks = sub.split(SEP)
    ptoks = pattern.split(SEP)
    ns = len(stoks)
    for i, pt in enumerate(ptoks):
        if i >= ns:
            # ``sub`` matches exactly ``ns`` tokens; ``pattern`` demands more.
            return False
        st = stoks[i]
        if pt == FWC:
            return True
        if st == FWC:
            return False
        if pt == PWC:
            continue
        if st == PWC or st != pt:
            return False
    # ``pattern`` is exhausted: it matches exactly ``len(ptoks)`` tokens, so ``sub``
    # must not allow more (a trailing ``>`` in ``sub`` was rejected above).
    return len(ptoks) == ns


def subjects_intersect(a: bytes, b: bytes) -> bool:
    """True when some literal subject is matched by both patterns ``a`` and ``b``.

    A ``>`` on either side, reached while the other side still has a token, always
    yields a common subject: the other side's remainder is non-empty, every valid
    non-empty pattern matches something, and ``>`` matches any non-empty tail.
    """
    if a == b:
        return True
    atoks = a.split(SEP)
    btoks = b.split(SEP)
    na, nb = len(atoks), len(btoks)
    for i in range(min(na, nb)):
        at, bt = atoks[i], btoks[i]
        if at == FWC or bt == FWC:
            return True
        if at != bt and at != PWC and bt != PWC:
            return False
    # Neither side reached a ``>``, so each matches exactly its own token count.
    return na == nb

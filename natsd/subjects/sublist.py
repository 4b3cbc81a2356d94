"""The subject index: a per-account trie of subscriptions with a match cache.

Theory of operation
-------------------
This is nats-server's ``sublist.go`` rebuilt for Python. A subscription's subject is
split into tokens and stored along a path of *levels*. Each level has

* ``nodes`` -- a dict from literal token to the child :class:`_Node`,
* ``pwc`` -- a dedicated child for the ``*`` token,
* ``fwc`` -- a dedicated child for the ``>`` token (always a leaf).

A node holds the subscriptions whose subject ends there: plain subscriptions in an
insertion-ordered dict, queue subscriptions in a dict of such dicts keyed by queue
name. Dicts are keyed by ``id(sub)`` so that subscriptions are compared by identity
even if a subclass defines ``__eq__`` (a sub stays alive while it is in the index, so
its id cannot be reused under our feet).

**Matching** a literal subject walks the levels token by token. At every level the
``>`` child contributes all its subscriptions, the ``*`` child forks a recursive walk
over the remaining tokens, and the literal child continues the current walk. After the
last token the literal node and the ``*`` node reached there contribute. A subject
with ``k`` tokens therefore costs ``O(k * 2^w)`` dict lookups where ``w`` is the number
of levels with a ``*`` child along the way -- small in practice.

**Results** are immutable :class:`SublistResult` tuples. Queue subscriptions are merged
by queue name across all matching nodes, so a group that subscribed on both
``foo.*`` and ``foo.>`` is still one group whose member is picked once.

**The cache** maps a published subject to its result, so the common case -- a
repeated literal subject -- is one dict lookup. It stays exact across changes the way
nats-server keeps it: inserting a subscription *patches* the cached results it
affects, so hot subjects stay warm while interest grows, and removing one *deletes*
them, which is O(1) per entry however large the fanout (a client closing with many
subscriptions on one busy subject would otherwise rebuild that result once per
subscription); the next match recomputes lazily. A literal subscription can only
affect the entry with the same key; a wildcard subscription scans the (bounded) cache
for the keys it matches. When the cache grows past ``cache_max`` entries the oldest are
dropped until ``cache_sweep`` remain; dict insertion order makes "oldest" free.

**genid** increases on every change. Callers that keep their own per-connection
cache (nats-server's client ``pcd``/``in.results``) compare it to know when to flush.

The module is sans-IO and single-threaded: each account's index lives in one worker
process and is only touched from its event loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any, Generic, NamedTuple, Protocol, TypeVar

from natsd.subjects.tokens import FWC, PWC, SEP, valid_subject

__all__ = [
    "EMPTY_RESULT",
    "InvalidSubjectError",
    "SubLike",
    "Sublist",
    "SublistResult",
    "Subscription",
]


class SubLike(Protocol):
    """What the index needs from a subscription; identity is the comparison."""

    subject: bytes
    queue: bytes | None


S = TypeVar("S", bound=SubLike)


class InvalidSubjectError(ValueError):
    """Raised by :meth:`Sublist.insert` for a subject that cannot be indexed."""


class Subscription:
    """A minimal subscription record; the worker may subclass it with more slots."""

    __slots__ = ("__weakref__", "client", "delivered", "max_msgs", "queue", "sid", "subject")

    def __init__(
        self,
        subject: bytes,
        queue: bytes | None = None,
        sid: bytes = b"",
        client: Any = None,
        max_msgs: int = 0,
    ) -> None:
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.client = client
        self.max_msgs = max_msgs
        self.delivered = 0

    def __repr__(self) -> str:
        q = f" queue={self.queue!r}" if self.queue is not None else ""
        return f"<Subscription {self.subject!r}{q} sid={self.sid!r}>"


class SublistResult(NamedTuple, Generic[S]):
    """Subscriptions matching one subject.

    ``qsubs`` has one non-empty tuple per queue group name; the caller delivers to
    every member of ``psubs`` and to one member of each group.
    """

    psubs: tuple[S, ...]
    qsubs: tuple[tuple[S, ...], ...]


# NamedTuple's generated ``__new__`` is a Python-level call; on the miss path building
# the tuple directly is measurably cheaper.
_new_result: Any = tuple.__new__

#: The shared result for "no interest".
EMPTY_RESULT: SublistResult[Any] = SublistResult((), ())


class _Node(Generic[S]):
    __slots__ = ("next", "psubs", "qsubs")

    def __init__(self) -> None:
        self.next: _Level[S] | None = None
        self.psubs: dict[int, S] = {}
        self.qsubs: dict[bytes, dict[int, S]] = {}


class _Level(Generic[S]):
    __slots__ = ("fwc", "nodes", "pwc")

    def __init__(self) -> None:
        self.nodes: dict[bytes, _Node[S]] = {}
        self.pwc: _Node[S] | None = None
        self.fwc: _Node[S] | None = None

    def is_empty(self) -> bool:
        return not self.nodes and self.pwc is None and self.fwc is None

    def children(self) -> Iterator[_Node[S]]:
        yield from self.nodes.values()
        if self.pwc is not None:
            yield self.pwc
        if self.fwc is not None:
            yield self.fwc

    def child(self, token: bytes, create: bool) -> _Node[S] | None:
        if token == PWC:
            if self.pwc is None and create:
                self.pwc = _Node()
            return self.pwc
        if token == FWC:
            if self.fwc is None and create:
                self.fwc = _Node()
            return self.fwc
        node = self.nodes.get(token)
        if node is None and create:
            node = self.nodes[token] = _Node()
        return node

    def drop_child(self, token: bytes) -> None:
        if token == PWC:
            self.pwc = None
        elif token == FWC:
            self.fwc = None
        else:
            del self.nodes[token]


def _add_node(node: _Node[S], psubs: list[S], qsubs: dict[bytes, list[S]]) -> None:
    if node.psubs:
        psubs.extend(node.psubs.values())
    for name, group in node.qsubs.items():
        acc = qsubs.get(name)
        if acc is None:
            qsubs[name] = list(group.values())
        else:
            acc.extend(group.values())


def _match_level(
    level: _Level[S] | None,
    toks: list[bytes],
    start: int,
    psubs: list[S],
    qsubs: dict[bytes, list[S]],
) -> None:
    # The hot miss path; mirrors sublist.go matchLevel but passes an index instead of
    # slicing, since a Python slice allocates.
    node: _Node[S] | None = None
    pwc: _Node[S] | None = None
    for i in range(start, len(toks)):
        if level is None:
            return
        if level.fwc is not None:
            _add_node(level.fwc, psubs, qsubs)
        pwc = level.pwc
        if pwc is not None:
            _match_level(pwc.next, toks, i + 1, psubs, qsubs)
        node = level.nodes.get(toks[i])
        level = node.next if node is not None else None
    # Only reached once every token was consumed: the literal and ``*`` nodes found
    # for the last token are exact-length matches.
    if node is not None:
        _add_node(node, psubs, qsubs)
    if pwc is not None:
        _add_node(pwc, psubs, qsubs)


# Subjects with more tokens than this are matched by :func:`_match_deep`: the
# recursive walk forks at every ``*`` level, and a client may subscribe to a
# subject of ~2,000 tokens (a 4 KiB control line), deeper than Python's stack.
DEEP_SUBJECT_TOKENS = 128


def _match_deep(root: _Level[S], toks: list[bytes], psubs: list[S], qsubs: dict[bytes, list[S]]) -> None:
    """:func:`_match_level` with an explicit stack: the same results in the
    same order, for subjects of any depth."""
    n = len(toks)
    # A frame is a suspended call: [level, next token index, node, pwc].
    stack: list[list[Any]] = [[root, 0, None, None]]
    while stack:
        frame = stack[-1]
        level, i, node, pwc = frame
        forked = early = False
        while i < n:
            if level is None:
                early = True
                break
            if level.fwc is not None:
                _add_node(level.fwc, psubs, qsubs)
            pwc = level.pwc
            node = level.nodes.get(toks[i])
            after = node.next if node is not None else None
            if pwc is not None:
                # Resume here (with the literal branch) once the ``*`` branch is done.
                frame[0], frame[1], frame[2], frame[3] = after, i + 1, node, pwc
                stack.append([pwc.next, i + 1, None, None])
                forked = True
                break
            level = after
            i += 1
        if forked:
            continue
        stack.pop()
        if early:
            continue
        if node is not None:
            _add_node(node, psubs, qsubs)
        if pwc is not None:
            _add_node(pwc, psubs, qsubs)


def _any_level(level: _Level[S] | None, toks: list[bytes], start: int) -> bool:
    """Like :func:`_match_level` but stops at the first subscription found."""
    node: _Node[S] | None = None
    pwc: _Node[S] | None = None
    for i in range(start, len(toks)):
        if level is None:
            return False
        fwc = level.fwc
        if fwc is not None and (fwc.psubs or fwc.qsubs):
            return True
        pwc = level.pwc
        if pwc is not None and _any_level(pwc.next, toks, i + 1):
            return True
        node = level.nodes.get(toks[i])
        level = node.next if node is not None else None
    return any(n is not None and bool(n.psubs or n.qsubs) for n in (node, pwc))


def _node_subs(node: _Node[S]) -> Iterator[S]:
    yield from node.psubs.values()
    for group in node.qsubs.values():
        yield from group.values()


def _subtree_subs(node: _Node[S]) -> Iterator[S]:
    yield from _node_subs(node)
    if node.next is not None:
        for child in node.next.children():
            yield from _subtree_subs(child)


def _intersecting(level: _Level[S] | None, toks: list[bytes], i: int, out: list[S]) -> None:
    """Collect subs in ``level`` whose remaining tokens intersect ``toks[i:]``."""
    if level is None:
        return
    tok = toks[i]
    if tok == FWC:
        # ``>`` intersects every subscription that still has a token here.
        for child in level.children():
            out.extend(_subtree_subs(child))
        return
    # A ``>`` subscription intersects whatever non-empty tail the pattern has left.
    if level.fwc is not None:
        out.extend(_node_subs(level.fwc))
    nexts: list[_Node[S]]
    if tok == PWC:
        nexts = list(level.nodes.values())
    else:
        lit = level.nodes.get(tok)
        nexts = [lit] if lit is not None else []
    if level.pwc is not None:
        nexts.append(level.pwc)
    last = i == len(toks) - 1
    for node in nexts:
        if last:
            out.extend(_node_subs(node))
        else:
            _intersecting(node.next, toks, i + 1, out)


def _prefixed_keys(cache: dict[bytes, Any], prefix: bytes) -> list[bytes]:
    """Cached subjects starting with ``prefix``.

    A per-key ``startswith`` is a Python-level method call per key (~60 us for a full
    cache); one C-level join plus a ``find`` per hit is several times faster, and when
    nothing matches -- the usual case for a new ``_INBOX.<id>.*`` -- it is one search.
    This relies on cache keys never containing ``\n``, which :meth:`Sublist.match`
    guarantees by not caching such subjects.
    """
    blob = b"\n" + b"\n".join(cache)
    needle = b"\n" + prefix
    out = []
    pos = blob.find(needle)
    while pos >= 0:
        end = blob.find(b"\n", pos + 1)
        if end < 0:
            end = len(blob)
        out.append(blob[pos + 1 : end])
        pos = blob.find(needle, end)
    return out


def _matching_keys(cache: dict[bytes, Any], pattern: bytes) -> list[bytes]:
    """Cached subjects matched by the wildcard ``pattern``.

    A wildcard insert or remove must find every affected cache entry, which means a
    scan of the cache (nats-server does the same). Most wildcard subscriptions start
    with literal tokens (``_INBOX.<id>.*``, ``svc.eu.>``), so the scan is first
    narrowed to keys with that literal prefix, and only those are compared token by
    token.
    """
    ptoks = pattern.split(SEP)
    n = len(ptoks)
    fwc = ptoks[-1] == FWC
    if fwc:
        n -= 1
    first_wc = next((i for i, t in enumerate(ptoks) if t in (PWC, FWC)), None)
    if first_wc is None:
        # Wildcard characters inside literal tokens (``foo*``): an exact subject.
        return [pattern] if pattern in cache else []
    prefix = SEP.join(ptoks[:first_wc]) + SEP if first_wc else b""
    cands: Iterable[bytes] = _prefixed_keys(cache, prefix) if prefix else cache
    out = []
    for key in cands:
        ktoks = key.split(SEP)
        # ``>`` needs at least one token beyond the ``n`` compared ones.
        if len(ktoks) <= n if fwc else len(ktoks) != n:
            continue
        for i in range(first_wc, n):
            pt = ptoks[i]
            if pt != PWC and pt != ktoks[i]:
                break
        else:
            out.append(key)
    return out


def _with_sub(r: SublistResult[S], sub: S) -> SublistResult[S]:
    """``r`` plus ``sub`` (which is known not to be in it)."""
    q = sub.queue
    if q is None:
        return SublistResult(r.psubs + (sub,), r.qsubs)
    groups = list(r.qsubs)
    for i, g in enumerate(groups):
        if g[0].queue == q:
            groups[i] = g + (sub,)
            break
    else:
        groups.append((sub,))
    return SublistResult(r.psubs, tuple(groups))


class Sublist(Generic[S]):
    """A subject index for one account. See the module docstring for the design."""

    def __init__(self, cache: bool = True, *, cache_max: int = 1024, cache_sweep: int = 256):
        if cache and not 0 <= cache_sweep < cache_max:
            raise ValueError("need 0 <= cache_sweep < cache_max")
        self._root: _Level[S] = _Level()
        self._cache: dict[bytes, SublistResult[S]] | None = {} if cache else None
        self._cache_max = cache_max
        self._cache_sweep = cache_sweep
        self._count = 0
        #: Bumped on every successful insert or remove.
        self.genid = 0
        self._inserts = 0
        self._removes = 0
        # num_matches is hits + misses, so a cache hit pays for one counter only.
        self._hits = 0
        self._misses = 0

    # -- mutation -------------------------------------------------------------------

    def insert(self, sub: S) -> None:
        """Add ``sub``; inserting a sub that is already indexed changes nothing."""
        subject = sub.subject
        if not valid_subject(subject):
            raise InvalidSubjectError(subject)
        level = self._root
        node: _Node[S] | None = None
        for tok in subject.split(SEP):
            if node is not None:
                if node.next is None:
                    node.next = _Level()
                level = node.next
            node = level.child(tok, create=True)
        assert node is not None  # a valid subject has at least one token
        key = id(sub)
        q = sub.queue
        if q is None:
            if key in node.psubs:
                return
            node.psubs[key] = sub
        else:
            group = node.qsubs.setdefault(q, {})
            if key in group:
                return
            group[key] = sub
        self._count += 1
        self._inserts += 1
        self.genid += 1
        if self._cache:
            self._patch_cache(sub, adding=True)

    def remove(self, sub: S) -> bool:
        """Remove ``sub``; returns False when it was not indexed."""
        subject = sub.subject
        level: _Level[S] | None = self._root
        path: list[tuple[_Level[S], bytes, _Node[S]]] = []
        node: _Node[S] | None = None
        for tok in subject.split(SEP):
            if level is None:
                return False
            node = level.child(tok, create=False)
            if node is None:
                return False
            path.append((level, tok, node))
            level = node.next
        if node is None or not self._unlink(node, sub):
            return False
        # Prune now-empty nodes bottom-up so that dead branches do not slow matching
        # or keep memory after churn.
        for lvl, tok, n in reversed(path):
            if n.next is not None and n.next.is_empty():
                n.next = None
            if n.psubs or n.qsubs or n.next is not None:
                break
            lvl.drop_child(tok)
        self._count -= 1
        self._removes += 1
        self.genid += 1
        if self._cache:
            self._patch_cache(sub, adding=False)
        return True

    def remove_batch(self, subs: Iterable[S]) -> int:
        """Remove many subs (a closing client); returns how many were indexed."""
        return sum(1 for sub in subs if self.remove(sub))

    @staticmethod
    def _unlink(node: _Node[S], sub: S) -> bool:
        key = id(sub)
        q = sub.queue
        if q is None:
            return node.psubs.pop(key, None) is not None
        group = node.qsubs.get(q)
        if group is None or group.pop(key, None) is None:
            return False
        if not group:
            del node.qsubs[q]
        return True

    def _patch_cache(self, sub: S, adding: bool) -> None:
        # Called after the trie changed, with a non-empty cache.
        cache = self._cache
        assert cache is not None
        pattern = sub.subject
        if PWC in pattern or FWC in pattern:
            keys = _matching_keys(cache, pattern)
        else:
            keys = [pattern] if pattern in cache else []
        if adding:
            for k in keys:
                cache[k] = _with_sub(cache[k], sub)
        else:
            for k in keys:
                del cache[k]

    # -- queries --------------------------------------------------------------------

    def match(self, subject: bytes) -> SublistResult[S]:
        """All subscriptions matching the literal ``subject``."""
        cache = self._cache
        if cache is not None:
            r = cache.get(subject)
            if r is not None:
                self._hits += 1
                return r
        self._misses += 1
        toks = subject.split(SEP)
        if b"" in toks:
            # Empty tokens can never match and are not worth a cache slot.
            return EMPTY_RESULT
        psubs: list[S] = []
        qsubs: dict[bytes, list[S]] = {}
        if len(toks) <= DEEP_SUBJECT_TOKENS:
            _match_level(self._root, toks, 0, psubs, qsubs)
        else:
            _match_deep(self._root, toks, psubs, qsubs)
        if qsubs:
            r = _new_result(SublistResult, (tuple(psubs), tuple([tuple(g) for g in qsubs.values()])))
        elif psubs:
            r = _new_result(SublistResult, (tuple(psubs), ()))
        else:
            r = EMPTY_RESULT
        # Subjects with a newline are invalid anyway, and keeping them out of the cache
        # lets ``_prefixed_keys`` use ``\n`` as a separator.
        if cache is not None and b"\n" not in subject:
            cache[subject] = r
            if len(cache) > self._cache_max:
                self._sweep(cache)
        return r

    def _sweep(self, cache: dict[bytes, SublistResult[S]]) -> None:
        # Drop the oldest entries; the dict remembers insertion order.
        excess = len(cache) - self._cache_sweep
        for k in list(islice(cache, excess)):
            del cache[k]

    def has_interest(self, subject: bytes) -> bool:
        """True when ``match(subject)`` would be non-empty, without building it."""
        cache = self._cache
        if cache is not None:
            r = cache.get(subject)
            if r is not None:
                return bool(r.psubs or r.qsubs)
        toks = subject.split(SEP)
        if b"" in toks:
            return False
        if len(toks) > DEEP_SUBJECT_TOKENS:
            psubs: list[S] = []
            qsubs: dict[bytes, list[S]] = {}
            _match_deep(self._root, toks, psubs, qsubs)
            return bool(psubs or qsubs)
        return _any_level(self._root, toks, 0)

    def match_intersecting(self, subject: bytes) -> list[S]:
        """Subs whose subject intersects ``subject``, which may contain wildcards."""
        out: list[S] = []
        toks = subject.split(SEP)
        if subject and b"" not in toks:
            _intersecting(self._root, toks, 0, out)
        return out

    def count(self) -> int:
        """Number of indexed subscriptions."""
        return self._count

    def cache_count(self) -> int:
        """Number of cached results."""
        return len(self._cache) if self._cache is not None else 0

    def all_subs(self) -> list[S]:
        """Every indexed subscription (for monitoring; walks the whole trie)."""
        out: list[S] = []
        for node in self._root.children():
            out.extend(_subtree_subs(node))
        return out

    def stats(self) -> dict[str, Any]:
        """Counters in the shape of nats-server's ``/subsz`` ``SublistStats``."""
        matches = self._hits + self._misses
        fanouts = [len(r.psubs) + len(r.qsubs) for r in (self._cache or {}).values()]
        return {
            "num_subscriptions": self._count,
            "num_cache": len(fanouts),
            "num_inserts": self._inserts,
            "num_removes": self._removes,
            "num_matches": matches,
            "cache_hit_rate": self._hits / matches if matches else 0.0,
            "max_fanout": max(fanouts, default=0),
            "avg_fanout": sum(fanouts) / len(fanouts) if fanouts else 0.0,
        }

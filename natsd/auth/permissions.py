"""Per-connection subject permissions, compiled once and checked on the hot path.

Theory of operation
-------------------
A user's ``permissions`` (spec §4) become one :class:`CompiledPermissions` when the
connection authenticates. ``build`` returns ``None`` for an unrestricted user, so the
worker's fast path is a single ``is None`` test. Subjects are ``bytes`` throughout;
the lists are small (a handful of patterns), so each check is a linear scan through
:mod:`natsd.subjects.tokens`, and the two checks that run per message keep a bounded
FIFO cache keyed by subject.

Four questions are answered here:

``can_publish(subject, now)`` (§4.2)
    The subject must match an allow pattern when an allow list exists, and no deny
    pattern. A subject that fails either test falls through to the reply table when
    ``allow_responses`` is on: a tracked reply is allowed even if a deny entry covers
    it (verified against nats-server; the docs say the reply subject is not
    constrained by allow or deny).

``can_subscribe(subject, queue)`` (§4.3)
    Accepts what nats-server accepts. The SUB subject is matched *as a literal token
    string* against the patterns, which yields nats-server's quirk: allow ``foo.*``
    admits ``SUB foo.>`` (the pattern's ``*`` matches the literal token ``>``).
    Queue-qualified allow entries restrict which queue groups may use a subject.
    Deny entries are checked the same way, and additionally deny a SUB that is a
    subset of a deny pattern. A plain deny always wins: a queue-qualified allow or
    deny entry can never re-admit what a plain deny entry refuses (advisory 2026-18,
    where a queue entry's verdict overwrote the plain one). Queue ``_sys_`` is
    reserved.

``needs_delivery_filter(subject, queue)`` and ``can_deliver(subject, queue)`` (§4.4)
    A SUB that was accepted may still cover messages the user must not see: a
    wildcard that intersects a deny entry (allow ``foo.*``, deny ``foo.baz``, SUB
    ``foo.*``; advisory 2026-17 is that *intersect*, not *superset*, is the trigger),
    or a SUB admitted only through the quirk above. ``needs_delivery_filter`` says,
    once per subscription, whether every message that can match it is provably
    deliverable; when it is not, the worker calls ``can_deliver`` with each concrete
    message subject. ``can_deliver`` is the subscribe check applied to the literal
    message subject, so a filtered subscription never receives a message the user
    could not have subscribed to by name. This is where natsd is stricter than
    nats-server: allow ``foo.*`` plus ``SUB foo.>`` never yields ``foo.a.b``.

Reply tracking (§4.5)
    ``track_reply`` records a reply subject when a message carrying it is delivered
    to this connection (unless the connection may publish there anyway). Each entry
    allows ``max_msgs`` publishes within ``expires`` seconds. The table is a dict in
    insertion order with re-insertion on refresh, so its front is always the oldest
    entry: expiry pruning pops from the front (amortised O(1), run every 4096
    insertions or once a second), and when a tenant floods the connection with
    distinct replies the oldest entry is evicted at ``max_replies``. Memory per
    connection is therefore bounded no matter what other tenants send.

Everything is sans-IO: the caller passes the clock as ``now`` (seconds, monotonic).
"""

from __future__ import annotations

from collections.abc import Callable

from natsd.config.schema import Permissions, SubjectPermission
from natsd.subjects.sublist import Sublist, Subscription
from natsd.subjects.tokens import (
    has_wildcard,
    subject_is_subset,
    subject_matches,
    subjects_intersect,
    valid_subject,
)

__all__ = [
    "DEFAULT_RESPONSE_EXPIRES",
    "DEFAULT_RESPONSE_MAX",
    "MAX_TRACKED_REPLIES",
    "CompiledPermissions",
    "queue_matches",
    "reserved_publish",
    "reserved_queue",
    "reserved_reply",
]

DEFAULT_RESPONSE_MAX = 1
DEFAULT_RESPONSE_EXPIRES = 120.0
#: Per-connection cap on tracked replies (§4.5); the oldest entry is evicted beyond it.
MAX_TRACKED_REPLIES = 65536
# Per-connection verdict caches. FIFO eviction keeps the cost of a miss constant.
_CACHE_MAX = 4096
# Prune the reply table after this many insertions, or when this much time passed.
_PRUNE_EVERY = 4096
_PRUNE_INTERVAL = 1.0

_RESERVED_REPLY_PREFIXES = (b"_R_.", b"$JS.ACK.", b"_GR_.")
_SYS_QUEUE = b"_sys_"

# (subject pattern, queue pattern) pairs from "subject queue" entries.
_QueueEntry = tuple[bytes, bytes]


def reserved_reply(reply: bytes) -> bool:
    """True when a client may not use ``reply`` as a PUB reply subject (§1.7)."""
    return reply.startswith(_RESERVED_REPLY_PREFIXES)


def reserved_publish(subject: bytes, is_system: bool) -> bool:
    """True when a client may not publish to ``subject`` at all (§1.7)."""
    if subject.startswith(b"_GR_."):
        return True
    return not is_system and subject.startswith(b"$NRG.")


def reserved_queue(queue: bytes | None) -> bool:
    """True for the queue name reserved to the server (``_sys_``), for every user."""
    return queue == _SYS_QUEUE


def queue_matches(queue: bytes, pattern: bytes) -> bool:
    """Does the SUB's queue name fall under a permission entry's queue ``pattern``?

    Queue names are compared literally first (``*`` is a legal queue name), then, if
    the entry's queue has wildcard tokens, as a subset (nats-server ``queueMatches``).
    """
    return queue == pattern or (has_wildcard(pattern) and subject_is_subset(queue, pattern))


def _encode(entries: tuple[str, ...] | None) -> tuple[bytes, ...] | None:
    return None if entries is None else tuple(e.strip().encode() for e in entries)


def _split_sub(
    entries: tuple[str, ...] | None,
) -> tuple[tuple[bytes, ...], tuple[_QueueEntry, ...]]:
    plain: list[bytes] = []
    queued: list[_QueueEntry] = []
    for entry in entries or ():
        fields = entry.split()
        if len(fields) == 2:
            queued.append((fields[0].encode(), fields[1].encode()))
        elif fields:
            plain.append(fields[0].encode())
    return tuple(plain), tuple(queued)


class _PatternIndex:
    """Many publish patterns matched in one trie walk (a sublist of them),
    instead of one ``subject_matches`` per pattern: an uncached check costs
    O(subject tokens), not O(patterns)."""

    __slots__ = ("_sl",)

    def __init__(self, patterns: tuple[bytes, ...]) -> None:
        self._sl: Sublist[Subscription] = Sublist(cache=False)
        for p in patterns:
            self._sl.insert(Subscription(p))

    def matches(self, subject: bytes) -> bool:
        return self._sl.has_interest(subject)


_INDEX_AT = 4  # below this many patterns a plain scan is as fast


def _matcher(patterns: tuple[bytes, ...]) -> Callable[[bytes], bool]:
    # A pattern that is not a valid subject (``a.>.b``, a tab, an empty
    # token: a JWT may carry one, its validation only refuses spaces and
    # dots out of place) matches no subject a client can use; it is dropped,
    # as nats-server's sublist refuses to hold it.
    patterns = tuple(p for p in patterns if valid_subject(p))
    if len(patterns) >= _INDEX_AT:
        return _PatternIndex(patterns).matches
    return lambda subject: any(subject_matches(p, subject) for p in patterns)


def _bounded_put(cache: dict[bytes, bool], key: bytes, value: bool) -> None:
    if len(cache) >= _CACHE_MAX:
        del cache[next(iter(cache))]
    cache[key] = value


class CompiledPermissions:
    """The compiled form of one user's :class:`~natsd.config.schema.Permissions`."""

    __slots__ = (
        "_deliver_cache",
        "_inserts",
        "_last_prune",
        "_max_replies",
        "_pub_allow",
        "_pub_allow_match",
        "_pub_cache",
        "_pub_deny",
        "_pub_deny_match",
        "_replies",
        "_resp_expires",
        "_resp_max",
        "_sub_allow",
        "_sub_allow_plain",
        "_sub_allow_queue",
        "_sub_deny_plain",
        "_sub_deny_queue",
        "responses_enabled",
    )

    def __init__(
        self,
        pub: SubjectPermission | None,
        sub: SubjectPermission | None,
        resp_max: int,
        resp_expires: float,
        max_replies: int,
    ) -> None:
        self.responses_enabled = resp_max > 0
        self._pub_allow = _encode(pub.allow if pub else None)
        if self.responses_enabled and self._pub_allow is None:
            # §4.5: allow_responses forces a (possibly empty) publish allow list.
            self._pub_allow = ()
        self._pub_deny = _encode(pub.deny if pub else None) or ()
        self._pub_allow_match = _matcher(self._pub_allow or ())
        self._pub_deny_match = _matcher(self._pub_deny)
        self._sub_allow = sub is not None and sub.allow is not None
        self._sub_allow_plain, self._sub_allow_queue = _split_sub(sub.allow if sub else None)
        self._sub_deny_plain, self._sub_deny_queue = _split_sub(sub.deny if sub else None)
        self._resp_max = resp_max
        self._resp_expires = resp_expires
        self._max_replies = max_replies
        self._pub_cache: dict[bytes, bool] = {}
        self._deliver_cache: dict[bytes, bool] = {}
        # reply subject -> [first seen, publishes used]; insertion order == age order.
        self._replies: dict[bytes, list[float]] = {}
        self._inserts = 0
        self._last_prune = 0.0

    @classmethod
    def build(
        cls, p: Permissions | None, *, max_replies: int = MAX_TRACKED_REPLIES
    ) -> CompiledPermissions | None:
        """Compile ``p``; ``None`` when it restricts nothing."""
        if p is None:
            return None
        pub, sub = p.publish, p.subscribe
        if pub is not None and pub.allow is None and not pub.deny:
            pub = None
        if sub is not None and sub.allow is None and not sub.deny:
            sub = None
        resp_max, resp_expires = 0, 0.0
        if p.allow_responses is not None:
            resp_max = p.allow_responses.max_msgs
            resp_max = resp_max if resp_max > 0 else DEFAULT_RESPONSE_MAX
            resp_expires = p.allow_responses.expires
            resp_expires = resp_expires if resp_expires > 0 else DEFAULT_RESPONSE_EXPIRES
        if pub is None and sub is None and resp_max == 0:
            return None
        return cls(pub, sub, resp_max, resp_expires, max_replies)

    # -- publish --------------------------------------------------------------------

    def _static_publish(self, subject: bytes) -> bool:
        """Allow/deny lists only, cached; the reply table is not consulted."""
        ok = self._pub_cache.get(subject)
        if ok is None:
            ok = self._pub_allow is None or self._pub_allow_match(subject)
            if ok and self._pub_deny:
                ok = not self._pub_deny_match(subject)
            _bounded_put(self._pub_cache, subject, ok)
        return ok

    def can_publish(self, subject: bytes, now: float) -> bool:
        """May this connection publish to the literal ``subject`` now? (§4.2)"""
        if self._static_publish(subject):
            return True
        if not self.responses_enabled:
            return False
        entry = self._replies.get(subject)
        if entry is None:
            return False
        entry[1] += 1
        if entry[1] > self._resp_max or now - entry[0] > self._resp_expires:
            del self._replies[subject]
            return False
        if entry[1] >= self._resp_max:
            # The last allowed response: free the slot now rather than at prune time.
            del self._replies[subject]
        return True

    def track_reply(self, reply: bytes, now: float) -> None:
        """Record that a message with reply subject ``reply`` was delivered (§4.5)."""
        if not self.responses_enabled or not reply or self._static_publish(reply):
            return
        replies = self._replies
        if reply in replies:
            del replies[reply]  # re-insert at the back: it is now the newest
        elif len(replies) >= self._max_replies:
            del replies[next(iter(replies))]
        replies[reply] = [now, 0]
        self._inserts += 1
        if self._inserts >= _PRUNE_EVERY or now - self._last_prune >= _PRUNE_INTERVAL:
            self._prune(now)

    def _prune(self, now: float) -> None:
        replies = self._replies
        expires = self._resp_expires
        while replies:
            oldest = next(iter(replies))
            if now - replies[oldest][0] <= expires:
                break
            del replies[oldest]
        self._inserts = 0
        self._last_prune = now

    @property
    def tracked_replies(self) -> int:
        """Number of reply subjects currently tracked (for monitoring and tests)."""
        return len(self._replies)

    # -- subscribe and deliver ----------------------------------------------------------

    def _sub_verdict(self, subject: bytes, queue: bytes | None, wildcard: bool) -> bool:
        """nats-server ``canSubscribe`` with the plain-deny-wins fix (§4.3)."""
        if self._sub_allow:
            if queue is not None:
                qpats = [q for p, q in self._sub_allow_queue if subject_matches(p, subject)]
                if qpats:
                    allowed = any(queue_matches(queue, q) for q in qpats)
                else:
                    allowed = any(subject_matches(p, subject) for p in self._sub_allow_plain)
            else:
                allowed = any(subject_matches(p, subject) for p in self._sub_allow_plain)
            if not allowed:
                return False
        for d in self._sub_deny_plain:
            if subject_matches(d, subject) or (wildcard and subject_is_subset(subject, d)):
                return False
        if queue is not None:
            for d, q in self._sub_deny_queue:
                if queue_matches(queue, q) and (
                    subject_matches(d, subject) or (wildcard and subject_is_subset(subject, d))
                ):
                    return False
        return True

    def can_subscribe(self, subject: bytes, queue: bytes | None) -> bool:
        """May this connection create ``SUB subject [queue]``? (§4.3)"""
        if reserved_queue(queue):
            return False
        return self._sub_verdict(subject, queue, has_wildcard(subject))

    def can_deliver(self, subject: bytes, queue: bytes | None) -> bool:
        """May a message on the literal ``subject`` reach a sub with ``queue``? (§4.4)"""
        key = subject if queue is None else subject + b" " + queue
        ok = self._deliver_cache.get(key)
        if ok is None:
            ok = self._sub_verdict(subject, queue, False)
            _bounded_put(self._deliver_cache, key, ok)
        return ok

    def needs_delivery_filter(self, subject: bytes, queue: bytes | None) -> bool:
        """True unless every message matching the SUB is provably deliverable."""
        if self._sub_allow and not self._allow_covers(subject, queue):
            return True
        if any(subjects_intersect(subject, d) for d in self._sub_deny_plain):
            return True
        if queue is not None:
            return any(
                queue_matches(queue, q) and subjects_intersect(subject, d)
                for d, q in self._sub_deny_queue
            )
        return False

    def _allow_covers(self, subject: bytes, queue: bytes | None) -> bool:
        """Does the allow list admit every literal subject under the SUB ``subject``?"""
        in_plain = any(subject_is_subset(subject, p) for p in self._sub_allow_plain)
        if queue is None:
            return in_plain
        # A queue entry whose pattern contains the whole SUB and whose queue matches
        # admits every message on its own (it is among the matching queue entries).
        if any(
            queue_matches(queue, q) and subject_is_subset(subject, p)
            for p, q in self._sub_allow_queue
        ):
            return True
        # Otherwise a plain entry covers it only if no queue entry that could match a
        # message under the SUB would reject this queue (queue entries take precedence).
        return in_plain and all(
            queue_matches(queue, q)
            for p, q in self._sub_allow_queue
            if subjects_intersect(subject, p)
        )

"""Exports and imports between accounts: the pure routing tables (spec §5.2-5.4).

Theory of operation
-------------------
Accounts never share a subject space; an import is a one-hop, one-way bridge
that the exporting account A allowed with an export. This module compiles every
account's imports into an :class:`ImportTable` that answers, without I/O, the
four questions the worker asks:

1. *A client in A published ``s``: which importers want a copy, under which
   subject?* :meth:`ImportTable.stream_targets`. A stream import with source
   pattern ``S`` matches when ``s`` matches ``S``; the subject in B is
   ``prefix.s`` or the ``to`` mapping of ``s`` (:mod:`.imports_mapping`). The
   reply subject passes through unchanged. Stream imports do not chain: a copy
   delivered into B is never re-exported to C (verified against nats-server
   2.15: C importing B's re-export of A's stream sees nothing).
2. *A client in B subscribed to ``p``: what does that imply in A?*
   :meth:`ImportTable.shadows`. nats-server answers by inserting a *shadow
   subscription* in A's sublist on ``reverse(p ∩ L)``, where ``L`` is the
   import's local pattern; nothing outside the export can ever be visible
   because the intersection is taken with ``L`` first. The worker uses shadows
   to decide that a message in A is worth copying at all: no message goes into
   a ring unless B has a matching subscriber.
3. *A client in B published ``q``: which service imports fire?*
   :meth:`ImportTable.service_targets`. Each service import of B whose local
   subject matches ``q`` re-publishes the request into its exporter on the
   mapped subject (nats keeps one internal subscription per service import, so
   overlapping imports from *different* exporters all fire). The response
   handling (``_R_`` replies, response types, thresholds) is in
   :mod:`.imports_replies`.
4. *Is the config safe?* :func:`find_import_cycle` finds message flows that come
   back to where they started (CVE-2020-28466, CVE-2022-42709).

Answers to (1) and (3) are cached per (account, subject) in bounded dicts that
are dropped whenever the table is rebuilt with :meth:`ImportTable.update`, so a
hot publisher costs one dict lookup. Account names are ``str``, subjects
``bytes`` (what the parser hands the worker).

Authorisation (public / ``accounts`` list / ``account_token_position``) is
re-checked when compiling, so an import the loader let through by mistake, or a
JWT import whose export disappeared, is skipped and reported in
:attr:`ImportTable.skipped` instead of leaking messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Literal

from natsd.config.schema import Account as AccountConfig
from natsd.config.schema import ServiceExport, ServiceImport, StreamExport, StreamImport
from natsd.subjects.tokens import subject_is_subset, subject_matches, subjects_intersect
from natsd.worker.imports_mapping import MappingError, SubjectTransform, intersect

__all__ = [
    "MAX_CYCLE_DEPTH",
    "ImportTable",
    "ResponseType",
    "ServiceImportRoute",
    "ServiceTarget",
    "Shadow",
    "StreamImportRoute",
    "StreamTarget",
    "export_authorizes",
    "find_import_cycle",
]

ResponseType = Literal["singleton", "stream", "chunked"]
#: nats ``MaxAccountCycleSearchDepth``.
MAX_CYCLE_DEPTH = 1024
_DEFAULT_THRESHOLD = 120.0


def export_authorizes(exp: StreamExport | ServiceExport, importer: str, subject: str) -> bool:
    """May ``importer`` import ``subject`` through ``exp``? (nats ``checkAuth``).

    The import must be contained in the export. ``account_token_position`` wins
    over the ``accounts`` list: the N-th token of the *import* subject must be the
    importer's name, so an import that leaves that token as ``*`` is refused.
    """
    if not subject_is_subset(subject.encode(), exp.subject.encode()):
        return False
    n = exp.account_token_position
    if n:
        toks = subject.split(".")
        return n <= len(toks) and toks[n - 1] == importer
    return exp.accounts is None or importer in exp.accounts


def _find_export(
    exports: Iterable[StreamExport | ServiceExport], importer: str, subject: str
) -> StreamExport | ServiceExport | None:
    # nats looks the export up by exact subject first, then by containment.
    exports = tuple(exports)
    for e in exports:
        if e.subject == subject and export_authorizes(e, importer, subject):
            return e
    for e in exports:
        if export_authorizes(e, importer, subject):
            return e
    return None


@dataclass(frozen=True, slots=True, eq=False)
class StreamImportRoute:
    """One compiled stream import: A's ``source`` pattern -> B's ``local`` pattern."""

    exporter: str
    importer: str
    source: bytes  # pattern in the exporter's namespace (the import subject)
    local: bytes  # pattern in the importer's namespace (``to``/prefix, wildcards as ``*``)
    transform: SubjectTransform | None  # None: the subject is unchanged

    @classmethod
    def compile(cls, importer: str, imp: StreamImport) -> StreamImportRoute:
        """Build from config; raises :class:`MappingError` for a bad ``to``/prefix."""
        src = imp.subject.encode()
        if imp.prefix:
            p = imp.prefix.encode()
            if b"*" in p.split(b".") or b">" in p.split(b"."):
                raise MappingError("stream import prefix can not contain wildcard tokens")
            # nats appends the separator, then treats ``prefix.subject`` as a ``to``:
            # every ``*`` stays in place, so positional tokenizing is the identity.
            to = (p if p.endswith(b".") else p + b".") + src
            tr: SubjectTransform | None = SubjectTransform.from_to(src, to)
        elif imp.to and imp.to.encode() != src:
            tr = SubjectTransform.from_to(src, imp.to.encode())
        else:
            tr = None
        local = tr.pattern if tr is not None else src
        return cls(imp.account, importer, src, local, tr)

    def matches(self, subject: bytes) -> bool:
        """Does a subject published in the exporter fall under this import?"""
        return subject_matches(self.source, subject)

    def map(self, subject: bytes) -> bytes | None:
        """The importer-side subject for ``subject``, or None when it does not match."""
        if not subject_matches(self.source, subject):
            return None
        return self.transform.apply(subject) if self.transform is not None else subject

    def shadow(self, sub_subject: bytes) -> bytes | None:
        """The exporter-side pattern an importer subscription implies, or None."""
        both = intersect(sub_subject, self.local)
        if both is None:
            return None
        return self.transform.reverse_pattern(both) if self.transform is not None else both


@dataclass(frozen=True, slots=True, eq=False)
class ServiceImportRoute:
    """One compiled service import: B's ``local`` subject -> A's ``remote`` subject."""

    importer: str
    exporter: str
    local: bytes  # what B's clients publish (pattern, wildcards as ``*``)
    remote: bytes  # the exporter's subject (the import subject)
    transform: SubjectTransform | None  # remote -> local; requests use its inverse
    response_type: ResponseType
    threshold: float

    @classmethod
    def compile(cls, importer: str, imp: ServiceImport, export: ServiceExport | None) -> ServiceImportRoute:
        remote = imp.subject.encode()
        local_tmpl = (imp.to or imp.subject).encode()
        tr: SubjectTransform | None = None
        local = local_tmpl
        if local_tmpl != remote and any(t in (b"*", b">") for t in remote.split(b".")):
            # nats builds remote -> local and reverses it (``addServiceImport``); we keep
            # the forward transform and map requests with its exact inverse.
            tr = SubjectTransform.from_to(remote, local_tmpl)
            local = tr.pattern
        rt: ResponseType = "singleton"
        threshold = _DEFAULT_THRESHOLD
        if export is not None:
            rt = export.response_type  # type: ignore[assignment]
            threshold = export.response_threshold
        return cls(importer, imp.account, local, remote, tr, rt, threshold)

    def matches(self, subject: bytes) -> bool:
        return subject_matches(self.local, subject)

    def map(self, subject: bytes) -> bytes:
        """The exporter-side subject for a request on ``subject`` (which matches ``local``)."""
        if self.transform is not None:
            return self.transform.reverse_pattern(subject)
        # A wildcard import without a rename passes the subject through; a literal one
        # always lands on the import subject (nats ``usePub`` / ``si.to``).
        return subject if self.local == self.remote else self.remote


@dataclass(frozen=True, slots=True)
class StreamTarget:
    importer: str
    subject: bytes  # in the importer's namespace
    route: StreamImportRoute


@dataclass(frozen=True, slots=True)
class ServiceTarget:
    exporter: str
    subject: bytes  # in the exporter's namespace
    response_type: ResponseType
    threshold: float
    route: ServiceImportRoute


@dataclass(frozen=True, slots=True)
class Shadow:
    """Interest in ``exporter`` on ``subject`` on behalf of one importer subscription."""

    exporter: str
    subject: bytes
    route: StreamImportRoute


@dataclass(slots=True)
class ImportTable:
    """All compiled imports of a set of accounts, indexed for the worker's hot path."""

    by_exporter: dict[str, tuple[StreamImportRoute, ...]] = field(default_factory=dict)
    by_importer: dict[str, tuple[StreamImportRoute, ...]] = field(default_factory=dict)
    services: dict[str, tuple[ServiceImportRoute, ...]] = field(default_factory=dict)
    #: ``(importer, kind, subject, reason)`` for imports that were not compiled.
    skipped: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: Bumped by :meth:`update`; callers holding derived state compare it.
    generation: int = 0
    cache_max: int = 4096
    _stream_cache: dict[tuple[str, bytes], tuple[StreamTarget, ...]] = field(default_factory=dict)
    _service_cache: dict[tuple[str, bytes], tuple[ServiceTarget, ...]] = field(default_factory=dict)

    @classmethod
    def build(cls, accounts: Sequence[AccountConfig], *, cache_max: int = 4096) -> ImportTable:
        t = cls(cache_max=cache_max)
        t.update(accounts)
        t.generation = 0
        return t

    def update(self, accounts: Sequence[AccountConfig]) -> None:
        """Recompile from a new account set (config reload, JWT update); drops caches."""
        by_name = {a.name: a for a in accounts}
        by_exp: dict[str, list[StreamImportRoute]] = {}
        by_imp: dict[str, list[StreamImportRoute]] = {}
        svcs: dict[str, list[ServiceImportRoute]] = {}
        skipped: list[tuple[str, str, str, str]] = []
        for acct in accounts:
            for si in acct.stream_imports:
                exporter = by_name.get(si.account)
                why = _check(exporter, acct.name, si.subject, "stream")
                if why is None:
                    try:
                        r = StreamImportRoute.compile(acct.name, si)
                    except MappingError as e:
                        why = str(e)
                if why is not None:
                    skipped.append((acct.name, "stream", si.subject, why))
                    continue
                by_exp.setdefault(r.exporter, []).append(r)
                by_imp.setdefault(r.importer, []).append(r)
            for vi in acct.service_imports:
                exporter = by_name.get(vi.account)
                why = _check(exporter, acct.name, vi.subject, "service")
                if why is None and exporter is not None:
                    exp = _find_export(exporter.service_exports, acct.name, vi.subject)
                    try:
                        svc = ServiceImportRoute.compile(acct.name, vi, exp)  # type: ignore[arg-type]
                    except MappingError as e:
                        why = str(e)
                if why is not None:
                    skipped.append((acct.name, "service", vi.subject, why))
                    continue
                svcs.setdefault(acct.name, []).append(svc)
        self.by_exporter = {k: tuple(v) for k, v in by_exp.items()}
        self.by_importer = {k: tuple(v) for k, v in by_imp.items()}
        self.services = {k: tuple(v) for k, v in svcs.items()}
        self.skipped = skipped
        self._stream_cache.clear()
        self._service_cache.clear()
        self.generation += 1

    # -- queries (hot path) ----------------------------------------------------------

    def exports_streams(self, exporter: str) -> bool:
        """Cheap pre-check: does anyone import streams from ``exporter``?"""
        return exporter in self.by_exporter

    def stream_targets(self, exporter: str, subject: bytes) -> tuple[StreamTarget, ...]:
        """Every import (in any account) that receives ``subject`` published in ``exporter``."""
        key = (exporter, subject)
        hit = self._stream_cache.get(key)
        if hit is not None:
            return hit
        out = []
        for r in self.by_exporter.get(exporter, ()):
            mapped = r.map(subject)
            if mapped is not None:
                out.append(StreamTarget(r.importer, mapped, r))
        res = tuple(out)
        self._remember(self._stream_cache, key, res)
        return res

    def service_targets(self, importer: str, subject: bytes) -> tuple[ServiceTarget, ...]:
        """The service imports of ``importer`` that a publish on ``subject`` invokes."""
        key = (importer, subject)
        hit = self._service_cache.get(key)
        if hit is not None:
            return hit
        res = tuple(
            ServiceTarget(r.exporter, r.map(subject), r.response_type, r.threshold, r)
            for r in self.services.get(importer, ())
            if r.matches(subject)
        )
        self._remember(self._service_cache, key, res)
        return res

    def shadows(self, importer: str, sub_subject: bytes) -> list[Shadow]:
        """The exporter-side interest implied by a subscription in ``importer``.

        One entry per stream import the subscription intersects; the worker keeps
        them with the subscription and withdraws them on UNSUB.
        """
        out = []
        for r in self.by_importer.get(importer, ()):
            s = r.shadow(sub_subject)
            if s is not None:
                out.append(Shadow(r.exporter, s, r))
        return out

    def _remember(self, cache: dict, key: tuple[str, bytes], value: tuple) -> None:  # type: ignore[type-arg]
        # Same policy as the sublist cache: bounded, drop the oldest quarter when full.
        cache[key] = value
        if len(cache) > self.cache_max:
            for k in list(islice(cache, len(cache) - self.cache_max * 3 // 4)):
                del cache[k]

    def cache_size(self) -> int:
        return len(self._stream_cache) + len(self._service_cache)


def _check(exporter: AccountConfig | None, importer: str, subject: str, kind: str) -> str | None:
    if exporter is None:
        return "account not defined"
    exports: tuple[StreamExport | ServiceExport, ...] = (
        exporter.stream_exports if kind == "stream" else exporter.service_exports
    )
    if _find_export(exports, importer, subject) is None:
        return f"{kind} import not authorized"
    return None


# -- cycles -------------------------------------------------------------------------


def _flows(accounts: Sequence[AccountConfig], kind: str) -> list[tuple[str, bytes, str, bytes]]:
    """``(from account, subject) -> (to account, subject)`` edges for one import kind.

    Stream messages flow exporter -> importer; service requests flow importer ->
    exporter. Mappings that fail to compile are ignored here (the table skips them).
    """
    out: list[tuple[str, bytes, str, bytes]] = []
    for a in accounts:
        if kind == "stream":
            for si in a.stream_imports:
                try:
                    r = StreamImportRoute.compile(a.name, si)
                except MappingError:
                    continue
                out.append((r.exporter, r.source, a.name, r.local))
        else:
            for vi in a.service_imports:
                try:
                    v = ServiceImportRoute.compile(a.name, vi, None)
                except MappingError:
                    continue
                out.append((a.name, v.local, v.exporter, v.remote))
    return out


def find_import_cycle(accounts: Sequence[AccountConfig]) -> list[str] | None:
    """The account path of an import cycle, e.g. ``["A", "B", "A"]``, or None.

    A cycle is a chain of flows of the same kind whose subjects intersect hop to
    hop and that returns to the starting account on a subject intersecting the
    start (nats ``streamImportFormsCycle`` / ``checkServiceImportsForCycles``).
    The search is breadth-first and stops at :data:`MAX_CYCLE_DEPTH` hops, which
    counts as a cycle, as in nats. ``natsd.config.options_accounts`` already
    refuses cycles at load time with the same rule; this version also names them.
    """
    for kind in ("stream", "service"):
        flows = _flows(accounts, kind)
        for src, ssubj, dst, dsubj in flows:
            path = _search(src, ssubj, dst, dsubj, flows)
            if path is not None:
                return path
    return None


def _search(
    origin: str, osubj: bytes, dst: str, dsubj: bytes, flows: list[tuple[str, bytes, str, bytes]]
) -> list[str] | None:
    frontier: list[tuple[str, bytes, list[str]]] = [(dst, dsubj, [origin, dst])]
    seen: set[tuple[str, bytes]] = set()
    for _ in range(MAX_CYCLE_DEPTH):
        nxt: list[tuple[str, bytes, list[str]]] = []
        for acct, subj, path in frontier:
            if acct == origin and subjects_intersect(subj, osubj):
                return path
            for s, ss, d, ds in flows:
                if s == acct and subjects_intersect(ss, subj) and (d, ds) not in seen:
                    seen.add((d, ds))
                    nxt.append((d, ds, [*path, d]))
        if not nxt:
            return None
        frontier = nxt
    return [origin, "..."]

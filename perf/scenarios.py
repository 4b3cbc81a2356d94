"""Scenario definitions: from a name and options to a connection plan.

A :class:`Plan` is a flat list of :class:`ConnSpec` (one per TCP connection,
each with a role) plus the fan-out factor that says how many deliveries each
published message should produce.  The runner deals specs round-robin to
worker processes, publishers first, so that with two processes a 1:1 pub/sub
puts the publisher and the subscriber in different processes.

Roles:

``pub``   writes prebuilt PUB chunks (count- or duration-bounded), then PING
          and waits for PONG so its rate includes the server's processing.
``sub``   subscribes (optionally in a queue group) and counts deliveries.
``req``   closed-loop requester: one request in flight, records latency.
``resp``  responder: answers every request on the request subject.
``idle``  holds ``subs_per_conn`` subscriptions and answers PINGs only.

Account-aware scenarios carry per-connection credentials: ``multiaccount``
uses ``u<i>``/``p<i>`` of account ``A<i>``; ``import`` publishes as ``ua``
(account A, exporting ``a.>``) and subscribes as ``ub`` (account B, importing
it).  The matching server configs are written by :mod:`perf.servers`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perf.conn import Creds, Endpoint

SCENARIOS = ("pub", "pubsub", "fanout", "queue", "reqrep", "conns",
             "multiaccount", "import", "svcimport", "tls")
IMPORT_PUB = Creds(user="ua", password="pa")
IMPORT_SUB = Creds(user="ub", password="pb")


@dataclass
class Options:
    scenario: str = "pub"
    endpoint: Endpoint = field(default_factory=Endpoint)
    creds: Creds = field(default_factory=Creds)
    size: int = 16
    msgs: int = 1_000_000          # total across publishers (0 = use duration)
    duration: float = 0.0          # seconds; wins over msgs when > 0
    pubs: int | None = None        # per account for multiaccount
    subs: int | None = None
    subject: str = "bench"
    queue: str = "q"
    accounts: int = 4
    conns: int = 1000              # idle connections (conns scenario)
    subs_per_conn: int = 10
    rate: float = 0.0              # msgs/s per publisher, 0 = unlimited
    procs: int = 2
    quiet_s: float = 1.0           # sub-side drain: stop after this long without progress
    timeout: float = 120.0         # hard cap on the measured phase
    server_pid: int | None = None
    progress: bool = True
    # exporter/importer account names of the import scenarios: with natsd,
    # names decide which workers they land on (natsd.sharding.worker_for)
    import_accounts: tuple[str, str] = ("A", "B")

    def bounded_msgs(self) -> int:
        return 0 if self.duration > 0 else self.msgs


@dataclass(slots=True)
class ConnSpec:
    role: str
    subject: str = ""
    queue: str | None = None
    msgs: int = 0
    creds: Creds = field(default_factory=Creds)
    nsubs: int = 0
    tag: str = ""


@dataclass
class Plan:
    conns: list[ConnSpec]
    fanout: float              # expected deliveries per published message
    needs: str | None = None   # server config family: accounts/import/tls/None

    @property
    def n_pubs(self) -> int:
        return sum(1 for c in self.conns if c.role in ("pub", "req"))


def _split(total: int, n: int) -> list[int]:
    base, extra = divmod(total, n)
    return [base + (1 if i < extra else 0) for i in range(n)]


def _pubs(n: int, subject: str, total: int, creds: Creds, tag: str) -> list[ConnSpec]:
    counts = _split(total, n) if total else [0] * n
    return [ConnSpec("pub", subject, msgs=c, creds=creds, tag=f"{tag}pub{i}")
            for i, c in enumerate(counts)]


def _subs(n: int, subject: str, creds: Creds, tag: str,
          queue: str | None = None) -> list[ConnSpec]:
    return [ConnSpec("sub", subject, queue=queue, creds=creds, tag=f"{tag}sub{i}")
            for i in range(n)]


def build_plan(o: Options) -> Plan:
    s = o.scenario
    total = o.bounded_msgs()
    if s == "pub":
        n = o.pubs or 1
        return Plan(_pubs(n, o.subject, total, o.creds, ""), 0.0)
    if s in ("pubsub", "tls"):
        np_, ns = o.pubs or 1, o.subs or 1
        return Plan(_pubs(np_, o.subject, total, o.creds, "")
                    + _subs(ns, o.subject, o.creds, ""), float(ns),
                    "tls" if s == "tls" else None)
    if s == "fanout":
        np_, ns = o.pubs or 1, o.subs or 4
        return Plan(_pubs(np_, o.subject, total, o.creds, "")
                    + _subs(ns, o.subject, o.creds, ""), float(ns))
    if s == "queue":
        np_, ns = o.pubs or 1, o.subs or 4
        return Plan(_pubs(np_, o.subject, total, o.creds, "")
                    + _subs(ns, o.subject, o.creds, "", queue=o.queue), 1.0)
    if s == "reqrep":
        nreq, nresp = o.pubs or 1, o.subs or 1
        counts = _split(total, nreq) if total else [0] * nreq
        reqs = [ConnSpec("req", o.subject, msgs=c, creds=o.creds, tag=f"req{i}")
                for i, c in enumerate(counts)]
        resps = [ConnSpec("resp", o.subject, queue=o.queue, creds=o.creds, tag=f"resp{i}")
                 for i in range(nresp)]
        return Plan(reqs + resps, 1.0)
    if s == "conns":
        np_, ns = o.pubs or 1, o.subs or 1
        idle = [ConnSpec("idle", f"idle.{i}", creds=o.creds, nsubs=o.subs_per_conn,
                         tag=f"idle{i}") for i in range(o.conns)]
        return Plan(_pubs(np_, o.subject, total, o.creds, "")
                    + _subs(ns, o.subject, o.creds, "") + idle, float(ns))
    if s == "multiaccount":
        np_, ns = o.pubs or 1, o.subs or 1
        k = o.accounts
        per_acct = _split(total, k) if total else [0] * k
        pubs: list[ConnSpec] = []
        subs: list[ConnSpec] = []
        for i in range(k):
            creds = Creds(user=f"u{i}", password=f"p{i}")
            pubs += _pubs(np_, o.subject, per_acct[i], creds, f"a{i}.")
            subs += _subs(ns, o.subject, creds, f"a{i}.")
        return Plan(pubs + subs, float(ns), "accounts")
    if s == "import":
        np_, ns = o.pubs or 1, o.subs or 1
        subject = o.subject if o.subject.startswith("a.") else f"a.{o.subject}"
        return Plan(_pubs(np_, subject, total, IMPORT_PUB, "A.")
                    + _subs(ns, subject, IMPORT_SUB, "B."), float(ns), "import")
    if s == "svcimport":
        # Requests from B on an imported service, answered in A (exported svc.>).
        nreq, nresp = o.pubs or 1, o.subs or 1
        subject = f"svc.{o.subject}"
        counts = _split(total, nreq) if total else [0] * nreq
        reqs = [ConnSpec("req", subject, msgs=c, creds=IMPORT_SUB, tag=f"B.req{i}")
                for i, c in enumerate(counts)]
        resps = [ConnSpec("resp", subject, queue=o.queue, creds=IMPORT_PUB, tag=f"A.resp{i}")
                 for i in range(nresp)]
        return Plan(reqs + resps, 1.0, "import")
    raise ValueError(f"unknown scenario {s!r}; choose from {', '.join(SCENARIOS)}")


def deal(plan: Plan, procs: int) -> list[list[ConnSpec]]:
    """Round-robin connections to processes, senders first (see module doc)."""
    order = ([c for c in plan.conns if c.role in ("pub", "req")]
             + [c for c in plan.conns if c.role in ("sub", "resp")]
             + [c for c in plan.conns if c.role == "idle"])
    procs = max(1, min(procs, len(order)))
    out: list[list[ConnSpec]] = [[] for _ in range(procs)]
    for i, c in enumerate(order):
        out[i % procs].append(c)
    return out

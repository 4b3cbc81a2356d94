"""The ``accounts {}`` block: accounts, their users, exports and imports.

Theory of operation
-------------------
Accounts are built in two passes because imports refer to other accounts by
name. Pass one (:func:`accounts`) reads every account on its own: users (with
the account's ``default_permissions`` applied), limits, exports and the raw
imports. Pass two (:func:`check_imports`) sees all accounts at once and checks
each import the way nats-server does when it wires accounts together
(spec §5.3): the exporter exists, it has an export of the same kind whose
subject contains the imported one, and the importer may use it (public, listed
in ``accounts``, or named at ``account_token_position``). It then refuses
import cycles: a message flow that can come back to the account and subject
it started from (CVE-2020-28466, CVE-2022-42709). All problems go to the
shared ``Ctx`` with the position of the offending import.
"""

from __future__ import annotations

from dataclasses import dataclass

from natsd.config.convert import Ctx, aliases, as_int, as_str, as_str_list, describe, pick
from natsd.config.errors import Pos
from natsd.config.options_auth import permissions, users, with_defaults
from natsd.config.parser import Node
from natsd.config.schema import (
    GLOBAL_ACCOUNT,
    Account,
    ServiceExport,
    ServiceImport,
    StreamExport,
    StreamImport,
)
from natsd.subjects.tokens import subject_is_subset, subjects_intersect, valid_subject

_ACCOUNT = aliases(
    {
        "users": [],
        "exports": [],
        "imports": [],
        "default_permissions": [],
        "limits": [],
        "nkey": [],
        "jetstream": [],
        "mappings": ["maps"],
    }
)
_LIMITS = aliases(
    {
        "max_connections": ["max_conn"],
        "max_subscriptions": ["max_subs"],
        "max_payload": ["max_pay"],
        "max_leafnodes": ["max_leafs"],
    }
)
_EXPORT = aliases(
    {
        "stream": [],
        "service": [],
        "accounts": [],
        "response_type": ["response"],
        "response_threshold": ["threshold", "response_max_time", "response_time"],
        "latency": [],
        "account_token_position": [],
        "advertise": [],
        "allow_trace": [],
    }
)
_IMPORT = aliases(
    {"stream": [], "service": [], "prefix": [], "to": [], "share": [], "allow_trace": []}
)
_SOURCE = aliases({"account": [], "subject": []})
_RESPONSE_TYPES = {
    "single": "singleton",
    "singleton": "singleton",
    "stream": "stream",
    "chunk": "chunked",
    "chunked": "chunked",
}
_MAX_CYCLE_DEPTH = 1024


@dataclass(frozen=True, slots=True)
class ImportSite:
    """Where an import was written, for errors raised in the second pass."""

    importer: str
    kind: str  # "stream" | "service"
    index: int
    pos: Pos


def _export(ctx: Ctx, node: Node) -> StreamExport | ServiceExport | None:
    f = pick(ctx, node, _EXPORT)
    if "stream" in f and "service" in f:
        svc = as_str(ctx, f["service"], "service")
        ctx.err(f["service"], f'Detected service "{svc}" but already saw a stream')
        return None
    kind = "stream" if "stream" in f else "service" if "service" in f else None
    if kind is None:
        ctx.err(node, "export needs a 'stream' or a 'service' subject")
        return None
    subject = as_str(ctx, f[kind], kind)
    if subject is None:
        return None
    if not valid_subject(subject.encode()):
        ctx.err(f[kind], f'subject "{subject}" is not a valid subject')
        return None
    accts = as_str_list(ctx, f["accounts"], "accounts") if "accounts" in f else None
    pos_tok = 0
    if "account_token_position" in f:
        pos_tok = as_int(ctx, f["account_token_position"], "account_token_position", 1) or 0
        toks = subject.split(".")
        if pos_tok > len(toks):
            ctx.err(
                f["account_token_position"],
                f"Account Token Position {pos_tok} exceeds length of subject",
            )
        elif pos_tok and toks[pos_tok - 1] != "*":
            ctx.err(
                f["account_token_position"],
                f"Account Token Position {pos_tok} matches '{toks[pos_tok - 1]}' but must be '*'",
            )
    if kind == "stream":
        for k in ("response_type", "response_threshold", "latency"):
            if k in f:
                ctx.err(f[k], "Detected response directive on non-service")
        return StreamExport(subject=subject, accounts=accts, account_token_position=pos_tok)
    rtype = "singleton"
    if "response_type" in f and (raw := as_str(ctx, f["response_type"], "response_type")):
        if raw.lower() not in _RESPONSE_TYPES:
            ctx.err(f["response_type"], f'Unknown response type: "{raw}"')
        rtype = _RESPONSE_TYPES.get(raw.lower(), rtype)
    threshold = 120.0
    if "response_threshold" in f:
        from natsd.config.convert import as_duration

        threshold = as_duration(ctx, f["response_threshold"], "response_threshold") or threshold
    if "latency" in f:
        ctx.warn(f["latency"], "service latency tracking is not supported by natsd yet; ignored")
    return ServiceExport(
        subject=subject,
        accounts=accts,
        response_type=rtype,
        response_threshold=threshold,
        account_token_position=pos_tok,
    )


def _import(ctx: Ctx, node: Node) -> StreamImport | ServiceImport | None:
    f = pick(ctx, node, _IMPORT)
    kind = "stream" if "stream" in f else "service" if "service" in f else None
    if kind is None or ("stream" in f and "service" in f):
        ctx.err(node, "import needs exactly one of 'stream' or 'service'")
        return None
    src = pick(ctx, f[kind], _SOURCE)
    account = as_str(ctx, src["account"], "account") if "account" in src else None
    subject = as_str(ctx, src["subject"], "subject") if "subject" in src else None
    if not account or not subject:
        ctx.err(f[kind], "Expect an account name and a subject")
        return None
    if not valid_subject(subject.encode()):
        ctx.err(src["subject"], f'subject "{subject}" is not a valid subject')
        return None
    to = as_str(ctx, f["to"], "to") if "to" in f else None
    if kind == "service":
        if "prefix" in f:
            ctx.err(f["prefix"], "Service import can not have a 'prefix' property")
        return ServiceImport(account=account, subject=subject, to=to)
    prefix = as_str(ctx, f["prefix"], "prefix") if "prefix" in f else None
    if prefix is not None and to is not None:
        ctx.err(node, "Stream import can not have a 'prefix' and a 'to' property")
        return None
    if prefix is not None and ("*" in prefix.split(".") or ">" in prefix.split(".")):
        ctx.err(f["prefix"], "stream import prefix can not contain wildcard tokens")
    return StreamImport(account=account, subject=subject, prefix=prefix, to=to)


def _account(ctx: Ctx, name: str, node: Node, sites: list[ImportSite]) -> Account:
    if node.value == {} or not isinstance(node.value, dict):
        if not isinstance(node.value, dict):
            ctx.err(node, f"account {name!r}: expected a map, got {describe(node)}")
        return Account(name=name)
    f = pick(ctx, node, _ACCOUNT)
    defaults = permissions(ctx, f["default_permissions"]) if "default_permissions" in f else None
    found = users(ctx, f["users"], name) if "users" in f else ()
    limits: dict[str, int] = {}
    if "limits" in f:
        for k, child in pick(ctx, f["limits"], _LIMITS).items():
            if (v := as_int(ctx, child, k)) is not None and k != "max_leafnodes":
                limits[k] = v
    exports = [e for x in _items(ctx, f, "exports") if (e := _export(ctx, x)) is not None]
    imports: list[StreamImport | ServiceImport] = []
    for x in _items(ctx, f, "imports"):
        imp = _import(ctx, x)
        if imp is not None:
            kind = "stream" if isinstance(imp, StreamImport) else "service"
            count = sum(isinstance(i, type(imp)) for i in imports)
            sites.append(ImportSite(name, kind, count, x.pos))
            imports.append(imp)
    for k in ("jetstream", "mappings"):
        if k in f:
            ctx.warn(f[k], f"account {k} is not supported by natsd yet; ignored")
    return Account(
        name=name,
        users=with_defaults(found, defaults),
        stream_exports=tuple(e for e in exports if isinstance(e, StreamExport)),
        service_exports=tuple(e for e in exports if isinstance(e, ServiceExport)),
        stream_imports=tuple(i for i in imports if isinstance(i, StreamImport)),
        service_imports=tuple(i for i in imports if isinstance(i, ServiceImport)),
        default_permissions=defaults,
        **limits,
    )


def _items(ctx: Ctx, f: dict[str, Node], key: str) -> list[Node]:
    if key not in f:
        return []
    node = f[key]
    if not isinstance(node.value, list):
        ctx.err(node, f"{key}: expected an array, got {describe(node)}")
        return []
    return node.value


def accounts(ctx: Ctx, node: Node) -> tuple[tuple[Account, ...], list[ImportSite]]:
    """Pass one: every account on its own. Returns the import sites for pass two."""
    sites: list[ImportSite] = []
    out: list[Account] = []
    if isinstance(node.value, list):
        entries = [(as_str(ctx, n, "account name"), n) for n in node.value]
        pairs = [(name, Node({}, n.pos, key_pos=n.pos)) for name, n in entries if name]
    elif isinstance(node.value, dict):
        pairs = [(k, v) for k, v in node.value.items()]
    else:
        ctx.err(node, f"accounts: expected a map or an array, got {describe(node)}")
        return (), sites
    for name, child in pairs:
        if name == GLOBAL_ACCOUNT:
            ctx.err(child.key_pos or child.pos, f'"{GLOBAL_ACCOUNT}" is a Reserved Account')
            continue
        out.append(_account(ctx, name, child, sites))
    return tuple(out), sites


def _authorized(exp: StreamExport | ServiceExport, importer: str, subject: str) -> bool:
    if not subject_is_subset(subject.encode(), exp.subject.encode()):
        return False
    if exp.account_token_position:
        toks = subject.split(".")
        n = exp.account_token_position
        return len(toks) >= n and toks[n - 1] == importer
    return exp.accounts is None or importer in exp.accounts


def check_imports(ctx: Ctx, accts: tuple[Account, ...], sites: list[ImportSite]) -> None:
    """Pass two: exporter exists, import authorized, no cycles."""
    by_name = {a.name: a for a in accts}
    flows: list[tuple[str, str, str, str, ImportSite]] = []  # src acct, subj -> dst acct, subj
    for site in sites:
        acct = by_name[site.importer]
        imp: StreamImport | ServiceImport = (
            acct.stream_imports[site.index]
            if site.kind == "stream"
            else acct.service_imports[site.index]
        )
        exporter = by_name.get(imp.account)
        if exporter is None:
            ctx.err(site.pos, f'"{imp.account}" account not defined for {site.kind} import')
            continue
        exports = exporter.stream_exports if site.kind == "stream" else exporter.service_exports
        if not any(_authorized(e, site.importer, imp.subject) for e in exports):
            ctx.err(
                site.pos,
                f'Error adding {site.kind} import "{imp.subject}": {site.kind} import not authorized',
            )
            continue
        if isinstance(imp, StreamImport):
            local = imp.to or (
                f"{imp.prefix.rstrip('.')}.{imp.subject}" if imp.prefix else imp.subject
            )
            flows.append((imp.account, imp.subject, site.importer, local, site))
        else:
            flows.append((site.importer, imp.to or imp.subject, imp.account, imp.subject, site))
    for kind in ("stream", "service"):
        same = [fl for fl in flows if fl[4].kind == kind]
        for start in same:
            if _cycles(start, same):
                ctx.err(start[4].pos, f"{kind} import forms a cycle")


def _cycles(start: tuple[str, str, str, str, ImportSite], flows: list) -> bool:
    origin_acct, origin_subj = start[0], start[1]
    frontier = [(start[2], start[3])]
    seen: set[tuple[str, str]] = set()
    for _ in range(_MAX_CYCLE_DEPTH):
        nxt: list[tuple[str, str]] = []
        for acct, subj in frontier:
            if acct == origin_acct and subjects_intersect(subj.encode(), origin_subj.encode()):
                return True
            for src, ssubj, dst, dsubj, _site in flows:
                if src == acct and subjects_intersect(ssubj.encode(), subj.encode()):
                    if (dst, dsubj) not in seen:
                        seen.add((dst, dsubj))
                        nxt.append((dst, dsubj))
        if not nxt:
            return False
        frontier = nxt
    return True  # deeper than any sane config: treat as a cycle

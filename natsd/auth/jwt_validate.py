"""Semantic validation of decoded NATS claims (nats-io/jwt's ``Validate``).

Theory of operation
-------------------
:func:`natsd.auth.jwt.decode` proves *who* signed a claim; this module decides
whether what they signed is usable. :func:`validation_errors` returns the list of
blocking problems, excluding time checks (``exp``/``nbf`` are
:func:`~natsd.auth.jwt.is_expired` / :func:`~natsd.auth.jwt.not_yet_valid`, because
the callers differ on whether time blocks: connect-time auth says yes, the ``full``
resolver's update handler says no). An empty list means valid.

The rules are nats-io/jwt v2's blocking errors, the ones nats-server acts on:

* subjects: non-empty, no spaces, no leading/trailing/double dots (jwt's lax rule,
  not the server's full subject grammar); permission entries may carry a queue
  (``"subject queue"``) only in ``sub``;
* users: CIDRs parse, time ranges are ``HH:MM:SS``, ``times_location`` is a known
  IANA zone, ``issuer_account`` is an account key;
* accounts: every import and export is well-formed; an import's activation token
  must decode, be issued by the exporting account (or carry it as
  ``issuer_account``), name *this* account as ``sub``, match the import type, and
  grant a subject containing the import's (CVE-2021-3127: these are errors, never
  warnings, so one bad token makes the whole account JWT unusable, fixture E);
  import/export counts and wildcard exports respect ``limits``; signing keys are
  account keys;
* activations: ``kind`` is stream/service, the subject is valid;
* operators: signing keys are operator keys, ``system_account`` an account key.

Time validity of an embedded activation token is deliberately *not* checked here,
as in nats-io/jwt; an expired token makes the import inert at use time instead.
"""

from __future__ import annotations

import ipaddress
import re
import zoneinfo

from natsd.auth.jwt import (
    NO_LIMIT,
    PREFIX_ACCOUNT,
    PREFIX_OPERATOR,
    AccountClaims,
    ActivationClaims,
    Claims,
    Export,
    Import,
    JwtError,
    OperatorClaims,
    Permissions,
    UserClaims,
    UserTemplate,
    decode,
    is_public_key,
)

__all__ = ["is_contained_in", "subject_errors", "validation_errors"]

_HMS = re.compile(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d")
_RESPONSE_TYPES = ("", "Singleton", "Stream", "Chunked")


def subject_errors(subject: str) -> list[str]:
    if not subject:
        return ["subject cannot be empty"]
    errors = []
    if " " in subject:
        errors.append(f"subject {subject!r} cannot have spaces")
    if subject[0] == "." or subject[-1] == ".":
        errors.append(f"subject {subject!r} cannot start or end with a '.'")
    if ".." in subject:
        errors.append(f"subject {subject!r} cannot contain consecutive '.'")
    return errors


def has_wildcards(subject: str) -> bool:
    return any(tok in ("*", ">") for tok in subject.split("."))


def is_contained_in(subject: str, other: str) -> bool:
    """nats-io/jwt ``Subject.IsContainedIn``: every subject matched by ``subject``
    is matched by ``other`` (token-wise, ``*`` and a trailing ``>`` in ``other``)."""
    mine, theirs = subject.split("."), other.split(".")
    if len(mine) > len(theirs) and theirs[-1] != ">":
        return False
    if len(mine) < len(theirs):
        return False
    for i, tok in enumerate(theirs):
        if i == len(theirs) - 1 and tok == ">":
            return True
        if tok != mine[i] and tok != "*":
            return False
    return True


def _permission_errors(perms: Permissions) -> list[str]:
    errors: list[str] = []
    for entries, queue_ok in (
        (perms.sub.allow + perms.sub.deny, True),
        (perms.pub.allow + perms.pub.deny, False),
    ):
        for entry in entries:
            parts = entry.split(" ")
            if len(parts) > 2:
                errors.append(f"permission subject {entry!r} contains too many spaces")
                continue
            for part in parts:
                errors.extend(subject_errors(part))
            if len(parts) == 2 and not queue_ok:
                errors.append(f"permission subject {entry!r} is not allowed to contain queue")
    return errors


def template_errors(t: UserTemplate) -> list[str]:
    errors = _permission_errors(t.permissions)
    for cidr in t.src:
        try:
            ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            errors.append(f"invalid cidr {cidr!r} in user src limits")
        else:
            if "/" not in cidr:  # Go's net.ParseCIDR insists on a prefix length
                errors.append(f"invalid cidr {cidr!r} in user src limits")
    for tr in t.times:
        if not _HMS.fullmatch(tr.start) or not _HMS.fullmatch(tr.end):
            errors.append(f"invalid time range {tr.start!r}-{tr.end!r}")
    if t.times_location and load_zone(t.times_location) is None:
        errors.append(f"could not parse iana time zone {t.times_location!r}")
    return errors


def load_zone(name: str) -> zoneinfo.ZoneInfo | None:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _export_errors(exports: tuple[Export, ...]) -> list[str]:
    errors: list[str] = []
    for e in exports:
        if e.type is None:
            errors.append("invalid export type")
        if e.type == "service" and e.response_type not in _RESPONSE_TYPES:
            errors.append(f"invalid response type for service: {e.response_type!r}")
        if e.type == "stream" and (e.response_type or e.allow_trace or e.response_threshold):
            errors.append("response options are only valid for service exports")
        if e.response_threshold < 0:
            errors.append("negative response threshold is invalid")
        if e.service_latency is not None and e.type != "service":
            errors.append("latency tracking only permitted for services")
        errors.extend(subject_errors(e.subject))
        if e.account_token_position > 0:
            tokens = e.subject.split(".")
            pos = e.account_token_position
            if pos > len(tokens) or tokens[pos - 1] != "*":
                errors.append(f"account token position {pos} must match a '*' in {e.subject!r}")
    for kind in ("service", "stream"):
        subjects = [e.subject for e in exports if (e.type == "service") == (kind == "service")]
        for i, a in enumerate(subjects):
            for j, b in enumerate(subjects):
                if i != j and is_contained_in(a, b):
                    errors.append(f"{kind} export subject {b!r} already exports {a!r}")
    return errors


def activation_binding_errors(imp: Import, importer: str) -> list[str]:
    """Why the activation token of ``imp`` does not authorise ``importer``."""
    try:
        act = decode(imp.token)
    except JwtError:
        return [f"import {imp.subject!r} contains an invalid activation token"]
    if not isinstance(act, ActivationClaims):
        return [f"import {imp.subject!r} contains an invalid activation token"]
    errors = []
    if imp.account not in (act.iss, act.nats.issuer_account):
        errors.append(f"activation token doesn't match account for import {imp.subject!r}")
    if act.sub != importer:
        errors.append(f"activation token for import {imp.subject!r} is for another account")
    if act.nats.kind != imp.type:
        errors.append(f"activation token kind doesn't match import {imp.subject!r}")
    errors.extend(_activation_errors(act))
    subject = imp.to if imp.type == "service" and imp.to else imp.subject
    if not is_contained_in(subject, act.nats.subject):
        errors.append(f"activation subject {act.nats.subject!r} doesn't match {imp.subject!r}")
    return errors


def _import_errors(imports: tuple[Import, ...], importer: str) -> list[str]:
    errors: list[str] = []
    services: dict[str, list[str]] = {}
    for imp in imports:
        if imp.type is None:
            errors.append("invalid import type")
        if imp.type == "service":
            local = imp.to or _renamed(imp.local_subject) or imp.subject
            for other in services.get(imp.account, []):
                if is_contained_in(local, other) or is_contained_in(other, local):
                    errors.append(f"overlapping subject namespace for {local!r} and {other!r}")
            services.setdefault(imp.account, []).append(local)
        if imp.share and imp.type != "service":
            errors.append("sharing information is only valid for services")
        if imp.type == "service" and imp.allow_trace:
            errors.append("allow_trace only valid for stream import")
        if not imp.account:
            errors.append("account to import from is not specified")
        errors.extend(subject_errors(imp.subject))
        if imp.local_subject:
            errors.extend(subject_errors(imp.local_subject))
            if imp.to:
                errors.append("local_subject replaces to")
            if imp.local_subject.endswith(">") != imp.subject.endswith(">"):
                errors.append("renaming subject and subject must both end in '>' or neither")
        if imp.token:
            errors.extend(activation_binding_errors(imp, importer))
    return errors


def _renamed(local_subject: str) -> str:
    # "$1"-style references stand for "*" when comparing namespaces.
    return ".".join("*" if re.fullmatch(r"\$\d+", t) else t for t in local_subject.split("."))


def _account_errors(claims: AccountClaims) -> list[str]:
    a = claims.nats
    errors = _import_errors(a.imports, claims.sub) + _export_errors(a.exports)
    errors.extend(_permission_errors(a.default_permissions))
    if a.jetstream.get("tiered_limits"):
        flat = {k: v for k, v in a.jetstream.items() if k != "tiered_limits" and v}
        if flat:
            errors.append("JetStream limits and tiered limits are mutually exclusive")
    lim = a.limits
    if lim.imports != NO_LIMIT and len(a.imports) > lim.imports:
        errors.append("the account contains more imports than allowed by the operator")
    if lim.exports != NO_LIMIT:
        if len(a.exports) > lim.exports:
            errors.append("the account contains more exports than allowed by the operator")
        if not lim.wildcards and any(has_wildcards(e.subject) for e in a.exports):
            errors.append("the account contains wildcard exports that are not allowed")
    for entry in a.signing_keys:
        key = entry if isinstance(entry, str) else entry.key
        if not is_public_key(key, PREFIX_ACCOUNT):
            errors.append(f"{key!r} is not a valid account signing key")
        if not isinstance(entry, str):
            errors.extend(template_errors(entry.template))
    return errors


def _activation_errors(claims: ActivationClaims) -> list[str]:
    errors = [] if claims.nats.kind else ["invalid activation kind"]
    errors.extend(subject_errors(claims.nats.subject))
    ia = claims.nats.issuer_account
    if ia and not is_public_key(ia, PREFIX_ACCOUNT):
        errors.append("issuer_account is not an account public key")
    return errors


def _operator_errors(claims: OperatorClaims) -> list[str]:
    o = claims.nats
    errors = [
        f"{k!r} is not an operator public key"
        for k in o.signing_keys
        if not is_public_key(k, PREFIX_OPERATOR)
    ]
    if o.system_account and not is_public_key(o.system_account, PREFIX_ACCOUNT):
        errors.append("system_account is not an account public key")
    if o.assert_server_version and parse_version(o.assert_server_version) is None:
        errors.append(f"invalid assert_server_version {o.assert_server_version!r}")
    return errors


def parse_version(text: str) -> tuple[int, int, int] | None:
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:[-+].*)?", text)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def validation_errors(claims: Claims) -> list[str]:
    """Blocking, non-time validation errors of ``claims`` (empty list = valid)."""
    if isinstance(claims, UserClaims):
        errors = template_errors(claims.nats)
        ia = claims.nats.issuer_account
        if ia and not is_public_key(ia, PREFIX_ACCOUNT):
            errors.append("issuer_account is not an account public key")
        return errors
    if isinstance(claims, AccountClaims):
        return _account_errors(claims)
    if isinstance(claims, ActivationClaims):
        return _activation_errors(claims)
    if isinstance(claims, OperatorClaims):
        return _operator_errors(claims)
    return []

"""User-scope templates and import authorisation: the account-relative JWT rules.

Theory of operation
-------------------
Two decisions need both an account JWT and something it refers to:

* :func:`expand` turns a ``user_scope`` signing key's ``template`` into the user's
  effective permissions (nats-server ``processUserPermissionsTemplate``). Mustache
  operations ``{{name()}}``, ``{{subject()}}``, ``{{account-name()}}``,
  ``{{account-subject()}}``, ``{{tag(x)}}`` and ``{{account-tag(x)}}`` are replaced
  (case-insensitive); tags are ``x:value`` entries and may yield several values, so
  an entry expands to the cartesian product, capped at 4096 subjects. An invalid
  generated subject is dropped from an allow list but fails the whole user in a deny
  list (fail closed); an allow list emptied by expansion becomes ``deny >``.
* :func:`check_import` decides whether an exporting account authorises an import
  (nats-server ``checkStreamImportAuthorized``/``checkServiceImportAuthorized`` and
  ``checkActivation``): the export must exist with the same type and contain the
  import subject; a public export needs nothing more; ``account_token_position``
  must name the importer; ``token_req`` needs an activation token bound to this
  import (see :mod:`natsd.auth.jwt_validate`), signed by the exporter or one of its
  current signing keys, unexpired, and not revoked by the export.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping

import msgspec

from natsd.auth.jwt import (
    AccountClaims,
    ActivationClaims,
    Export,
    Import,
    JwtError,
    Permission,
    UserClaims,
    UserScope,
    UserTemplate,
    decode,
    is_expired,
)
from natsd.auth.jwt_validate import activation_binding_errors, is_contained_in

__all__ = ["check_import", "expand"]

_MUSTACHE = re.compile(r"\{\{([^}]+)\}\}")
_MAX_EXPANSIONS = 4096


class _TemplateError(Exception):
    pass


def _valid_subject(subject: str) -> bool:
    if not subject or any(c.isspace() for c in subject):
        return False
    tokens = subject.split(".")
    return all(tokens) and ">" not in tokens[:-1]


def _values(op: str, user: UserClaims, account: AccountClaims) -> tuple[list[str], bool]:
    """Values for one mustache operation, and whether it was a tag lookup."""
    low = op.strip().lower()
    if low == "name()":
        return [user.name], False
    if low == "subject()":
        return [user.sub], False
    if low == "account-name()":
        return [account.name], False
    if low == "account-subject()":
        return [user.nats.issuer_account], False
    for prefix, tags in (("tag(", user.nats.tags), ("account-tag(", account.nats.tags)):
        if low.startswith(prefix) and low.endswith(")"):
            want = op.strip()[len(prefix) : -1].lower() + ":"
            return [t[len(want) :] for t in tags if t.startswith(want)], True
    raise _TemplateError(f"template operation {op!r} is not defined")


def _apply(
    entries: tuple[str, ...], user: UserClaims, account: AccountClaims, strict: bool
) -> tuple[str, ...]:
    if not any(_MUSTACHE.search(e) for e in entries):
        return entries
    out: list[str] = []
    for entry in entries:
        ops = _MUSTACHE.findall(entry)
        values, tagged = [], False
        for op in ops:
            vals, is_tag = _values(op, user, account)
            tagged = tagged or is_tag
            if is_tag and not vals:
                if strict:
                    raise _TemplateError(f"tag in {entry!r} is not defined")
                vals = [" "]  # yields an invalid subject, which is then dropped
            values.append(vals)
        count = 1
        for vals in values:
            count *= len(vals)
        if len(out) + count > _MAX_EXPANSIONS:
            raise _TemplateError("template expansion exceeds limit")
        for combo in itertools.product(*values):
            subject = entry
            for op, value in zip(ops, combo, strict=True):
                subject = subject.replace("{{" + op + "}}", value)
            if _valid_subject(subject.split(" ")[0]):
                out.append(subject)
            elif strict:
                raise _TemplateError("generated invalid subject")
    return tuple(out)


def expand(template: UserTemplate, user: UserClaims, account: AccountClaims) -> UserTemplate | None:
    """The scope template with templates expanded for ``user``; None if it fails."""
    try:
        sub_allow = _apply(template.sub.allow, user, account, strict=False)
        sub_deny = _apply(template.sub.deny, user, account, strict=True)
        pub_allow = _apply(template.pub.allow, user, account, strict=False)
        pub_deny = _apply(template.pub.deny, user, account, strict=True)
    except _TemplateError:
        return None
    if template.sub.allow and not sub_allow:
        sub_deny = (*sub_deny, ">")
    if template.pub.allow and not pub_allow:
        pub_deny = (*pub_deny, ">")
    return msgspec.structs.replace(
        template,
        sub=Permission(allow=sub_allow, deny=sub_deny),
        pub=Permission(allow=pub_allow, deny=pub_deny),
    )


def _find_export(exporter: AccountClaims, imp: Import) -> Export | None:
    exports = [e for e in exporter.nats.exports if e.type == imp.type]
    for e in exports:
        if e.subject == imp.subject:
            return e
    for e in exports:
        if is_contained_in(imp.subject, e.subject):
            return e
    return None


def check_import(
    imp: Import,
    importer: str,
    exporter: AccountClaims,
    exporter_keys: Mapping[str, UserScope | None],
    now: float,
    revoked: Callable[[Export, str, int], bool],
) -> tuple[str, float | None]:
    """('' if authorised else a reason, activation expiry or None)."""
    if imp.account != exporter.sub:
        return "wrong_exporter", None
    export = _find_export(exporter, imp)
    if export is None:
        return "not_exported", None
    if export.account_token_position > 0:
        tokens = imp.subject.split(".")
        pos = export.account_token_position
        ok = pos <= len(tokens) and tokens[pos - 1] == importer
        return ("" if ok else "account_token_mismatch"), None
    if not export.token_req:
        return "", None
    if not imp.token:
        return "token_missing", None
    if activation_binding_errors(imp, importer):
        return "token_invalid", None
    try:
        act = decode(imp.token)
    except JwtError:
        return "token_invalid", None
    if not isinstance(act, ActivationClaims):
        return "token_invalid", None
    if act.nats.issuer_account:
        # Signed by a signing key: it must be the exporter's, and a current one.
        if act.nats.issuer_account != exporter.sub or act.iss not in exporter_keys:
            return "token_untrusted", None
    elif act.iss != exporter.sub:
        return "token_untrusted", None
    if is_expired(act, now) or (act.exp and act.exp <= now):
        return "token_expired", None
    if revoked(export, act.sub, act.iat):
        return "token_revoked", None
    return "", float(act.exp) if act.exp else None

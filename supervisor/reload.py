"""SIGHUP: re-read the configuration and apply what changed.

Theory of operation
-------------------
Reload is a diff, as in nats-server's ``reload.go``: the new Options are
loaded through the same single loader (a config error leaves the running
server untouched and is logged with file:line), then

* the authentication config is rebuilt, so new clients see new users,
  passwords and accounts at once;
* every live connection is re-checked against its identity in the new
  config: if the user is gone, its password or account changed, or
  authentication was switched on for an anonymous client, the worker closes
  it with ``Authorization Violation``; if only its permissions changed, the
  worker installs the new ones on the live connection (subscriptions that
  are no longer allowed stop receiving through the delivery filter).

Options that need a restart (listen address, worker count, TLS keys in this
version) are reported as warnings and keep their old values.
"""

from __future__ import annotations

import logging
import os
import ssl
from typing import TYPE_CHECKING

import msgspec

from natsd.auth.authenticate import AuthConfig
from natsd.config.errors import ConfigErrors
from natsd.ipc import messages as M
from natsd.proto import errors as E

if TYPE_CHECKING:
    from supervisor.server import Supervisor

log = logging.getLogger("natsd.reload")

RESTART_ONLY = ("host", "port", "workers")


def apply_reload(sup: Supervisor) -> bool:
    from natsd.config.load import load

    try:
        _, new, warnings = load(sup.argv, os.environ)
    except (ConfigErrors, OSError) as e:
        log.error("Failed to reload server configuration: %s", e)
        return False
    for w in warnings:
        log.warning("%s", w)
    old = sup.opts
    for name in RESTART_ONLY:
        if getattr(old, name) != getattr(new, name):
            log.warning("reload: %s cannot change without a restart; keeping %r", name, getattr(old, name))
    new = _keep(old, new)
    old_cfg = sup.auth
    new_cfg = AuthConfig.from_options(new)
    if old_cfg.jwt_verifier is not None:
        new_cfg = new_cfg.with_jwt_verifier(old_cfg.jwt_verifier)
    if new.tls is not None:
        # Certificates are re-read on every reload: files may have been rotated
        # in place even when the options did not change.
        from supervisor.tls import TLSConfigError, build_server_context

        try:
            sup.tls_ctx = build_server_context(new.tls, warn=log.warning)
            log.info("Reloaded TLS certificates")
        except (TLSConfigError, OSError, ssl.SSLError) as e:
            log.error("Failed to reload TLS configuration, keeping the old one: %s", e)
            new = msgspec.structs.replace(new, tls=old.tls)
    elif old.tls is not None:
        log.warning("reload: TLS cannot be switched off without a restart; keeping it")
        new = msgspec.structs.replace(new, tls=old.tls)
    sup.opts = new
    sup.auth = new_cfg
    if old.accounts != new.accounts:
        sup.arbiter.broadcast(M.UpdateAccounts(accounts=sup.account_routes()))
    closed = updated = 0
    for cid, entry in list(sup.clients.items()):
        verdict = _judge(entry, old_cfg, new_cfg)
        if verdict == "close":
            sup.arbiter.send(entry.worker, M.Disconnect(client_id=cid, error=E.ERR_AUTH_VIOLATION))
            closed += 1
        elif verdict == "update":
            ident = _lookup(new_cfg, entry.user)
            assert ident is not None
            sup.arbiter.send(
                entry.worker,
                M.UpdatePermissions(account=entry.account, user=entry.user or "", permissions=ident.permissions),
            )
            entry.permissions = ident.permissions
            updated += 1
    log.info("Reloaded server configuration (%d connection(s) closed, %d updated)", closed, updated)
    return True


def _keep(old, new):  # type: ignore[no-untyped-def]
    return msgspec.structs.replace(new, **{n: getattr(old, n) for n in RESTART_ONLY})


def _lookup(cfg: AuthConfig, user: str | None):  # type: ignore[no-untyped-def]
    if user is None:
        return None
    return cfg.users.get(user) or cfg.nkeys.get(user)


def _judge(entry, old_cfg: AuthConfig, new_cfg: AuthConfig) -> str:  # type: ignore[no-untyped-def]
    if not old_cfg.enforced:
        # Anonymous client in $G: once authentication is on, even a
        # no_auth_user would bind it elsewhere with other permissions, so it
        # must reconnect (nats-server refuses such a reload instead).
        return "close" if new_cfg.enforced else "keep"
    old = _lookup(old_cfg, entry.user)
    new = _lookup(new_cfg, entry.user)
    if old is None:
        # Token or single-user clients: keep only if that secret is unchanged.
        same = (old_cfg.token, old_cfg.single_user, old_cfg.single_password) == (
            new_cfg.token,
            new_cfg.single_user,
            new_cfg.single_password,
        )
        return "keep" if same and new_cfg.enforced else "close"
    if new is None or new.password != old.password or new.account != old.account:
        return "close"
    if not new.admits("STANDARD"):
        return "close"
    if new.permissions != entry.permissions:
        return "update"
    return "keep"

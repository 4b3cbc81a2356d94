"""The one entry point that turns argv (+ a config file + env) into Options.

Theory of operation
-------------------
``load(argv)`` is the only code in natsd that reads configuration:

1. ``cli.parse_args`` reads the flags into a frozen ``Cli``;
2. if ``-c FILE`` was given, ``parser.parse_file`` builds the value tree
   (includes and ``$VARIABLES`` resolved, positions kept);
3. :func:`options_from_tree` maps top-level keys (case-insensitive, with
   nats-server's aliases, see :data:`_TOP`) into ``Options`` keyword
   arguments, delegating sections to ``options_auth``, ``options_accounts``
   and ``options_server``;
4. flags are applied on top, so they win wherever they stand on the command
   line;
5. cross-field checks run on the result (auth mode conflicts, operator mode,
   ``no_auth_user``, limits).

Every step records into one ``Ctx``; if it holds any error at the end, one
``ConfigErrors`` lists them all (with the warnings). Keys nats-server knows
but natsd does not implement are accepted with a warning, never silently:
an operator must see that, say, their ``cluster {}`` block does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import msgspec

from natsd import log as natslog
from natsd.config import options_accounts, options_auth, options_server
from natsd.config.cli import Cli, parse_args
from natsd.config.convert import (
    Ctx,
    aliases,
    as_bool,
    as_duration,
    as_int,
    as_size,
    as_str,
    as_str_list,
    describe,
    pick,
)
from natsd.config.errors import ConfigErrors, Pos
from natsd.config.parser import Node, parse_file, parse_text
from natsd.config.schema import Authorization, JetStreamOptions, Options, TLSOptions

MAX_PAYLOAD_LIMIT = 2**31 - 1  # nats-server: "max_payload value is too big"

_TOP = aliases(
    {
        "listen": [],
        "host": ["net"],
        "port": [],
        "server_name": [],
        "client_advertise": [],
        "max_payload": [],
        "max_control_line": [],
        "max_pending": [],
        "max_connections": ["max_conn"],
        "max_subscriptions": ["max_subs"],
        "max_sub_tokens": [],
        "ping_interval": [],
        "ping_max": [],
        "write_deadline": [],
        "no_header_support": [],
        "authorization": [],
        "accounts": [],
        "no_auth_user": [],
        "system_account": ["system"],
        "no_system_account": ["no_sys_acc", "no_system"],
        "tls": [],
        "allow_non_tls": [],
        "operator": ["operators", "root", "roots", "root_operators", "root_operator"],
        "trusted_keys": ["trusted"],
        "resolver": ["account_resolver", "accounts_resolver"],
        "resolver_preload": [],
        "resolver_pinned_accounts": [],
        "jetstream": [],
        "store_dir": [],
        "http": ["http_port", "monitor_port"],
        "https": ["https_port"],
        "lame_duck_duration": [],
        "lame_duck_grace_period": [],
        "debug": [],
        "trace": [],
        "logtime": [],
        "log_file": ["logfile"],
        "syslog": [],
        "remote_syslog": [],
        "pid_file": [],
        "workers": [],
        # nats-server features natsd does not have yet: warned about.
        "cluster": [],
        "gateway": [],
        "leafnodes": ["leaf", "leafnode"],
        "websocket": ["ws"],
        "mqtt": [],
        # nats-server knobs natsd accepts and ignores: warned about.
        "resolver_tls": [],
        "default_sentinel": [],
        "trace_verbose": [],
        "logtime_utc": [],
        "log_size_limit": [],
        "log_max_num": [],
        "max_traced_msg_len": [],
        "syslog_name": [],
        "connect_error_reports": [],
        "reconnect_error_reports": [],
        "disable_sublist_cache": ["no_sublist_cache"],
        "http_base_path": [],
        "prof_port": [],
        "max_closed_clients": [],
        "server_tags": [],
        "server_metadata": [],
        "ports_file_dir": [],
        "mappings": ["maps"],
        "ocsp": [],
        "ocsp_cache": [],
    }
)
_FEATURES = ("cluster", "gateway", "leafnodes", "websocket", "mqtt")
_IGNORED = frozenset(list(_TOP.values())[list(_TOP.values()).index("resolver_tls") :])
_STRINGS = {
    "server_name",
    "client_advertise",
    "no_auth_user",
    "system_account",
    "log_file",
    "pid_file",
    "remote_syslog",
}
_INTS = {"port", "ping_max", "max_sub_tokens", "workers", "max_connections", "max_subscriptions"}
_SIZES = {"max_payload", "max_control_line", "max_pending"}
_DURATIONS = {"ping_interval", "write_deadline", "lame_duck_duration", "lame_duck_grace_period"}
_BOOLS = {
    "no_header_support",
    "no_system_account",
    "allow_non_tls",
    "debug",
    "trace",
    "logtime",
    "syslog",
}


def load(argv: list[str], env: Mapping[str, str] | None = None) -> tuple[Cli, Options, list[str]]:
    """Flags + config file -> (cli, options, warnings). Raises ``ConfigErrors``
    (``cli.UsageError`` for a bad command line) listing every problem."""
    cli = parse_args(argv)
    ctx = Ctx()
    ctx.warnings.extend(cli.warnings)
    kw: dict[str, Any] = {}
    where: dict[str, Pos] = {}
    if cli.config_file is not None:
        root = parse_file(cli.config_file, env)
        kw, where = options_from_tree(ctx, root, os.path.dirname(os.path.abspath(cli.config_file)))
        kw["config_file"] = cli.config_file
    _apply_cli(ctx, kw, cli)
    if "http_host" not in kw and "host" in kw:
        # As nats-server: the monitor binds to the client host unless told
        # otherwise, so `-a 127.0.0.1 -m 8222` does not expose it everywhere.
        kw["http_host"] = kw["host"]
    opts = _finish(ctx, kw, where)
    if ctx.errors:
        raise ConfigErrors(ctx.errors, ctx.warnings)
    assert opts is not None
    return cli, opts, ctx.warnings


def options_from_text(
    text: str, file: str = "<string>", env: Mapping[str, str] | None = None
) -> tuple[Options, list[str]]:
    """Options from conf text alone (no flags): for tests and tools."""
    ctx = Ctx()
    root = parse_text(text, file, env)
    base = os.path.dirname(os.path.abspath(file)) if not file.startswith("<") else os.getcwd()
    kw, where = options_from_tree(ctx, root, base)
    opts = _finish(ctx, kw, where)
    if ctx.errors:
        raise ConfigErrors(ctx.errors, ctx.warnings)
    assert opts is not None
    return opts, ctx.warnings


def options_from_tree(
    ctx: Ctx, root: Node, config_dir: str
) -> tuple[dict[str, Any], dict[str, Pos]]:
    """``Options`` keyword arguments from a parsed file, plus where each key was."""
    f = pick(ctx, root, _TOP)
    kw: dict[str, Any] = {}
    where = {k: n.key_pos or n.pos for k, n in f.items()}
    for key, node in f.items():
        value: Any = None
        if key in _STRINGS:
            value = as_str(ctx, node, key)
        elif key in _INTS:
            value = as_int(ctx, node, key)
        elif key in _SIZES:
            value = as_size(ctx, node, key)
        elif key in _DURATIONS:
            value = as_duration(ctx, node, key)
        elif key in _BOOLS:
            value = as_bool(ctx, node, key)
        else:
            _section(ctx, kw, key, node, config_dir)
            continue
        if value is not None:
            kw[key] = value
    return kw, where


def _section(ctx: Ctx, kw: dict[str, Any], key: str, node: Node, config_dir: str) -> None:
    if key == "listen":
        host, port = options_server.split_host_port(ctx, node, "listen")
        kw.update({k: v for k, v in (("host", host), ("port", port)) if v is not None})
    elif key == "host":
        if (s := as_str(ctx, node, key)) is not None:
            kw["host"] = s
    elif key in ("http", "https"):
        host, port = options_server.split_host_port(ctx, node, key)
        if host is not None:
            kw["http_host"] = host
        if port is not None:
            kw[f"{key}_port"] = port
        elif host is not None:
            ctx.err(node, f"{key}: expected a port or host:port")
    elif key == "authorization":
        kw["authorization"] = options_auth.authorization(ctx, node)
    elif key == "accounts":
        accts, sites = options_accounts.accounts(ctx, node)
        kw["accounts"] = accts
        options_accounts.check_imports(ctx, accts, sites)
    elif key == "tls":
        kw["tls"] = options_server.tls(ctx, node)
    elif key == "operator":
        kw["operators"] = options_server.operators(ctx, node, config_dir)
    elif key == "trusted_keys":
        kw["trusted_keys"] = options_server.trusted_keys(ctx, node)
    elif key == "resolver":
        kw["resolver"] = options_server.resolver(ctx, node)
    elif key == "resolver_preload":
        kw["resolver_preload"] = options_server.resolver_preload(ctx, node)
    elif key == "resolver_pinned_accounts":
        kw["resolver_pinned_accounts"] = as_str_list(ctx, node, key) or ()
    elif key == "jetstream":
        kw["jetstream"] = options_server.jetstream(
            ctx, node, kw.get("jetstream", JetStreamOptions())
        )
    elif key == "store_dir":
        if (s := as_str(ctx, node, key)) is not None:
            js = kw.get("jetstream", JetStreamOptions())
            kw["jetstream"] = msgspec.structs.replace(js, store_dir=s)
    elif key in _FEATURES:
        if not isinstance(node.value, dict):
            ctx.err(node, f"{key}: expected a map, got {describe(node)}")
        ctx.warn(
            node.key_pos or node.pos,
            f"natsd does not support {key} yet; the {key} block is ignored",
        )
        if key == "cluster":
            kw["cluster_present"] = True
    elif key in _IGNORED:
        ctx.warn(node.key_pos or node.pos, f"{key} is not supported by natsd yet; ignored")


def _apply_cli(ctx: Ctx, kw: dict[str, Any], cli: Cli) -> None:
    """Flags override whatever the file said."""
    for name in ("port", "host", "server_name", "client_advertise", "pid_file", "http_port",
                 "https_port", "log_file", "logtime", "syslog", "remote_syslog", "debug", "trace", "workers"):  # fmt: skip
        if (v := getattr(cli, name)) is not None:
            kw[name] = v
    js = kw.get("jetstream", JetStreamOptions())
    if cli.jetstream is not None:
        js = msgspec.structs.replace(js, enabled=cli.jetstream)
    if cli.store_dir is not None:
        js = msgspec.structs.replace(js, store_dir=cli.store_dir)
    kw["jetstream"] = js
    if cli.user is not None or cli.password is not None or cli.token is not None:
        auth: Authorization = kw.get("authorization", Authorization())
        repl = {
            k: v
            for k, v in (("user", cli.user), ("password", cli.password), ("token", cli.token))
            if v is not None
        }
        kw["authorization"] = msgspec.structs.replace(auth, **repl)
    _apply_tls_flags(ctx, kw, cli)


def _apply_tls_flags(ctx: Ctx, kw: dict[str, Any], cli: Cli) -> None:
    files = {k: v for k, v in (("cert_file", cli.tls_cert), ("key_file", cli.tls_key),
                               ("ca_file", cli.tls_ca_cert)) if v is not None}  # fmt: skip
    enable = bool(cli.tls or cli.tls_verify)
    current: TLSOptions | None = kw.get("tls")
    if not enable and current is None:
        if files:
            ctx.warn(
                Pos("<command line>", 0, 0),
                "--tlscert/--tlskey/--tlscacert ignored: TLS is not enabled (use --tls)",
            )
        return
    # Flag-built TLS gets the same secure defaults as file TLS (CVE-2021-32026).
    tls = msgspec.structs.replace(current or TLSOptions(), **files)
    if cli.tls_verify:
        tls = msgspec.structs.replace(tls, verify=True)
    if enable and (tls.cert_file is None or tls.key_file is None):
        ctx.err(Pos("<command line>", 0, 0), "TLS Server certificate must be present and valid")
    kw["tls"] = tls


def _finish(ctx: Ctx, kw: dict[str, Any], where: dict[str, Pos]) -> Options | None:
    def here(*keys: str) -> Pos:
        """Where the first of ``keys`` that the file set is; else the command line."""
        return next((where[k] for k in keys if k in where), Pos("<command line>", 0, 0))

    auth: Authorization = kw.get("authorization", Authorization())
    accts = kw.get("accounts", ())
    acct_users = [u for a in accts for u in a.users]
    if acct_users and auth.token:
        ctx.err(here("authorization", "accounts"), "Can not have a token and a users array")
    if acct_users and (auth.user or auth.password):
        ctx.err(here("authorization", "accounts"), "Can not have a single user/pass and a users array")
    if auth.token and (auth.user or auth.password) and "authorization" not in where:
        ctx.err(here("authorization"), "Cannot have a user/pass and token")
    _check_operator_mode(ctx, kw, auth, acct_users, here)
    _check_no_auth_user(ctx, kw, auth, acct_users, here)
    port = kw.get("port")
    if port is not None and not -1 <= port <= 65535:
        ctx.err(here("port"), f"port {port} out of range (-1..65535)")
    payload, pending = kw.get("max_payload"), kw.get("max_pending")
    if payload is not None and payload > MAX_PAYLOAD_LIMIT:
        ctx.err(here("max_payload"), "max_payload value is too big")
    elif payload is not None or pending is not None:
        p = Options().max_payload if payload is None else payload
        q = Options().max_pending if pending is None else pending
        if p > q:
            ctx.err(
                here("max_payload", "max_pending"),
                f"max_payload ({p}) cannot be higher than max_pending ({q})",
            )
    if kw.get("remote_syslog"):
        try:
            natslog.syslog_address(kw["remote_syslog"])
        except ValueError as e:
            ctx.err(here("remote_syslog"), str(e))
    if kw.get("workers", 0) < 0:
        ctx.err(here("workers"), "workers must be >= 0 (0 = one per CPU)")
    js = kw.get("jetstream")
    if js is not None and js.enabled:
        ctx.warn(here("jetstream"), "natsd does not support JetStream yet; it stays disabled")
    if ctx.errors:
        return None
    try:
        return Options(**kw)
    except (TypeError, msgspec.ValidationError) as e:  # a loader bug, not user input
        raise AssertionError(f"loader produced invalid Options: {e}") from e


def _check_operator_mode(
    ctx: Ctx, kw: dict[str, Any], auth: Authorization, acct_users: list, here: Any
) -> None:
    ops, trusted = kw.get("operators", ()), kw.get("trusted_keys", ())
    if ops and trusted:
        ctx.err(
            here("trusted_keys"), "Conflicting options for 'TrustedKeys' and 'TrustedOperators'"
        )
    if not (ops or trusted):
        if kw.get("resolver") is not None or kw.get("resolver_preload"):
            ctx.warn(here("resolver"), "resolver settings have no effect without an operator")
        return
    if kw.get("accounts"):
        ctx.err(here("accounts"), "operators do not allow Accounts to be configured directly")
    if auth.users or acct_users or auth.user or auth.token:
        ctx.err(here("authorization"), "operators do not allow users to be configured directly")
    if kw.get("no_auth_user"):
        ctx.err(here("no_auth_user"), "no_auth_user not compatible with Trusted Operator")
    if ops and kw.get("resolver") is None:
        ctx.err(here("operator"), "operators require an account resolver to be configured")
    if ops and "system_account" not in kw:
        sys_acct = options_server.operator_system_account(ops[0])
        if sys_acct:
            kw["system_account"] = sys_acct
    res = kw.get("resolver")
    if res is not None and res.type == "full" and kw.get("no_system_account"):
        ctx.err(here("resolver"), "the full resolver requires a system account")


def _check_no_auth_user(
    ctx: Ctx, kw: dict[str, Any], auth: Authorization, acct_users: list, here: Any
) -> None:
    name = kw.get("no_auth_user")
    if not name:
        return
    everyone = [*auth.users, *acct_users]
    if not everyone:
        ctx.err(
            here("no_auth_user"), f'no_auth_user: "{name}" present, but users/nkeys are not defined'
        )
    elif not any(name in (u.user, u.nkey) for u in everyone):
        ctx.err(
            here("no_auth_user"),
            f'no_auth_user: "{name}" not present as user or nkey in authorization block or account configuration',
        )

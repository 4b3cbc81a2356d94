"""Command-line flags, spelled the way nats-server (Go's ``flag`` package) spells them.

Theory of operation
-------------------
Go's ``flag`` package treats ``-x`` and ``--x`` alike, takes a value either as
``-x=v`` or as the next argument, lets boolean flags stand alone (a value only
via ``-x=false``), and stops at ``--`` or at the first argument that is not a
flag. nats-server defines several names per option (``-p``/``--port``) and a
few "combined" names that are really separate flags (``-DV``, ``-VV``,
``-DVV``). :data:`FLAGS` is the whole table; :func:`parse_args` walks argv
with those rules and returns a frozen :class:`Cli`. It does not read files:
``load()`` applies the overrides on top of the config file afterwards, so a
flag wins no matter where it stands on the command line.

Flags nats-server accepts for features natsd does not have (clustering,
profiling...) are accepted and reported in ``Cli.warnings`` instead of failing,
so an existing service definition still starts; misspelt flags are errors.
"""

from __future__ import annotations

import msgspec

from natsd.config.errors import ConfigError, ConfigErrors

ACTIONS = ("run", "check", "version", "help", "signal")
SIGNALS = ("ldm", "stop", "quit", "term", "reopen", "reload", "kill")
USAGE_HINT = "Run 'natsd --help' for usage."


class UsageError(ConfigErrors):
    """A malformed command line. ``str()`` is Go's message plus a usage hint."""

    def __init__(self, reason: str) -> None:
        super().__init__([ConfigError("<command line>", 0, 0, reason)])
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.reason}\n{USAGE_HINT}"


class Cli(msgspec.Struct, frozen=True, kw_only=True):
    """What the command line asked for. ``None`` = not given (file/default wins)."""

    action: str = "run"
    config_file: str | None = None
    signal: str | None = None
    signal_target: str | None = None  # a pid or a pid file
    # -- overrides
    port: int | None = None
    host: str | None = None
    server_name: str | None = None
    client_advertise: str | None = None
    pid_file: str | None = None
    http_port: int | None = None
    https_port: int | None = None
    log_file: str | None = None
    logtime: bool | None = None
    syslog: bool | None = None
    remote_syslog: str | None = None
    debug: bool | None = None
    trace: bool | None = None
    jetstream: bool | None = None
    store_dir: str | None = None
    user: str | None = None
    password: str | None = None
    token: str | None = None
    tls: bool | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    tls_ca_cert: str | None = None
    tls_verify: bool | None = None
    workers: int | None = None
    warnings: tuple[str, ...] = ()


# name -> (destination, kind). kind: "int" | "str" | "bool" | "ignored-bool" | "ignored".
FLAGS: dict[str, tuple[str, str]] = {}


def _flag(dest: str, kind: str, *names: str) -> None:
    for n in names:
        FLAGS[n] = (dest, kind)


_flag("port", "int", "p", "port")
_flag("host", "str", "a", "addr", "net")
_flag("server_name", "str", "n", "name", "server_name")
_flag("pid_file", "str", "P", "pid")
_flag("http_port", "int", "m", "http_port")
_flag("https_port", "int", "ms", "https_port")
_flag("config_file", "str", "c", "config")
_flag("check", "bool", "t")
_flag("signal", "str", "sl", "signal")
_flag("client_advertise", "str", "client_advertise")
_flag("log_file", "str", "l", "log")
_flag("logtime", "bool", "T", "logtime")
_flag("syslog", "bool", "s", "syslog")
_flag("remote_syslog", "str", "r", "remote_syslog")
_flag("debug", "bool", "D", "debug")
_flag("trace", "bool", "V", "trace")
_flag("DV", "bool", "DV")
_flag("VV", "bool", "VV")
_flag("DVV", "bool", "DVV")
_flag("jetstream", "bool", "js", "jetstream")
_flag("store_dir", "str", "sd", "store_dir")
_flag("user", "str", "user")
_flag("password", "str", "pass")
_flag("token", "str", "auth")
_flag("tls", "bool", "tls")
_flag("tls_cert", "str", "tlscert")
_flag("tls_key", "str", "tlskey")
_flag("tls_verify", "bool", "tlsverify")
_flag("tls_ca_cert", "str", "tlscacert")
_flag("workers", "int", "workers")
_flag("help", "bool", "h", "help", "help_tls")
_flag("version", "bool", "v", "version")
for _n in ("logtime_utc",):
    _flag(_n, "ignored-bool", _n)
for _n in (
    "log_size_limit", "max_traced_msg_len", "ports_file_dir",
    "routes", "cluster", "cluster_name", "no_advertise", "cluster_advertise",
    "connect_retries", "cluster_listen", "profile",
):  # fmt: skip
    _flag(_n, "ignored", _n)

_TRUE = ("1", "t", "true", "TRUE", "True")
_FALSE = ("0", "f", "false", "FALSE", "False")


def _bool(name: str, value: str) -> bool:
    # strconv.ParseBool's spellings, as Go's flag package uses them.
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(f'invalid boolean value "{value}" for -{name}: parse error')


def parse_args(argv: list[str]) -> Cli:
    """Parse ``argv`` (without the program name). Raises :class:`UsageError`."""
    got: dict[str, object] = {}
    warnings: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            break
        if len(arg) < 2 or not arg.startswith("-") or arg.startswith("---"):
            raise UsageError(f"unexpected argument {arg!r}: natsd takes only flags")
        body = arg[2:] if arg.startswith("--") else arg[1:]
        name, eq, value = body.partition("=")
        if not name or name.startswith("="):
            raise UsageError(f"bad flag syntax: {arg}")
        spec = FLAGS.get(name)
        if spec is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        dest, kind = spec
        if kind in ("bool", "ignored-bool"):
            flag_value: object = _bool(name, value) if eq else True
        else:
            if not eq:
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[i]
                i += 1
            flag_value = value
            if kind == "int":
                try:
                    flag_value = int(value, 10)
                except ValueError:
                    raise UsageError(
                        f'invalid value "{value}" for flag -{name}: parse error'
                    ) from None
        if kind.startswith("ignored"):
            warnings.append(f"flag -{name} is accepted for compatibility but natsd ignores it")
            continue
        got[dest] = flag_value
    if i < len(argv):
        raise UsageError(f"unexpected argument {argv[i]!r}: natsd takes only flags")
    return _build(got, warnings)


def _build(got: dict[str, object], warnings: list[str]) -> Cli:
    # The combined logging flags are separate Go flags that set two fields.
    if got.pop("DV", False):
        got["debug"] = got["trace"] = True
    if got.pop("VV", False):
        got["trace"] = True
    if got.pop("DVV", False):
        got["debug"] = got["trace"] = True
    action = "run"
    sig = target = None
    if "signal" in got:
        raw = str(got.pop("signal"))
        sig, _, tgt = raw.partition("=")
        sig = sig.lower()
        if sig not in SIGNALS:
            raise UsageError(f"unknown signal {sig!r} (expected one of {', '.join(SIGNALS)})")
        target = tgt or None
        action = "signal"
    if got.pop("check", False):
        action = "check" if action == "run" else action
    if got.pop("version", False):
        action = "version"
    if got.pop("help", False):
        action = "help"
    if "workers" in got and int(got["workers"]) < 0:  # type: ignore[call-overload]
        raise UsageError("invalid value for flag -workers: must be >= 0")
    return Cli(action=action, signal=sig, signal_target=target, warnings=tuple(warnings), **got)  # type: ignore[arg-type]

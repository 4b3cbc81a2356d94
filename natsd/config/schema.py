"""The frozen options every natsd process runs on.

Theory of operation
-------------------
``natsd.config.load`` is the only code that reads config files, flags and the
environment. It returns one :class:`Options`, a frozen msgspec Struct. The
supervisor passes the same value (msgpack-encoded) to every worker, so all
processes agree on limits without re-reading anything.

Field names follow nats-server's config keys where they overlap (after alias
resolution: ``max_conn`` is stored as ``max_connections``, ``username`` as
``user``...). Durations are stored as float seconds, sizes as int bytes.
Every struct is ``frozen=True``: reload builds a new Options and diffs.
"""

from __future__ import annotations

import msgspec

DEFAULT_PORT = 4222
DEFAULT_HOST = "0.0.0.0"
DEFAULT_MAX_PAYLOAD = 1024 * 1024
DEFAULT_MAX_CONTROL_LINE = 4096
DEFAULT_MAX_PENDING = 64 * 1024 * 1024
DEFAULT_MAX_CONNECTIONS = 64 * 1024
DEFAULT_PING_INTERVAL = 120.0
DEFAULT_PING_MAX = 2
DEFAULT_AUTH_TIMEOUT = 2.0
DEFAULT_WRITE_DEADLINE = 10.0
DEFAULT_LAME_DUCK_DURATION = 120.0
DEFAULT_LAME_DUCK_GRACE = 10.0
GLOBAL_ACCOUNT = "$G"
DEFAULT_SYSTEM_ACCOUNT = "$SYS"


class _Frozen(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class SubjectPermission(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``allow``/``deny`` lists. ``None`` means the list is absent (unrestricted);
    subscribe entries may be ``"subject queue"``."""

    allow: tuple[str, ...] | None = None
    deny: tuple[str, ...] | None = None


class ResponsePermission(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    max_msgs: int = 1
    expires: float = 120.0  # seconds


class Permissions(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    publish: SubjectPermission | None = None
    subscribe: SubjectPermission | None = None
    allow_responses: ResponsePermission | None = None


class User(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A configured identity: ``user`` (with optional ``password``) or ``nkey``.

    ``account`` is filled in by the loader (``$G`` for users of the
    ``authorization`` block). ``password`` may be a bcrypt hash.
    ``permissions`` is already resolved against default_permissions.
    """

    user: str | None = None
    password: str | None = None
    nkey: str | None = None
    account: str = GLOBAL_ACCOUNT
    permissions: Permissions | None = None
    allowed_connection_types: tuple[str, ...] = ()
    proxy_required: bool = False


class StreamExport(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    subject: str
    accounts: tuple[str, ...] | None = None  # None = public
    account_token_position: int = 0


class ServiceExport(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    subject: str
    accounts: tuple[str, ...] | None = None
    response_type: str = "singleton"  # singleton | stream | chunked
    response_threshold: float = 120.0
    account_token_position: int = 0


class StreamImport(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str
    subject: str
    prefix: str | None = None
    to: str | None = None


class ServiceImport(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    account: str
    subject: str
    to: str | None = None


class Account(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: str
    users: tuple[User, ...] = ()
    stream_exports: tuple[StreamExport, ...] = ()
    service_exports: tuple[ServiceExport, ...] = ()
    stream_imports: tuple[StreamImport, ...] = ()
    service_imports: tuple[ServiceImport, ...] = ()
    default_permissions: Permissions | None = None
    max_connections: int = -1
    max_subscriptions: int = -1
    max_payload: int = -1


class Authorization(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The top-level ``authorization {}`` block (and ``--user/--pass/--auth``)."""

    token: str | None = None
    user: str | None = None
    password: str | None = None
    users: tuple[User, ...] = ()  # users in $G from this block
    timeout: float | None = None  # None: default (2s, or tls.timeout + 1)
    default_permissions: Permissions | None = None
    present: bool = False  # an authorization block exists (CVE-2023-47090 rule)


class TLSOptions(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    verify: bool = False
    verify_and_map: bool = False
    timeout: float = 2.0
    handshake_first: bool = False
    handshake_first_fallback: float | None = None  # seconds, for "auto"/duration
    pinned_certs: tuple[str, ...] = ()
    min_version: str = "1.2"
    cipher_suites: tuple[str, ...] = ()
    curve_preferences: tuple[str, ...] = ()


class Resolver(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    type: str = "memory"  # memory | full | cache | url
    dir: str | None = None
    allow_delete: bool = False
    hard_delete: bool = False
    interval: float = 120.0
    limit: int = 1000
    timeout: float = 1.9
    ttl: float = 0.0
    url: str | None = None  # type "url": base URL of a URL(...) resolver (added by config)


class JetStreamOptions(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    enabled: bool = False
    store_dir: str | None = None
    max_memory_store: int = -1
    max_file_store: int = -1
    cipher: str | None = None
    key: str | None = None


class Options(_Frozen, frozen=True, kw_only=True, forbid_unknown_fields=True):
    # -- identity and listener
    server_name: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT  # -1: random
    client_advertise: str | None = None
    # -- limits
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_control_line: int = DEFAULT_MAX_CONTROL_LINE
    max_pending: int = DEFAULT_MAX_PENDING
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_subscriptions: int = 0  # 0 = unlimited
    max_sub_tokens: int = 0
    ping_interval: float = DEFAULT_PING_INTERVAL
    ping_max: int = DEFAULT_PING_MAX
    write_deadline: float = DEFAULT_WRITE_DEADLINE
    no_header_support: bool = False
    # -- processes
    workers: int = 0  # 0: os.cpu_count()
    # -- auth and accounts
    authorization: Authorization = msgspec.field(default_factory=Authorization)
    accounts: tuple[Account, ...] = ()
    no_auth_user: str | None = None
    system_account: str = DEFAULT_SYSTEM_ACCOUNT
    no_system_account: bool = False
    # -- operator mode (JWT)
    operators: tuple[str, ...] = ()  # operator JWTs (contents, not paths)
    trusted_keys: tuple[str, ...] = ()
    resolver: Resolver | None = None
    resolver_preload: tuple[tuple[str, str], ...] = ()  # (account pubkey, JWT)
    resolver_pinned_accounts: tuple[str, ...] = ()
    # -- TLS
    tls: TLSOptions | None = None
    allow_non_tls: bool = False
    # -- JetStream (parsed, feature pending)
    jetstream: JetStreamOptions = msgspec.field(default_factory=JetStreamOptions)
    # -- monitoring
    http_host: str = DEFAULT_HOST
    http_port: int = 0  # 0: disabled; -1: random
    https_port: int = 0
    # -- lame duck
    lame_duck_duration: float = DEFAULT_LAME_DUCK_DURATION
    lame_duck_grace_period: float = DEFAULT_LAME_DUCK_GRACE
    # -- logging and ops
    debug: bool = False
    trace: bool = False
    logtime: bool = True
    log_file: str | None = None
    syslog: bool = False
    remote_syslog: str | None = None  # udp://host:port, tcp://host:port, unix:///path
    pid_file: str | None = None
    config_file: str | None = None
    # -- features parsed for later issues; loader warns when set
    cluster_present: bool = False

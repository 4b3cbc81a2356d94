"""Users, permissions and the ``authorization {}`` block.

Theory of operation
-------------------
These builders turn nodes into the schema's ``User``/``Permissions``/
``Authorization`` structs, recording every problem in the shared ``Ctx`` with
nats-server's wording (spec §3.1, §4.1). Two rules go beyond nats-server on
purpose:

* an empty permission list (``publish: []``, ``{allow: []}``) is an error.
  nats-server reads it as "no restriction", the opposite of what it looks like;
* ``allow_responses`` without a ``publish`` section yields an explicit empty
  publish allow list (deny everything except tracked replies), which is what
  nats-server does at connect time; doing it here makes the struct say what
  the server will enforce.

``default_permissions`` are applied by :func:`with_defaults` once the
enclosing block is known, so every ``User`` leaves the loader fully resolved.
"""

from __future__ import annotations

from natsd.auth.nkey import decode_public_key
from natsd.config.convert import (
    Ctx,
    aliases,
    as_bool,
    as_duration,
    as_int,
    as_str,
    as_str_list,
    describe,
    pick,
    seconds_or_duration,
)
from natsd.config.parser import Node
from natsd.config.schema import (
    GLOBAL_ACCOUNT,
    Authorization,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    User,
)
from natsd.subjects.tokens import valid_subject

CONNECTION_TYPES = frozenset(
    {"STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS", "IN_PROCESS"}
)

_PERMS = aliases(
    {
        "publish": ["pub", "import"],
        "subscribe": ["sub", "export"],
        "allow_responses": ["publish_allow_responses"],
    }
)
_RESP = aliases(
    {"max": ["max_msgs", "max_messages", "max_responses"], "expires": ["expiration", "ttl"]}
)
_ALLOW_DENY = aliases({"allow": [], "deny": []})
_USER = aliases(
    {
        "user": ["username"],
        "password": ["pass"],
        "nkey": [],
        "permissions": ["permission", "authorization"],
        "allowed_connection_types": ["connection_types", "clients"],
        "proxy_required": [],
    }
)
_AUTHZ = aliases(
    {
        "user": ["username"],
        "password": ["pass"],
        "token": [],
        "timeout": [],
        "users": [],
        "default_permissions": ["permissions", "default_permission"],
        "auth_callout": [],
    }
)


def _subjects(ctx: Ctx, node: Node, what: str, queues: bool) -> tuple[str, ...] | None:
    items = node.value if isinstance(node.value, list) else [node]
    if not items:
        ctx.err(
            node,
            f"empty {what} list: nats-server would treat it as unrestricted; "
            "remove the key to allow everything, or list the subjects",
        )
        return None
    out: list[str] = []
    ok = True
    for item in items:
        s = as_str(ctx, item, what)
        if s is None:
            ok = False
            continue
        parts = s.split()
        good = len(parts) == 1 or (queues and len(parts) == 2)
        if not good or not valid_subject(parts[0].encode()):
            ctx.err(item, f'subject "{s}" is not a valid subject')
            ok = False
            continue
        out.append(s)
    return tuple(out) if ok else None


def _subject_permission(ctx: Ctx, node: Node, what: str) -> SubjectPermission | None:
    queues = what == "subscribe"
    if not isinstance(node.value, dict):
        allow = _subjects(ctx, node, what, queues)
        return None if allow is None else SubjectPermission(allow=allow)
    f = pick(
        ctx,
        node,
        _ALLOW_DENY,
        'Unknown field name "{}" parsing subject permissions, '
        "only 'allow' or 'deny' are permitted",
    )
    allow = _subjects(ctx, f["allow"], f"{what} allow", queues) if "allow" in f else None
    deny = _subjects(ctx, f["deny"], f"{what} deny", queues) if "deny" in f else None
    if not f:
        ctx.err(node, f"empty {what} permissions map: give 'allow' and/or 'deny'")
    return SubjectPermission(allow=allow, deny=deny)


def _responses(ctx: Ctx, node: Node) -> ResponsePermission | None:
    if isinstance(node.value, bool):
        return ResponsePermission() if node.value else None
    f = pick(ctx, node, _RESP, 'Unknown field "{}" parsing permissions')
    rp = ResponsePermission()
    # 0 (like absent) means the default, as in nats-server.
    if "max" in f and (n := as_int(ctx, f["max"], "allow_responses max", minimum=0)):
        rp = ResponsePermission(max_msgs=n, expires=rp.expires)
    if "expires" in f and (t := as_duration(ctx, f["expires"], "allow_responses expires")):
        rp = ResponsePermission(max_msgs=rp.max_msgs, expires=t)
    return rp


def permissions(ctx: Ctx, node: Node) -> Permissions | None:
    f = pick(ctx, node, _PERMS, 'Unknown field "{}" parsing permissions')
    pub = _subject_permission(ctx, f["publish"], "publish") if "publish" in f else None
    sub = _subject_permission(ctx, f["subscribe"], "subscribe") if "subscribe" in f else None
    resp = _responses(ctx, f["allow_responses"]) if "allow_responses" in f else None
    if resp is not None and pub is None:
        pub = SubjectPermission(allow=())
    if pub is None and sub is None and resp is None:
        return None
    return Permissions(publish=pub, subscribe=sub, allow_responses=resp)


def _connection_types(ctx: Ctx, node: Node) -> tuple[str, ...]:
    names = as_str_list(ctx, node, "allowed_connection_types") or ()
    upper = tuple(n.upper() for n in names)
    bad = [n for n in upper if n not in CONNECTION_TYPES]
    if bad:
        quoted = " ".join(f'"{b}"' for b in bad)
        ctx.err(node, f"invalid connection types [{quoted}]")
    return upper


def user(ctx: Ctx, node: Node, account: str) -> User | None:
    f = pick(ctx, node, _USER)
    name = as_str(ctx, f["user"], "user") if "user" in f else None
    password = as_str(ctx, f["password"], "password") if "password" in f else None
    nkey = as_str(ctx, f["nkey"], "nkey") if "nkey" in f else None
    if nkey is not None:
        if decode_public_key(nkey) is None:
            ctx.err(f["nkey"], "Not a valid public nkey for a user")
            return None
        if name is not None or password is not None:
            ctx.err(f.get("user") or f["password"], "Nkey users do not take usernames or passwords")
            return None
    elif not name:
        ctx.err(node, "User entry requires a user")
        return None
    ident = ("nkey", nkey) if nkey is not None else ("user", name or "")
    if ident in ctx.identities:
        ctx.err(node, f'Duplicate {ident[0]} "{ident[1]}" detected')
    else:
        ctx.identities[ident] = node.pos
    perms = permissions(ctx, f["permissions"]) if "permissions" in f else None
    types = (
        _connection_types(ctx, f["allowed_connection_types"])
        if "allowed_connection_types" in f
        else ()
    )
    proxy = as_bool(ctx, f["proxy_required"], "proxy_required") if "proxy_required" in f else False
    return User(
        user=name,
        password=password,
        nkey=nkey,
        account=account,
        permissions=perms,
        allowed_connection_types=types,
        proxy_required=bool(proxy),
    )


def users(ctx: Ctx, node: Node, account: str) -> tuple[User, ...]:
    if not isinstance(node.value, list):
        ctx.err(node, f"users: expected an array of user maps, got {describe(node)}")
        return ()
    out = [u for item in node.value if (u := user(ctx, item, account)) is not None]
    return tuple(out)


def with_defaults(found: tuple[User, ...], defaults: Permissions | None) -> tuple[User, ...]:
    """Give ``defaults`` to users that have no permissions of their own."""
    if defaults is None:
        return found
    return tuple(u if u.permissions is not None else _replace_perms(u, defaults) for u in found)


def _replace_perms(u: User, p: Permissions) -> User:
    import msgspec

    return msgspec.structs.replace(u, permissions=p)


def authorization(ctx: Ctx, node: Node) -> Authorization:
    f = pick(ctx, node, _AUTHZ)
    get = f.get
    name = as_str(ctx, f["user"], "user") if "user" in f else None
    password = as_str(ctx, f["password"], "password") if "password" in f else None
    token = as_str(ctx, f["token"], "token") if "token" in f else None
    timeout = seconds_or_duration(ctx, f["timeout"], "timeout") if "timeout" in f else None
    defaults = permissions(ctx, f["default_permissions"]) if "default_permissions" in f else None
    found = users(ctx, f["users"], GLOBAL_ACCOUNT) if "users" in f else ()
    if "auth_callout" in f:
        ctx.err(f["auth_callout"], "auth_callout is not supported by natsd")
    at = node.key_pos or node.pos
    if (name or password) and token:
        ctx.err(get("token") or at, "Cannot have a user/pass and token")
    if found and (name or password):
        ctx.err(at, "Can not have a single user/pass and a users array")
    if found and token:
        ctx.err(at, "Can not have a token and a users array")
    return Authorization(
        token=token,
        user=name,
        password=password,
        users=with_defaults(found, defaults),
        timeout=timeout,
        default_permissions=defaults,
        present=True,
    )

"""TLS, operator/resolver, JetStream and listener helpers for the loader.

Theory of operation
-------------------
Each function here turns one top-level section into its schema struct and
records problems in the shared ``Ctx``. They are kept apart from ``load.py``
so the top-level table there reads as a plain list of keys.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from typing import Any

import nkeys

from natsd.auth.nkey import decode_public_key
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
    parse_go_duration,
    pick,
    seconds_or_duration,
)
from natsd.config.parser import Node
from natsd.config.schema import JetStreamOptions, Resolver, TLSOptions

DEFAULT_TLS_FALLBACK = 0.05  # nats-server's handshake_first "auto" delay

_TLS = aliases(
    {
        "cert_file": [],
        "key_file": [],
        "ca_file": [],
        "verify": [],
        "verify_and_map": [],
        "timeout": [],
        "handshake_first": ["first", "immediate"],
        "pinned_certs": [],
        "min_version": [],
        "cipher_suites": [],
        "curve_preferences": [],
        "insecure": [],
        "verify_cert_and_check_known_urls": [],
        "ocsp_peer": [],
        "cert_store": [],
        "cert_match": [],
        "cert_match_by": [],
        "ca_certs_match": [],
        "cert_match_skip_invalid": [],
        "connection_rate_limit": [],
    }
)
_TLS_UNSUPPORTED = frozenset(
    {
        "insecure",
        "verify_cert_and_check_known_urls",
        "ocsp_peer",
        "cert_store",
        "cert_match",
        "cert_match_by",
        "ca_certs_match",
        "cert_match_skip_invalid",
        "connection_rate_limit",
    }
)
_TLS_VERSIONS = ("1.2", "1.3")


def split_host_port(ctx: Ctx, node: Node, name: str) -> tuple[str | None, int | None]:
    """``host:port``, ``[v6]:port``, ``:port``, or a bare port number."""
    v = node.value
    if isinstance(v, int) and not isinstance(v, bool):
        return None, v
    s = as_str(ctx, node, name)
    if s is None:
        return None, None
    host, sep, port = s.rpartition(":")
    if not sep:
        return s, None
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return host or None, int(port)
    except ValueError:
        ctx.err(node, f"{name}: could not parse port in {s!r}")
        return host or None, None


def tls(ctx: Ctx, node: Node) -> TLSOptions:
    f = pick(ctx, node, _TLS, 'error parsing tls config, unknown field ["{}"]')
    kw: dict[str, Any] = {}
    for k in ("cert_file", "key_file", "ca_file"):
        if k in f and (s := as_str(ctx, f[k], k)) is not None:
            kw[k] = s
    for k in ("verify", "verify_and_map"):
        if k in f and (b := as_bool(ctx, f[k], k)) is not None:
            kw[k] = b
    if "timeout" in f and (t := seconds_or_duration(ctx, f["timeout"], "tls timeout")) is not None:
        kw["timeout"] = t
    if "handshake_first" in f:
        kw.update(_handshake_first(ctx, f["handshake_first"]))
    for k in ("pinned_certs", "cipher_suites", "curve_preferences"):
        if k in f and (lst := as_str_list(ctx, f[k], k)) is not None:
            kw[k] = lst
    if "min_version" in f:
        v = f["min_version"].value
        s = f"{v}" if isinstance(v, float) else as_str(ctx, f["min_version"], "min_version")
        if s not in _TLS_VERSIONS:
            ctx.err(f["min_version"], f"unsupported TLS version {s!r}: natsd allows 1.2 or 1.3")
        else:
            kw["min_version"] = s
    for k in _TLS_UNSUPPORTED & f.keys():
        ctx.warn(f[k], f"tls {k} is not supported by natsd yet; ignored")
    if kw.get("verify_and_map"):
        kw["verify"] = True
    return TLSOptions(**kw)


def _handshake_first(ctx: Ctx, node: Node) -> dict[str, Any]:
    v = node.value
    if isinstance(v, bool):
        return {"handshake_first": v}
    if isinstance(v, str):
        if v.lower() == "auto":
            return {"handshake_first": True, "handshake_first_fallback": DEFAULT_TLS_FALLBACK}
        try:
            return {"handshake_first": True, "handshake_first_fallback": parse_go_duration(v)}
        except ValueError:
            pass
    ctx.err(
        node, f'handshake_first: expected true, false, "auto" or a duration, got {describe(node)}'
    )
    return {}


def jwt_claims(token: str) -> dict[str, Any] | None:
    """The JSON claims of a compact JWT, without verifying it (the auth module does)."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        return None
    try:
        raw = base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4))
        claims = json.loads(raw)
    except (binascii.Error, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


def _unarmor(text: str) -> str:
    """The JWT inside a creds-style ``-----BEGIN ... JWT-----`` block, or the text."""
    lines = [ln.strip() for ln in text.splitlines()]
    for i, ln in enumerate(lines):
        if ln.startswith("-----BEGIN") and "JWT" in ln:
            for body in lines[i + 1 :]:
                if body and not body.startswith("---"):
                    return body
    return text.strip()


def operators(ctx: Ctx, node: Node, config_dir: str) -> tuple[str, ...]:
    """Operator JWTs from inline tokens or files (CWD first, then the config's dir)."""
    out: list[str] = []
    for item in node.value if isinstance(node.value, list) else [node]:
        s = as_str(ctx, item, "operator")
        if s is None:
            continue
        token = s.strip()
        if jwt_claims(token) is None:
            path = s if os.path.exists(s) or os.path.isabs(s) else os.path.join(config_dir, s)
            try:
                with open(path, encoding="utf-8") as fh:
                    token = _unarmor(fh.read())
            except OSError as e:
                ctx.err(item, f"error reading operator JWT {s!r}: {e.strerror or e}")
                continue
        claims = jwt_claims(token)
        nats = claims.get("nats") if claims else None
        if not isinstance(nats, dict) or nats.get("type") != "operator":
            ctx.err(item, f"{s if len(s) < 80 else s[:77] + '...'!r} is not a valid operator JWT")
            continue
        out.append(token)
    return tuple(out)


def operator_system_account(token: str) -> str | None:
    claims = jwt_claims(token) or {}
    nats = claims.get("nats")
    acct = nats.get("system_account") if isinstance(nats, dict) else None
    return acct if isinstance(acct, str) and acct else None


def trusted_keys(ctx: Ctx, node: Node) -> tuple[str, ...]:
    keys = as_str_list(ctx, node, "trusted_keys") or ()
    for k in keys:
        if decode_public_key(k, nkeys.PREFIX_BYTE_OPERATOR) is None:
            ctx.err(node, f'trusted Keys "{k}" are required to be a valid public operator nkey')
    return keys


_RESOLVER = aliases(
    {
        "type": [],
        "dir": [],
        "allow_delete": [],
        "hard_delete": [],
        "interval": [],
        "limit": [],
        "timeout": [],
        "ttl": [],
    }
)


def resolver(ctx: Ctx, node: Node) -> Resolver | None:
    v = node.value
    if isinstance(v, str):
        if v.upper() == "MEMORY":
            return Resolver(type="memory")
        if v.upper().startswith("URL(") and v.endswith(")"):
            url = v[4:-1].strip().strip("\"'")
            return Resolver(type="url", url=url)
        ctx.err(node, f"resolver: expected MEMORY, URL(...) or a map, got {v!r}")
        return None
    f = pick(ctx, node, _RESOLVER)
    kw: dict[str, Any] = {}
    rtype = as_str(ctx, f["type"], "type") if "type" in f else "full"
    if rtype is None or rtype.lower() not in ("full", "cache"):
        ctx.err(f.get("type") or node, f"resolver type must be full or cache, got {rtype!r}")
        return None
    kw["type"] = rtype.lower()
    if "dir" in f:
        kw["dir"] = as_str(ctx, f["dir"], "dir")
    for k in ("allow_delete", "hard_delete"):
        if k in f and (b := as_bool(ctx, f[k], k)) is not None:
            kw[k] = b
    for k in ("interval", "timeout", "ttl"):
        if k in f and (d := as_duration(ctx, f[k], k)) is not None:
            kw[k] = d
    if "limit" in f and (n := as_int(ctx, f["limit"], "limit", minimum=1)) is not None:
        kw["limit"] = n
    return Resolver(**kw)


def resolver_preload(ctx: Ctx, node: Node) -> tuple[tuple[str, str], ...]:
    if not isinstance(node.value, dict):
        ctx.err(node, f"resolver_preload: expected a map, got {describe(node)}")
        return ()
    out: list[tuple[str, str]] = []
    for key, child in node.value.items():
        token = as_str(ctx, child, key)
        if token is None:
            continue
        claims = jwt_claims(token)
        if decode_public_key(key, nkeys.PREFIX_BYTE_ACCOUNT) is None:
            ctx.err(
                child.key_pos or child.pos,
                f"resolver_preload: {key!r} is not an account public key",
            )
        elif claims is None or claims.get("sub") != key:
            ctx.err(child, "invalid account JWT")
        else:
            out.append((key, token.strip()))
    return tuple(out)


_JS = aliases(
    {
        "enabled": ["enable"],
        "store_dir": ["store", "storedir"],
        "max_memory_store": ["max_mem_store", "max_mem"],
        "max_file_store": ["max_file"],
        "cipher": [],
        "key": ["ek", "encryption_key"],
        "prev_encryption_key": ["prev_key", "prev_ek"],
        "domain": [],
        "sync_interval": [],
        "max_outstanding_catchup": [],
        "unique_tag": [],
        "limits": [],
        "strict": [],
        "max_buffered_msgs": [],
        "max_buffered_size": [],
        "request_queue_limit": [],
    }
)
_CIPHERS = {"chacha": "chachapoly", "chachapoly": "chachapoly", "aes": "aes"}


def jetstream(ctx: Ctx, node: Node, current: JetStreamOptions) -> JetStreamOptions:
    v = node.value
    if isinstance(v, bool):
        return _js_replace(current, enabled=v)
    if isinstance(v, str) and v.lower() in ("enabled", "enable", "disabled", "disable"):
        return _js_replace(current, enabled=v.lower().startswith("enable"))
    if not isinstance(v, dict):
        ctx.err(
            node, f"jetstream: expected a boolean, enabled/disabled or a map, got {describe(node)}"
        )
        return current
    f = pick(ctx, node, _JS)
    kw: dict[str, Any] = {"enabled": True}
    if "enabled" in f and (b := as_bool(ctx, f["enabled"], "enabled")) is not None:
        kw["enabled"] = b
    for k in ("store_dir", "key"):
        if k in f and (s := as_str(ctx, f[k], k)) is not None:
            kw[k] = s
    for k in ("max_memory_store", "max_file_store"):
        if k in f and (n := as_size(ctx, f[k], k)) is not None:
            kw[k] = n
    if "cipher" in f and (c := as_str(ctx, f["cipher"], "cipher")) is not None:
        if c.lower() not in _CIPHERS:
            ctx.err(f["cipher"], "Unknown cipher type")
        else:
            kw["cipher"] = _CIPHERS[c.lower()]
    for k in f.keys() - {
        "enabled",
        "store_dir",
        "key",
        "max_memory_store",
        "max_file_store",
        "cipher",
    }:
        ctx.warn(f[k], f"jetstream {k} is not supported by natsd yet; ignored")
    return _js_replace(current, **kw)


def _js_replace(current: JetStreamOptions, **kw: Any) -> JetStreamOptions:
    import msgspec

    return msgspec.structs.replace(current, **kw)

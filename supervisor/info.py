"""The INFO a client sees, built once per server start.

Clients pick code paths from INFO (``headers``, ``max_payload``, ``version``),
so natsd advertises the nats-server feature level it really implements in
``version`` and its own release in ``natsd_version``. Per connection the
acceptor adds ``client_id``, ``client_ip`` and, when a nonce is needed
(nkey users, operator mode), a fresh ``nonce``.
"""

from __future__ import annotations

import base64
import os
import platform
from typing import Any

import nkeys

from natsd import __version__
from natsd.config.schema import Options

# The nats-server release whose client-protocol behaviour natsd implements.
COMPAT_VERSION = "2.10.0"


def new_server_id() -> str:
    """A fresh server nkey public key (``N...``, 56 chars), as nats-server uses."""
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_SERVER)
    kp = nkeys.from_seed(seed)
    return kp.public_key.decode()


def new_nonce() -> str:
    """11 random bytes, base64url without padding: 15 chars like nats-server."""
    return base64.urlsafe_b64encode(os.urandom(11)).rstrip(b"=").decode()


def base_info(opts: Options, server_id: str, *, auth_required: bool, port: int) -> dict[str, Any]:
    info: dict[str, Any] = {
        "server_id": server_id,
        "server_name": opts.server_name or server_id,
        "version": COMPAT_VERSION,
        "proto": 1,
        "go": f"python{platform.python_version()}",
        "host": opts.host,
        "port": port,
        "headers": not opts.no_header_support,
        "max_payload": opts.max_payload,
    }
    if auth_required:
        info["auth_required"] = True
    if opts.tls is not None:
        if opts.allow_non_tls:
            info["tls_available"] = True
        else:
            info["tls_required"] = True
        if opts.tls.verify or opts.tls.verify_and_map:
            info["tls_verify"] = True
    info["natsd_version"] = __version__
    return info

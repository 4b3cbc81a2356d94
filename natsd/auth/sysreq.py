"""Which system-account subjects the supervisor answers.

Pure and shared: the worker that owns a requester's account uses
:func:`is_system_request` to decide what to forward to the supervisor (and
so whether the request has a responder), and the supervisor uses
:func:`api_route` and the same patterns to dispatch.

Two audiences, as in nats-server:

* clients of the system account reach the account-administration subjects
  (``CLAIMS.*``), ``$SYS.REQ.SERVER.PING[.<EP>]`` and
  ``$SYS.REQ.SERVER.<id>.<EP>`` for the monitoring endpoints,
  ``$SYS.REQ.ACCOUNT.<acc>.<EP>`` for one account, and ``$SYS.REQ.USER.INFO``;
* every other account gets only the four subjects nats-server imports into
  it from the system account (:data:`ACCOUNT_SCOPED`), and each answers
  about the requester's own account or connection, never another's.
"""

from __future__ import annotations

import re
from typing import NamedTuple

UPDATE = re.compile(rb"^\$SYS\.(?:REQ\.)?ACCOUNT\.([A-Z0-9]+)\.CLAIMS\.UPDATE$")
LOOKUP = re.compile(rb"^\$SYS\.REQ\.ACCOUNT\.([A-Z0-9]+)\.CLAIMS\.LOOKUP$")
GENERIC_UPDATE = b"$SYS.REQ.CLAIMS.UPDATE"
CLAIMS_LIST = b"$SYS.REQ.CLAIMS.LIST"
CLAIMS_DELETE = b"$SYS.REQ.CLAIMS.DELETE"
SERVER_PING = b"$SYS.REQ.SERVER.PING"
USER_INFO = b"$SYS.REQ.USER.INFO"

SERVER_ENDPOINTS = frozenset(
    ("VARZ", "SUBSZ", "CONNZ", "ROUTEZ", "GATEWAYZ", "LEAFZ", "ACCOUNTZ", "JSZ", "HEALTHZ", "IDZ", "STATSZ")
)
ACCOUNT_ENDPOINTS = frozenset(("SUBSZ", "CONNZ", "LEAFZ", "JSZ", "STATZ", "INFO", "CONNS"))
ACCOUNT_SCOPED = frozenset(
    (USER_INFO, b"$SYS.REQ.ACCOUNT.PING.CONNZ", b"$SYS.REQ.SERVER.PING.CONNZ", b"$SYS.REQ.ACCOUNT.PING.STATZ")
)


class ApiRoute(NamedTuple):
    """A monitoring request: ``kind`` is ``server``, ``account`` or ``user``."""

    kind: str
    endpoint: str
    account: str | None = None  # ACCOUNT.<acc>.<EP> (``PING`` for every account)


def is_claims_request(subject: bytes) -> bool:
    if subject in (GENERIC_UPDATE, CLAIMS_LIST, CLAIMS_DELETE):
        return True
    return UPDATE.match(subject) is not None or LOOKUP.match(subject) is not None


def api_route(subject: bytes, server_id: str) -> ApiRoute | None:
    """The monitoring endpoint a ``$SYS.REQ.`` subject names, or None."""
    if subject == SERVER_PING:
        return ApiRoute("server", "STATSZ")
    if subject == USER_INFO:
        return ApiRoute("user", "INFO")
    tokens = subject.split(b".")
    if len(tokens) != 5 or tokens[:2] != [b"$SYS", b"REQ"]:
        return None
    try:
        middle, endpoint = tokens[3].decode("ascii"), tokens[4].decode("ascii")
    except UnicodeDecodeError:
        return None
    if tokens[2] == b"SERVER" and endpoint in SERVER_ENDPOINTS and middle in ("PING", server_id):
        return ApiRoute("server", endpoint)
    if tokens[2] == b"ACCOUNT" and endpoint in ACCOUNT_ENDPOINTS and middle:
        return ApiRoute("account", endpoint, middle)
    return None


def is_system_request(subject: bytes, is_system: bool = True, server_id: str = "") -> bool:
    """Should a PUB on ``subject`` by a client (of the system account or not)
    go to the supervisor? A request that is not forwarded has no responder."""
    if not subject.startswith(b"$SYS."):
        return False
    if subject in ACCOUNT_SCOPED:
        return True
    if not is_system:
        return False
    return subject == SERVER_PING or is_claims_request(subject) or api_route(subject, server_id) is not None

"""Which system-account subjects the supervisor answers.

Pure and shared: the worker that owns the system account uses
:func:`is_system_request` to decide what to forward to the supervisor, and
the supervisor uses the same patterns to dispatch.
"""

from __future__ import annotations

import re

UPDATE = re.compile(rb"^\$SYS\.(?:REQ\.)?ACCOUNT\.([A-Z0-9]+)\.CLAIMS\.UPDATE$")
LOOKUP = re.compile(rb"^\$SYS\.REQ\.ACCOUNT\.([A-Z0-9]+)\.CLAIMS\.LOOKUP$")
GENERIC_UPDATE = b"$SYS.REQ.CLAIMS.UPDATE"
CLAIMS_LIST = b"$SYS.REQ.CLAIMS.LIST"
CLAIMS_DELETE = b"$SYS.REQ.CLAIMS.DELETE"
SERVER_PING = b"$SYS.REQ.SERVER.PING"


def is_system_request(subject: bytes) -> bool:
    if not subject.startswith(b"$SYS."):
        return False
    if subject in (GENERIC_UPDATE, SERVER_PING, CLAIMS_LIST, CLAIMS_DELETE):
        return True
    return UPDATE.match(subject) is not None or LOOKUP.match(subject) is not None

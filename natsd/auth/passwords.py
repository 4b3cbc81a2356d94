"""Comparing a presented secret (password or token) with the configured one.

Theory of operation
-------------------
A configured secret is either a bcrypt hash or plain text. nats-server decides which
by shape alone: a stored value is a hash iff it matches ``^\\$2[abxy]\\$\\d{2}\\$``
(the ``$2a$``/``$2b$``/``$2x$``/``$2y$`` bcrypt variants followed by a two-digit
cost). We use the same rule so that configs move between the two servers unchanged.

* bcrypt: ``bcrypt.checkpw`` does the slow comparison; a malformed hash that merely
  looks like bcrypt is a mismatch, never an exception that escapes.
* plain: ``hmac.compare_digest`` on the UTF-8 bytes, so the time taken does not reveal
  how long a prefix of the secret the client guessed right. (Go's ``!=`` on strings
  does leak that; natsd is deliberately stricter.)

Neither function logs or returns the secret; callers only ever learn a ``bool``.
"""

from __future__ import annotations

import hmac
import re

import bcrypt

__all__ = ["check_password", "is_bcrypt"]

_BCRYPT_SHAPE = re.compile(r"\$2[abxy]\$\d{2}\$")


def is_bcrypt(stored: str) -> bool:
    """True when ``stored`` has the shape of a bcrypt hash (nats-server's rule)."""
    return _BCRYPT_SHAPE.match(stored) is not None


def check_password(given: str, stored: str) -> bool:
    """True when the presented secret ``given`` matches the configured ``stored``."""
    given_b = given.encode("utf-8", "surrogatepass")
    stored_b = stored.encode("utf-8", "surrogatepass")
    if is_bcrypt(stored):
        try:
            return bcrypt.checkpw(given_b, stored_b)
        except ValueError:
            # A truncated or corrupt hash, or a presented secret over bcrypt's
            # 72-byte limit (Go's bcrypt refuses those too). At runtime the only
            # safe answer is "no match".
            return False
    return hmac.compare_digest(given_b, stored_b)

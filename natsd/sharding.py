"""Which worker owns an account.

An account lives on exactly one worker so that its publishers and
subscribers meet in one process. The owner is a stable function of the
account's identity (its name; its public key in JWT mode): the first 8 bytes
of BLAKE2b over the UTF-8 name, modulo the worker count. The function needs
no table, so accounts that appear at runtime (JWT resolvers) are placed
without coordination and a restarted worker gets the same accounts back.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache


@lru_cache(maxsize=65536)
def worker_for(account: str, workers: int) -> int:
    if workers <= 1:
        return 0
    digest = hashlib.blake2b(account.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % workers

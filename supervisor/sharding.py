"""Account placement lives in :mod:`natsd.sharding` (workers need it too)."""

from natsd.sharding import worker_for

__all__ = ["worker_for"]

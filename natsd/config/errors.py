"""Configuration errors that point at the offending text.

Theory of operation
-------------------
Every value the parser produces remembers where it came from (:class:`Pos`:
file, 1-based line, 1-based column). Code that rejects a value raises or
records a :class:`ConfigError` carrying that position, so the message reads
``file:line:col: reason`` exactly like nats-server's ``configErr``. The loader
never stops at the first problem: it collects every error (and every warning)
and raises one :class:`ConfigErrors` at the end, so an operator fixes a file
in one pass instead of one restart per typo.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pos:
    """Where a token starts. ``line``/``col`` are 1-based; 0 means unknown."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_POS = Pos("<command line>", 0, 0)


class ConfigError(Exception):
    """One problem at one place. ``str()`` is ``file:line:col: reason``."""

    def __init__(self, file: str, line: int, col: int, reason: str) -> None:
        super().__init__(file, line, col, reason)
        self.file = file
        self.line = line
        self.col = col
        self.reason = reason

    @classmethod
    def at(cls, pos: Pos, reason: str) -> ConfigError:
        return cls(pos.file, pos.line, pos.col, reason)

    @property
    def pos(self) -> Pos:
        return Pos(self.file, self.line, self.col)

    def __str__(self) -> str:
        if self.line <= 0:
            # Flags and environment have no line to point at.
            return f"{self.file}: {self.reason}"
        return f"{self.file}:{self.line}:{self.col}: {self.reason}"


class ConfigErrors(Exception):
    """Every error found while loading, plus the warnings seen on the way.

    ``str()`` lists the errors one per line, in the order found.
    """

    def __init__(self, errors: list[ConfigError], warnings: list[str] | None = None) -> None:
        super().__init__(errors)
        self.errors = list(errors)
        self.warnings = list(warnings or [])

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)

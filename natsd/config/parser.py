"""Builds the value tree of a NATS conf file: maps, arrays, scalars, positions.

Theory of operation
-------------------
The parser consumes the lexer's token list and returns a tree of :class:`Node`
objects. A node's ``value`` is a Python scalar (``str``, ``bool``, ``int``,
``float``, ``datetime``), a ``list[Node]`` or a ``dict[str, Node]`` (keys kept
as spelled; callers decide about case). Every node remembers ``pos``, where its
value was written, and, for map entries, ``key_pos``, where its key was.

Two things happen here rather than in the lexer because they need context:

* **Variables.** ``$NAME`` looks for ``NAME`` in the maps that enclose the
  reference, innermost first, considering only keys already defined (the maps
  are built as the tokens arrive, so this is automatic). Failing that it reads
  the environment and parses the value as if it were written ``NAME = value``
  (so ``"42"`` becomes an int); an environment variable that refers back to
  itself, directly or not, is a cycle and an error. A definition that gets
  referenced is marked ``used`` so the loader does not call it an unknown
  field. ``$2a$...`` is not a variable but a bcrypt hash, as in nats-server.
* **Includes.** ``include path`` is resolved against the including file's
  directory and parsed on its own (it cannot see the includer's variables);
  its top-level keys are merged into the map that holds the include.
  Include cycles are errors.

Unknown variables are collected (the rest of the file still parses) and
raised together as :class:`ConfigErrors`; syntax errors stop at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from natsd.config.errors import ConfigError, ConfigErrors, Pos
from natsd.config.lexer import Tok, Token, tokenize

_MAX_INCLUDE_DEPTH = 32


@dataclass(slots=True, eq=False)
class Node:
    value: Any
    pos: Pos
    key_pos: Pos | None = None
    used: bool = field(default=False)  # referenced as a $variable

    def plain(self) -> Any:
        """The value without positions (maps to dicts, arrays to lists)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class _State:
    """What all files parsed for one load share: env, include stack, errors."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.env_stack: list[str] = []
        self.include_stack: list[str] = []
        self.errors: list[ConfigError] = []


class _Parser:
    def __init__(self, tokens: list[Token], base_dir: str, state: _State) -> None:
        self.toks = tokens
        self.k = 0
        self.base_dir = base_dir
        self.state = state
        self.scopes: list[dict[str, Node]] = []

    def next(self) -> Token:
        tok = self.toks[self.k]
        self.k += 1
        return tok

    def top(self) -> Node:
        first = self.toks[0].pos
        return Node(self.map_body(end=Tok.EOF), Pos(first.file, 1, 1))

    def map_body(self, end: Tok) -> dict[str, Node]:
        entries: dict[str, Node] = {}
        self.scopes.append(entries)
        try:
            while True:
                tok = self.next()
                if tok.kind is end:
                    return entries
                if tok.kind is Tok.INCLUDE:
                    self.include(tok, entries)
                    continue
                if tok.kind is not Tok.KEY:
                    raise ConfigError.at(tok.pos, f"expected a key, got {tok.kind.value}")
                node = self.value(self.next())
                node.key_pos = tok.pos
                entries[tok.text] = node
        finally:
            self.scopes.pop()

    def value(self, tok: Token) -> Node:
        kind = tok.kind
        if kind is Tok.MAP_START:
            return Node(self.map_body(end=Tok.MAP_END), tok.pos)
        if kind is Tok.ARRAY_START:
            items: list[Node] = []
            while (t := self.next()).kind is not Tok.ARRAY_END:
                items.append(self.value(t))
            return Node(items, tok.pos)
        if kind is Tok.VARIABLE:
            return self.variable(tok)
        if kind in (Tok.STRING, Tok.BOOL, Tok.INT, Tok.FLOAT, Tok.DATETIME):
            return Node(tok.value, tok.pos)
        raise ConfigError.at(tok.pos, f"unexpected {kind.value}")

    def variable(self, tok: Token) -> Node:
        name = tok.text
        if name.startswith("2a$"):
            # nats-server's special case: an unquoted bcrypt hash is a literal.
            return Node("$" + name, tok.pos)
        for scope in reversed(self.scopes):
            found = scope.get(name)
            if found is not None:
                found.used = True
                return Node(found.value, tok.pos)
        raw = self.state.env.get(name)
        if raw is None:
            self.state.errors.append(
                ConfigError.at(
                    tok.pos,
                    f"variable reference for '{name}' on line {tok.pos.line} can not be found",
                )
            )
            return Node("", tok.pos)
        if name in self.state.env_stack:
            chain = " -> ".join([*self.state.env_stack, name])
            raise ConfigError.at(tok.pos, f"variable reference cycle for '{name}' ({chain})")
        self.state.env_stack.append(name)
        try:
            sub = _parse(f"{name}={raw}", f"<env ${name}>", self.base_dir, self.state)
        except ConfigError as e:
            raise ConfigError.at(
                tok.pos, f"environment variable '{name}' is not a valid value: {e.reason}"
            ) from None
        finally:
            self.state.env_stack.pop()
        return Node(sub.value[name].value, tok.pos)

    def include(self, tok: Token, into: dict[str, Node]) -> None:
        path = os.path.join(self.base_dir, tok.text)
        real = os.path.realpath(path)
        if real in self.state.include_stack or len(self.state.include_stack) > _MAX_INCLUDE_DEPTH:
            raise ConfigError.at(tok.pos, f"include cycle: {tok.text!r} is already being read")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError.at(tok.pos, f"error opening include file: {e}") from None
        self.state.include_stack.append(real)
        try:
            sub = _parse(text, path, os.path.dirname(path), self.state)
        finally:
            self.state.include_stack.pop()
        into.update(sub.value)


def _parse(text: str, file: str, base_dir: str, state: _State) -> Node:
    return _Parser(tokenize(text, file), base_dir, state).top()


def parse_text(
    text: str,
    file: str = "<string>",
    env: Mapping[str, str] | None = None,
    base_dir: str | None = None,
) -> Node:
    """Parse conf ``text``; the result's value is a ``dict[str, Node]``.

    ``env`` defaults to ``os.environ``; ``base_dir`` (for includes) defaults to
    the directory of ``file``. Raises :class:`ConfigErrors`.
    """
    state = _State(os.environ if env is None else env)
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(file)) if not file.startswith("<") else "."
    if not file.startswith("<"):
        state.include_stack.append(os.path.realpath(file))
    try:
        root = _parse(text, file, base_dir, state)
    except ConfigError as e:
        raise ConfigErrors([*state.errors, e]) from None
    if state.errors:
        raise ConfigErrors(state.errors)
    return root


def parse_file(path: str, env: Mapping[str, str] | None = None) -> Node:
    """Read and parse a config file (see :func:`parse_text`)."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigErrors([ConfigError(path, 0, 0, f"error opening config file: {e}")]) from None
    return parse_text(text, path, env)

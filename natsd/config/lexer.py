"""Tokenizer for the NATS configuration format ("NATS conf").

Theory of operation
-------------------
NATS conf is a relaxed JSON/HCL hybrid whose meaning depends on position: the
same characters are a key at the start of an entry and a value after it, and a
newline ends a top-level value but is just whitespace inside an array. So the
lexer is a small recursive-descent walker over the text that knows which of
three places it is in (top level, map body, array body) and emits a flat list
of :class:`Token` s. The parser (``parser.py``) rebuilds the tree from that list
and resolves variables and includes; keeping those out of the lexer means the
lexer never touches the file system or the environment.

Scalars are classified here, the way nats-server's ``conf/lex.go`` does:

* unquoted ``true/false/yes/no/on/off`` (any case) are booleans;
* an unquoted token starting with a digit is an integer (optionally with a size
  suffix: ``k`` = 10^3, ``kb``/``ki``/``kib`` = 2^10, likewise m, g, t, p, e),
  a float, a Zulu datetime, or else a plain string (``127.0.0.1:4222``, ``2s``);
* an unquoted token starting with ``$`` is a variable reference, which the
  parser resolves (the ``$2a$`` bcrypt special case is the parser's too);
* ``"..."`` supports the escapes ``\\t \\n \\r \\" \\\\ \\xHH``; ``'...'`` is raw;
  ``(`` newline ... newline ``)`` is a raw block string.

Syntax errors are not recoverable (the rest of the file cannot be trusted), so
the lexer raises the first one as a :class:`ConfigError` with its position.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import enum
import re
from dataclasses import dataclass

from natsd.config.errors import ConfigError, Pos


class Tok(enum.Enum):
    KEY = "key"
    STRING = "string"
    BOOL = "bool"
    INT = "int"
    FLOAT = "float"
    DATETIME = "datetime"
    VARIABLE = "variable"
    INCLUDE = "include"
    ARRAY_START = "["
    ARRAY_END = "]"
    MAP_START = "{"
    MAP_END = "}"
    EOF = "eof"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Tok
    text: str
    pos: Pos
    value: object = None  # the converted scalar for BOOL/INT/FLOAT/DATETIME/STRING


_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}

# Size suffixes exactly as nats-server's conf/parse.go accepts them.
SIZE_SUFFIXES: dict[str, int] = {"": 1}
for _i, _letter in enumerate("kmgtpe", start=1):
    SIZE_SUFFIXES[_letter] = 1000**_i
    for _bin in ("b", "i", "ib"):
        SIZE_SUFFIXES[_letter + _bin] = 1 << (10 * _i)

_INT_RE = re.compile(r"(-?\d+)([a-zA-Z]*)\Z")
_FLOAT_RE = re.compile(r"-?\d+\.\d+\Z")
_DATE_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_BARE_END = frozenset("\n\r \t;,]}")
_NUMBER_END = _BARE_END | {"#"}
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", '"': '"', "\\": "\\"}


class Lexer:
    """Turns one file's text into tokens. Use :func:`tokenize`."""

    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.i = 0
        self.out: list[Token] = []
        self._nl = [m.start() for m in re.finditer("\n", text)]

    # -- positions and primitives
    def pos(self, i: int | None = None) -> Pos:
        i = self.i if i is None else i
        line = bisect.bisect_left(self._nl, i)
        start = self._nl[line - 1] + 1 if line else 0
        return Pos(self.file, line + 1, i - start + 1)

    def error(self, reason: str, i: int | None = None) -> ConfigError:
        return ConfigError.at(self.pos(i), reason)

    def peek(self, k: int = 0) -> str:
        j = self.i + k
        return self.text[j] if j < len(self.text) else ""

    def emit(self, kind: Tok, text: str, start: int, value: object = None) -> None:
        self.out.append(Token(kind, text, self.pos(start), value))

    def skip_comment(self) -> bool:
        """Skip a ``#`` or ``//`` comment up to (not including) the newline."""
        c = self.peek()
        if c == "#" or (c == "/" and self.peek(1) == "/"):
            end = self.text.find("\n", self.i)
            self.i = len(self.text) if end < 0 else end
            return True
        return False

    def skip_blank(self, newlines: bool) -> None:
        while True:
            c = self.peek()
            if c in (" ", "\t") or (newlines and c in ("\n", "\r")):
                self.i += 1
            elif not self.skip_comment():
                return

    # -- structure
    def run(self) -> list[Token]:
        self.body(closing="")
        self.emit(Tok.EOF, "", self.i)
        return self.out

    def body(self, closing: str) -> None:
        """Entries of the top level (``closing`` empty) or of a ``{}`` map."""
        while True:
            self.skip_blank(newlines=True)
            c = self.peek()
            if c == "":
                if closing:
                    raise self.error("Unexpected EOF, expected '}'.")
                return
            if c == closing:
                self.emit(Tok.MAP_END, c, self.i)
                self.i += 1
                return
            if c in ";," and not closing:
                self.i += 1  # nats-server tolerates stray terminators at top level
                continue
            if c in "=:":
                raise self.error(f"Unexpected key separator '{c}'.")
            if c == "]" or c == "}":
                raise self.error(f"Unexpected '{c}'.")
            self.entry()
            self.value_end(closing)

    def entry(self) -> None:
        start = self.i
        key = self.key()
        if key.lower() == "include" and self.peek() in (" ", "\t"):
            self.include()
            return
        self.emit(Tok.KEY, key, start)
        # Whitespace (even newlines) may sit between a key and its value; a
        # separator is optional. After that only blanks until the value.
        while self.peek().isspace():
            self.i += 1
        if self.peek() in ("=", ":"):
            self.i += 1
        self.skip_blank(newlines=False)
        self.value()

    def key(self) -> str:
        c = self.peek()
        if c in ('"', "'"):
            end = self.text.find(c, self.i + 1)
            if end < 0:
                raise self.error("Unexpected EOF in quoted key.")
            key = self.text[self.i + 1 : end]
            self.i = end + 1
            return key
        start = self.i
        while (c := self.peek()) and not c.isspace() and c not in "=:{[":
            self.i += 1
        return self.text[start : self.i]

    def include(self) -> None:
        self.skip_blank(newlines=False)
        start = self.i
        c = self.peek()
        if c in ('"', "'"):
            end = self.text.find(c, self.i + 1)
            if end < 0:
                raise self.error("Unexpected EOF in include path.")
            path = self.text[self.i + 1 : end]
            self.i = end + 1
        elif c == "" or c in "\n\r[{(-" or c.isdigit():
            raise self.error("Expected include value")
        else:
            while (c := self.peek()) and c not in "\n\r \t;}":
                self.i += 1
            path = self.text[start : self.i]
        self.emit(Tok.INCLUDE, path, start)

    def value_end(self, closing: str) -> None:
        """After a value: blanks/comments, then a terminator or the closing brace."""
        self.skip_blank(newlines=False)
        c = self.peek()
        if c in ("\n", "\r", ";", ","):
            self.i += 1
        elif c == "":
            if closing:
                raise self.error("Unexpected EOF, expected '}'.")
        elif c != closing or not closing:
            what = "a new line, comment or EOF" if not closing else "',' or '}'"
            got = repr(c) if c else "EOF"
            raise self.error(f"Expected a value to end with {what}, but got {got} instead.")

    def array(self) -> None:
        self.emit(Tok.ARRAY_START, "[", self.i)
        self.i += 1
        while True:
            self.skip_blank(newlines=True)
            c = self.peek()
            if c == "]":
                self.emit(Tok.ARRAY_END, "]", self.i)
                self.i += 1
                return
            if c == ",":
                raise self.error("Unexpected array value terminator ','.")
            if c == "":
                raise self.error("Unexpected EOF, expected ']'.")
            self.value()
            self.skip_blank(newlines=False)
            c = self.peek()
            if c in (",", "\n", "\r"):
                self.i += 1
            elif c != "]":
                got = repr(c) if c else "EOF"
                raise self.error(f"Expected ',' or ']' after an array value, but got {got}.")

    # -- values
    def value(self) -> None:
        c = self.peek()
        start = self.i
        if c == "[":
            self.array()
        elif c == "{":
            self.emit(Tok.MAP_START, "{", start)
            self.i += 1
            self.body(closing="}")
        elif c == "'":
            end = self.text.find("'", start + 1)
            if end < 0:
                raise self.error("Unexpected EOF in single-quoted string.")
            s = self.text[start + 1 : end]
            self.i = end + 1
            self.emit(Tok.STRING, s, start, s)
        elif c == '"':
            self.i += 1
            s = self.escaped(stop='"')
            self.emit(Tok.STRING, s, start, s)
        elif c == "(":
            self.block()
        elif c == "-" or c.isdigit():
            self.number()
        elif c == ".":
            raise self.error("Floats must start with a digit")
        elif c in ("", "\n", "\r"):
            raise self.error("Expected value but found new line" if c else "Expected value")
        else:
            self.bare()

    def escaped(self, stop: str) -> str:
        """Read up to ``stop`` (consumed) applying backslash escapes."""
        parts: list[str] = []
        while True:
            c = self.peek()
            if c == "":
                raise self.error("Unexpected EOF in string.")
            if c == stop:
                self.i += 1
                return "".join(parts)
            if c == "\\":
                parts.append(self.escape())
                continue
            parts.append(c)
            self.i += 1

    def escape(self) -> str:
        nxt = self.peek(1)
        if nxt in _ESCAPES:
            self.i += 2
            return _ESCAPES[nxt]
        if nxt == "x":
            digits = self.text[self.i + 2 : self.i + 4]
            if len(digits) == 2 and all(d in "0123456789abcdefABCDEF" for d in digits):
                self.i += 4
                return chr(int(digits, 16))
            raise self.error(f"Expected two hexadecimal digits after '\\x', but got '{digits}'")
        raise self.error(
            f"Invalid escape character '{nxt}'. Only the following escape characters "
            'are allowed: \\xXX, \\t, \\n, \\r, \\", \\\\.'
        )

    def block(self) -> None:
        start = self.i
        end = self.text.find("\n)", start)
        while end >= 0 and self.text[end + 2 : end + 3] not in ("", "\n", "\r"):
            end = self.text.find("\n)", end + 1)
        if end < 0:
            raise self.error("Unterminated block string: expected ')' on a line by itself.")
        s = self.text[start + 1 : end + 1]
        self.i = end + 2
        self.emit(Tok.STRING, s, start, s)

    def number(self) -> None:
        start = self.i
        while (c := self.peek()) and c not in _NUMBER_END:
            self.i += 1
        text = self.text[start : self.i]
        if m := _INT_RE.match(text):
            mult = SIZE_SUFFIXES.get(m.group(2).lower())
            if mult is not None:
                self.emit(Tok.INT, text, start, int(m.group(1)) * mult)
                return
        if _FLOAT_RE.match(text):
            self.emit(Tok.FLOAT, text, start, float(text))
        elif _DATE_RE.match(text):
            when = _dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC)
            self.emit(Tok.DATETIME, text, start, when)
        elif text.startswith("-"):
            raise self.error(f"Invalid number {text!r}", start)
        else:
            # 127.0.0.1:4222, 2s, 4222x: nats-server reads these as strings.
            self.emit(Tok.STRING, text, start, text)

    def bare(self) -> None:
        start = self.i
        parts: list[str] = []
        escaped = False
        while (c := self.peek()) and c not in _BARE_END:
            if c == "\\":
                parts.append(self.escape())
                escaped = True
                continue
            parts.append(c)
            self.i += 1
        s = "".join(parts)
        if not s:
            raise self.error("Expected value", start)
        if not escaped and s.lower() in _BOOLS:
            self.emit(Tok.BOOL, s, start, _BOOLS[s.lower()])
        elif not escaped and s.startswith("$"):
            if len(s) == 1:
                raise self.error("Empty variable reference '$'", start)
            self.emit(Tok.VARIABLE, s[1:], start)
        else:
            self.emit(Tok.STRING, s, start, s)


def tokenize(text: str, file: str) -> list[Token]:
    """Tokens of ``text``; raises :class:`ConfigError` on the first syntax error."""
    return Lexer(text, file).run()

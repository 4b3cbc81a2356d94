"""NATS wire-protocol helpers for the load generator.

Two very different read paths exist on purpose:

* Throughput subscribers never parse.  Every payload the generator publishes is
  made of ``x`` bytes and every subject is chosen by the generator, so the
  4-byte sequence ``MSG `` can only occur at the start of a ``MSG`` frame.
  :class:`FrameCounter` counts those (and ``PING`` / ``-ERR``) with
  ``bytearray.count`` over the receive buffer; the last few bytes of each read
  are carried in front of the next one so a pattern split across two reads is
  counted exactly once (the carry is shorter than any pattern, so nothing is
  counted twice).
* Low-rate roles (publishers waiting for PONG, request/reply) use
  :class:`Parser`, a small incremental parser that yields whole operations.

Unit parsers accept the spellings people type on a command line: ``16``,
``1k``, ``64KiB``, ``1M``; ``500ms``, ``10s``, ``2m``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

CRLF = b"\r\n"
MAX_PAYLOAD = 64 * 1024
CHUNK_TARGET = 64 * 1024
# Patterns FrameCounter looks for.  All are 4 bytes so that a carry of 3 both
# catches every split occurrence and can never hold a whole one (no double
# counting).  Subjects containing "MSG ", "PING" or "-ERR" would confuse it;
# the generator picks its own subjects.
_PAT_MSG = b"MSG "
_PAT_PING = b"PING"
_PAT_ERR = b"-ERR"
CARRY = 3

_UNIT_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*$")
_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024,
               "m": 1024 * 1024, "mb": 1024 * 1024, "mib": 1024 * 1024}
_COUNT_UNITS = {"": 1, "k": 1000, "m": 1_000_000, "g": 1_000_000_000}
_DUR_UNITS = {"": 1.0, "s": 1.0, "ms": 0.001, "us": 1e-6, "m": 60.0, "min": 60.0}


def _parse_unit(text: str, units: dict[str, float] | dict[str, int], what: str) -> float:
    m = _UNIT_RE.match(str(text))
    if not m or m.group(2).lower() not in units:
        raise ValueError(f"bad {what}: {text!r}")
    return float(m.group(1)) * units[m.group(2).lower()]


def parse_size(text: str | int) -> int:
    """Bytes: ``16``, ``1k`` (=1024), ``64KiB``."""
    return int(_parse_unit(str(text), _SIZE_UNITS, "size"))


def parse_count(text: str | int) -> int:
    """Counts use decimal multipliers: ``100k`` = 100000, ``1M`` = 1000000."""
    return int(_parse_unit(str(text), _COUNT_UNITS, "count"))


def parse_duration(text: str | float) -> float:
    """Seconds: ``500ms``, ``10s``, ``2m``; a bare number is seconds."""
    return _parse_unit(str(text), _DUR_UNITS, "duration")


def human_size(n: int) -> str:
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}KB"
    return f"{n}B"


def payload(size: int) -> bytes:
    # 'x' bytes keep the payload free of "MSG ", "PING" and "-ERR".
    return b"x" * size


def pub_frame(subject: str, size: int, reply: str | None = None) -> bytes:
    head = f"PUB {subject} {reply} {size}\r\n" if reply else f"PUB {subject} {size}\r\n"
    return head.encode() + payload(size) + CRLF


def build_chunk(frame: bytes, max_frames: int | None = None,
                target: int = CHUNK_TARGET) -> tuple[bytes, int]:
    """Repeat ``frame`` to about ``target`` bytes; returns (chunk, frame count).

    Publishers write whole chunks, so one ``send`` moves thousands of small
    messages and the per-message cost on the generator side is ~zero.
    """
    n = max(1, target // len(frame))
    if max_frames is not None:
        n = max(1, min(n, max_frames))
    return frame * n, n


def connect_frame(*, user: str | None = None, password: str | None = None,
                  token: str | None = None, name: str = "natsd-perf",
                  tls: bool = False) -> bytes:
    opts: dict[str, object] = {
        "verbose": False, "pedantic": False, "tls_required": tls, "name": name,
        "lang": "python-perf", "version": "0.1", "protocol": 1, "echo": True,
        "headers": False, "no_responders": False,
    }
    if user is not None:
        opts["user"] = user
        opts["pass"] = password or ""
    if token is not None:
        opts["auth_token"] = token
    return b"CONNECT " + json.dumps(opts, separators=(",", ":")).encode() + CRLF


def sub_frame(subject: str, sid: int | str, queue: str | None = None) -> bytes:
    if queue:
        return f"SUB {subject} {queue} {sid}\r\n".encode()
    return f"SUB {subject} {sid}\r\n".encode()


class FrameCounter:
    """Counts MSG frames, server PINGs and -ERR lines in a byte stream.

    The caller owns one receive buffer per process with ``CARRY`` bytes of
    headroom; :meth:`prime` writes this connection's carried tail into the
    headroom before ``recv_into`` fills the rest, and :meth:`feed` counts over
    carry + new data.  Only the tail (3 bytes) is per-connection state, which
    is what lets ten thousand idle connections share one 64 KiB buffer.
    """

    __slots__ = ("_tail", "errors", "msgs", "nbytes", "pings")

    def __init__(self) -> None:
        self.msgs = 0
        self.nbytes = 0
        self.pings = 0
        self.errors: list[str] = []
        self._tail = b"\0" * CARRY

    def prime(self, buf: bytearray) -> None:
        buf[0:CARRY] = self._tail

    def feed(self, buf: bytearray, n: int) -> tuple[int, int]:
        """Account for ``n`` new bytes at ``buf[CARRY:]``; returns (msgs, pings)."""
        end = CARRY + n
        msgs = buf.count(_PAT_MSG, 0, end)
        pings = buf.count(_PAT_PING, 0, end)
        if buf.find(_PAT_ERR, 0, end) >= 0:
            self._collect_errors(bytes(buf[0:end]))
        self._tail = bytes(buf[end - CARRY:end])
        self.msgs += msgs
        self.nbytes += n
        self.pings += pings
        return msgs, pings

    def _collect_errors(self, data: bytes) -> None:
        for m in re.finditer(rb"-ERR ([^\r\n]*)", data):
            if len(self.errors) < 20:
                self.errors.append(m.group(1).decode("latin-1"))


@dataclass(slots=True)
class Op:
    kind: str  # "MSG", "PING", "PONG", "INFO", "+OK", "-ERR"
    subject: str = ""
    sid: str = ""
    reply: str | None = None
    data: bytes = b""


class Parser:
    """Incremental parser for the server-to-client protocol (no headers)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> Iterator[Op]:
        self._buf += data
        buf = self._buf
        pos = 0
        while True:
            nl = buf.find(CRLF, pos)
            if nl < 0:
                break
            line = bytes(buf[pos:nl])
            if line.startswith(b"MSG "):
                parts = line.split()
                size = int(parts[-1])
                start = nl + 2
                if len(buf) < start + size + 2:
                    break
                reply = parts[3].decode() if len(parts) == 5 else None
                yield Op("MSG", parts[1].decode(), parts[2].decode(), reply,
                         bytes(buf[start:start + size]))
                pos = start + size + 2
                continue
            pos = nl + 2
            if line == b"PING":
                yield Op("PING")
            elif line == b"PONG":
                yield Op("PONG")
            elif line.startswith(b"INFO "):
                yield Op("INFO", data=line[5:])
            elif line.startswith(b"-ERR"):
                yield Op("-ERR", data=line[5:].strip())
            elif line == b"+OK":
                yield Op("+OK")
        del buf[:pos]

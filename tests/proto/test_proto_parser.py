"""Parser tests: every input is fed whole, byte by byte and at Hypothesis-chosen
split points, and all three must give the same ops."""

from __future__ import annotations

import pytest
from corpus.protocol_corpus import CASES, CONNECT_PREFIX, MAX_CONTROL_LINE, MAX_PAYLOAD
from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.proto.connect import ConnectOptions
from natsd.proto.errors import ClosedReason, ProtocolError
from natsd.proto.parser import (
    OP_CONNECT,
    OP_ERROR,
    OP_HPUB,
    OP_PING,
    OP_PUB,
    OP_SUB,
    Parser,
)


def run(chunks: list[bytes], **kw: object) -> list[tuple]:
    p = Parser(**kw)  # type: ignore[arg-type]
    ops: list[tuple] = []
    for c in chunks:
        ops += p.feed(c)
    return ops


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    out, last = [], 0
    for c in points:
        out.append(data[last:c])
        last = c
    out.append(data[last:])
    return out


def three_ways(data: bytes, cuts: list[int], **kw: object) -> list[tuple]:
    whole = run([data], **kw)
    assert run([data[i : i + 1] for i in range(len(data))], **kw) == whole
    assert run(split_at(data, cuts), **kw) == whole
    return whole


def corpus_ops(data: bytes, cuts: list[int]) -> list[tuple]:
    ops = three_ways(CONNECT_PREFIX + data, cuts, max_control_line=MAX_CONTROL_LINE,
                     max_payload=MAX_PAYLOAD)
    assert ops[0] == (OP_CONNECT, CONNECT_PREFIX[8:-2])
    return ops[1:]


@pytest.mark.parametrize(("name", "data", "expected"), CASES, ids=[c[0] for c in CASES])
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=6))
@settings(max_examples=25, deadline=None)
def test_corpus(name: str, data: bytes, expected: list[tuple], cuts: list[int]) -> None:
    assert corpus_ops(data, cuts) == expected


def test_corpus_concatenated_well_formed() -> None:
    good = [(d, e) for _, d, e in CASES if not any(op[0] in (OP_ERROR, 8) for op in e)]
    data = b"".join(d for d, _ in good)
    expected = [op for _, e in good for op in e]
    assert corpus_ops(data, [7, 100, 101, 555]) == expected


FRAMES = st.sampled_from([
    b"PUB foo 2\r\nhi\r\n", b"PUB foo.bar reply.x 5\r\nhello\r\n", b"PING\r\n", b"PONG\r\n",
    b"SUB foo.* q 12\r\n", b"UNSUB 12 3\r\n", b"HPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
    b"PUB big 300\r\n" + b"z" * 300 + b"\r\n", b"+OK\r\n", b"pub foo 0\r\n\r\n",
])


@given(frames=st.lists(FRAMES, max_size=30), cuts=st.lists(st.integers(0, 20_000), max_size=12))
@settings(max_examples=150, deadline=None)
def test_frame_streams_split_anywhere(frames: list[bytes], cuts: list[int]) -> None:
    data = CONNECT_PREFIX + b"".join(frames)
    ops = three_ways(data, cuts)
    assert len(ops) == 1 + sum(1 for f in frames if f != b"+OK\r\n")
    assert all(op[0] != OP_ERROR for op in ops)


@given(data=st.binary(max_size=300), cuts=st.lists(st.integers(0, 400), max_size=5))
@settings(max_examples=300, deadline=None)
def test_fuzz_garbage_only_ops_or_final_error(data: bytes, cuts: list[int]) -> None:
    ops = three_ways(data, cuts, max_control_line=32, max_payload=64)
    for op in ops[:-1]:
        assert op[0] != OP_ERROR
    if ops and ops[-1][0] == OP_ERROR:
        assert isinstance(ops[-1][1], ProtocolError)


@given(body=st.lists(st.sampled_from([b"PUB", b"SUB", b"HPUB", b" ", b"\t", b"a", b"1", b"\r",
                                      b"\n", b"PING", b"-ERR", b"CONNECT", b"{}", b"2", b"INFO"]),
                     max_size=40),
       cuts=st.lists(st.integers(0, 400), max_size=5))
@settings(max_examples=300, deadline=None)
def test_fuzz_protocol_like_tokens(body: list[bytes], cuts: list[int]) -> None:
    ops = three_ways(CONNECT_PREFIX + b"".join(body), cuts, max_control_line=24)
    assert all(op[0] != OP_ERROR for op in ops[:-1])


def test_dead_after_error() -> None:
    p = Parser()
    assert p.feed(b"PING\r\nZZZ") == [(OP_PING,), (OP_ERROR, ProtocolError("Unknown Protocol Operation"))]
    assert p.dead
    assert p.feed(b"PING\r\n") == []


def test_unknown_op_detected_before_newline() -> None:
    assert Parser().feed(b"PUX")[-1][0] == OP_ERROR
    assert Parser().feed(b"PU") == []


# -- limits on incomplete input ------------------------------------------------

MCL_ERR = ProtocolError("maximum control line exceeded", reason=ClosedReason.MaxControlLineExceeded)


@pytest.mark.parametrize("op", [b"PUB ", b"SUB ", b"CONNECT ", b"UNSUB ", b"-ERR ", b"INFO "])
def test_incomplete_line_over_limit_fails_without_newline(op: bytes) -> None:
    p = Parser(max_control_line=100)
    assert p.feed(op + b"x" * 100) == []
    assert p.pending_bytes() <= 100 + len(op)
    assert p.feed(b"x") == [(OP_ERROR, MCL_ERR)]


def test_garbage_fails_on_first_byte_without_buffering() -> None:
    p = Parser(max_control_line=50)
    assert p.feed(b"y") == [(OP_ERROR, ProtocolError("Unknown Protocol Operation"))]
    assert p.pending_bytes() == 0


def test_trickled_connect_is_bounded() -> None:
    p = Parser(max_control_line=50)
    assert p.feed(b"CONNECT {") == []
    ops: list[tuple] = []
    sent = 0
    while not ops and sent < 200:
        ops = p.feed(b"a")
        sent += 1
        assert p.pending_bytes() <= 60
    assert ops == [(OP_ERROR, MCL_ERR)]
    assert sent == 50  # the 51st argument byte crosses the limit


def test_blank_runs_and_ping_tail_are_not_buffered() -> None:
    p = Parser(max_control_line=16)
    assert p.feed(b"PUB") == []
    for _ in range(10):
        assert p.feed(b" " * 1000) == []
    assert p.pending_bytes() <= 4
    assert p.feed(b"foo 1\r\nx\r\nPING") == [(OP_PUB, b"foo", None, b"x")]
    assert p.feed(b"z" * 10_000) == []
    assert p.pending_bytes() == 0
    assert p.feed(b"\r\n") == [(OP_PING,)]


def test_max_payload_checked_before_payload_arrives() -> None:
    p = Parser(max_payload=10)
    assert p.feed(b"PUB a 11\r\n") == [
        (OP_ERROR, ProtocolError("Maximum Payload Violation", reason=ClosedReason.MaxPayloadExceeded))
    ]


def test_unlimited_payload_and_set_limits() -> None:
    p = Parser(max_payload=-1)
    assert p.feed(b"PUB a 3\r\nabc\r\n") == [(OP_PUB, b"a", None, b"abc")]
    p.set_limits(max_payload=2)
    assert p.feed(b"PUB a 3\r\n")[0][0] == OP_ERROR  # cached line must be re-checked


def test_pending_bytes_tracks_partial_payload() -> None:
    p = Parser()
    assert p.feed(b"PUB a 10\r\n12345") == []
    assert p.pending_bytes() == 5
    assert p.feed(b"67890\r") == []
    assert p.feed(b"\n") == [(OP_PUB, b"a", None, b"1234567890")]
    assert p.pending_bytes() == 0


# -- header negotiation ---------------------------------------------------------

SILENT = ProtocolError(None)
HPUB = b"HPUB a 12 12\r\nNATS/1.0\r\n\r\n\r\n"


@pytest.mark.parametrize(
    ("server", "connect", "ok"),
    [(True, b'{"headers":true}', True), (True, b'{"headers":false}', False),
     (True, b"{}", False), (False, b'{"headers":true}', False)],
)
def test_hpub_requires_negotiated_headers(server: bool, connect: bytes, ok: bool) -> None:
    ops = three_ways(b"CONNECT " + connect + b"\r\n" + HPUB, [9, 30], headers=server)
    assert ops[-1] == ((OP_HPUB, b"a", None, 12, b"NATS/1.0\r\n\r\n") if ok else (OP_ERROR, SILENT))


def test_hpub_before_connect_and_second_connect() -> None:
    assert Parser().feed(HPUB) == [(OP_ERROR, SILENT)]
    p = Parser()
    p.feed(b'CONNECT {"headers":true}\r\n' + HPUB)
    # A later CONNECT applies on top of the first one: headers stay on.
    assert p.feed(b"CONNECT {}\r\n" + HPUB)[-1][0] == OP_HPUB
    assert p.feed(b'CONNECT {"headers":false}\r\n' + HPUB)[-1] == (OP_ERROR, SILENT)


def test_worker_parser_inherits_connect() -> None:
    p = Parser(connect=ConnectOptions(headers=True))
    assert p.feed(HPUB)[0][0] == OP_HPUB


# -- feed_first (supervisor hand-off) --------------------------------------------

@given(cuts=st.lists(st.integers(0, 200), max_size=4))
def test_feed_first_returns_rest_untouched(cuts: list[int]) -> None:
    rest_wire = b"SUB a 1\r\nPUB a 3\r\nabc\r\nPI"
    data = b"+OK\r\nCONNECT {}\r\n" + rest_wire
    p = Parser()
    first: list[tuple] = []
    rest = b""
    for chunk in split_at(data, cuts):
        if first:
            rest += chunk
            continue
        first, rest = p.feed_first(chunk)
    assert first == [(OP_CONNECT, b"{}")]
    assert rest == rest_wire
    w = Parser()
    assert w.feed(rest) == [(OP_SUB, b"a", None, b"1"), (OP_PUB, b"a", None, b"abc")]


def test_accepts_bytearray_and_memoryview() -> None:
    buf = bytearray(b"PUB a 1\r\nx\r\n")
    p = Parser()
    ops = p.feed(memoryview(buf)[:5]) + p.feed(buf[5:])
    buf[:] = b"\x00" * len(buf)  # the caller reuses its buffer
    assert ops == [(OP_PUB, b"a", None, b"x")]
    assert type(ops[0][3]) is bytes

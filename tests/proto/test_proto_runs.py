"""PUB runs: frames sharing one control line are grouped, nothing else changes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.proto.parser import OP_PUB, OP_PUB_RUN, Parser


def expand(ops: list[tuple]) -> list[tuple]:  # type: ignore[type-arg]
    out: list[tuple] = []  # type: ignore[type-arg]
    for op in ops:
        if op[0] == OP_PUB_RUN:
            out.extend((OP_PUB, op[1], op[2], p) for p in op[3])
        else:
            out.append(op)
    return out


frame = st.sampled_from(
    [b"PUB a 2\r\nhi\r\n", b"PUB a 2\r\nyo\r\n", b"PUB b 2\r\nhi\r\n", b"PUB a r 2\r\nhi\r\n", b"PING\r\n",
     b"SUB a 1\r\n", b"HPUB a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", b"PUB a 3\r\nabc\r\n"]
)


@settings(max_examples=200, deadline=None)
@given(frames=st.lists(frame, max_size=40), cut=st.integers(min_value=0, max_value=400))
def test_runs_expand_to_the_same_ops(frames: list[bytes], cut: int) -> None:
    data = b'CONNECT {"headers":true}\r\n' + b"".join(frames)
    cut = min(cut, len(data))
    plain = Parser()
    grouped = Parser()
    grouped._runs = True
    want = plain.feed(data[:cut]) + plain.feed(data[cut:])
    got = grouped.feed(data[:cut]) + grouped.feed(data[cut:])
    assert expand(got) == want


def test_consecutive_identical_lines_form_one_run() -> None:
    p = Parser()
    p._runs = True
    ops = p.feed(b"PUB a 1\r\nx\r\nPUB a 1\r\ny\r\nPUB a 1\r\nz\r\nPUB b 1\r\nw\r\n")
    assert ops == [(OP_PUB_RUN, b"a", None, [b"x", b"y", b"z"]), (OP_PUB_RUN, b"b", None, [b"w"])]

"""parse_connect / validate_connect, go_quote and -ERR helpers, encoders."""

from __future__ import annotations

import json
import re

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from natsd.proto.connect import ConnectOptions, parse_connect, validate_connect
from natsd.proto.errors import (
    ERR_INVALID_PROTOCOL,
    ERR_NO_RESPONDERS_HEADERS,
    ClosedReason,
    ProtocolError,
    go_quote,
    pub_reply_violation,
    pub_violation,
    sub_violation,
)
from natsd.proto.writer import hmsg_header, info_line, msg_header, no_responders_hmsg

# -- CONNECT (expectations probed on nats-server 2.15.1) ---------------------------


def test_defaults_and_empty() -> None:
    for doc in (b"{}", b"null", b" {} ", b'{"verbose":null}'):
        c = parse_connect(doc)
        assert (c.verbose, c.pedantic, c.echo, c.headers, c.protocol) == (True, True, True, False, 0)


def test_fields_and_pass_key() -> None:
    c = parse_connect(b'{"user":"u","pass":"p","auth_token":"t","protocol":1,"headers":true,'
                      b'"no_responders":true,"name":"n","echo":false,"x":[1,{"y":2}]}')
    assert (c.user, c.password, c.auth_token, c.protocol, c.headers, c.echo, c.name) == (
        "u", "p", "t", 1, True, False, "n")


def test_keys_fold_case_and_last_wins() -> None:
    assert parse_connect(b'{"Verbose":false}').verbose is False
    assert parse_connect(b'{"verbose":true,"verbose":false}').verbose is False


@pytest.mark.parametrize("doc", [
    b"{bad", b"", b"[]", b'"x"', b"1", b"{} x", b'{"verbose":"yes"}', b'{"protocol":"1"}',
    b'{"protocol":1.5}', b'{"name":5}', b'{"echo":1}', b'{"protocol":true}',
    b'{"protocol":99999999999999999999}', b'{"import":{"allow":[1]}}', b'{"export":"x"}',
])
def test_rejected_like_go(doc: bytes) -> None:
    with pytest.raises(ProtocolError) as ei:
        parse_connect(doc)
    assert ei.value.text is None and ei.value.close
    assert ei.value.wire() == b""


def test_invalid_utf8_becomes_replacement_per_byte() -> None:
    assert parse_connect(b'{"user":"a\xff\xfeb"}').user == "a\ufffd\ufffdb"


def test_second_connect_applies_on_top() -> None:
    first = parse_connect(b'{"verbose":false,"headers":true}')
    second = parse_connect(b'{"name":"x"}', base=first)
    assert (second.verbose, second.headers, second.name) == (False, True, "x")
    assert first.name is None


def test_forbidden() -> None:
    assert parse_connect(b'{"account":"A"}').forbidden
    assert parse_connect(b'{"new_account":true}').forbidden
    assert not parse_connect(b'{"new_account":false,"account":""}').forbidden


def test_validate() -> None:
    assert validate_connect(ConnectOptions(protocol=1)) is None
    for proto in (-1, 2):
        err = validate_connect(ConnectOptions(protocol=proto))
        assert err is not None and err.text == ERR_INVALID_PROTOCOL
        assert err.reason is ClosedReason.BadClientProtocolVersion
    err = validate_connect(ConnectOptions(no_responders=True))
    assert err is not None and err.wire() == b"-ERR 'no responders requires headers support'\r\n"
    assert validate_connect(ConnectOptions(no_responders=True, headers=True)) is None
    err = validate_connect(ConnectOptions(no_responders=True, headers=True), server_headers=False)
    assert err is not None and err.text == ERR_NO_RESPONDERS_HEADERS


@given(st.dictionaries(st.sampled_from(["verbose", "echo", "headers", "pedantic"]), st.booleans()))
def test_bool_roundtrip(d: dict[str, bool]) -> None:
    c = parse_connect(json.dumps(d).encode())
    for k, v in d.items():
        assert getattr(c, k) is v


# -- go_quote -----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "quoted"), [
    (b"foo.bar", '"foo.bar"'),
    (b'a"b\\c', '"a\\"b\\\\c"'),
    (b"\x07\x08\x0c\n\r\t\x0b", '"\\a\\b\\f\\n\\r\\t\\v"'),
    (b"\x00\x1f\x7f", '"\\x00\\x1f\\x7f"'),
    ("é.日本".encode(), '"é.日本"'),
    (b"\xff\xfe", '"\\xff\\xfe"'),
    (b"\xe2\x82", '"\\xe2\\x82"'),
    (b"\xed\xa0\x80", '"\\xed\\xa0\\x80"'),  # UTF-8 encoded surrogate is invalid in Go
    ("\u00a0\u2028\u00ad".encode(), '"\\u00a0\\u2028\\u00ad"'),
    ("\U000e0001".encode(), '"\\U000e0001"'),
    ("\U0001f600".encode(), '"\U0001f600"'),
])
def test_go_quote(raw: bytes, quoted: str) -> None:
    assert go_quote(raw) == quoted
    assert go_quote(raw.decode("utf-8", "surrogateescape")) == quoted


@given(st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e)))
def test_go_quote_printable_ascii_matches_json_rules(s: str) -> None:
    # For printable ASCII Go and JSON quoting agree except for '/' handling,
    # which neither escapes.
    assert go_quote(s) == json.dumps(s)


def test_violation_lines() -> None:
    assert pub_violation(b"foo") == b"-ERR 'Permissions Violation for Publish to \"foo\"'\r\n"
    assert pub_reply_violation("_R_.x") == (
        b"-ERR 'Permissions Violation for Publish with Reply of \"_R_.x\"'\r\n")
    assert sub_violation(b"a", b"q") == (
        b"-ERR 'Permissions Violation for Subscription to \"a\" using queue \"q\"'\r\n")
    assert sub_violation("a\n") == b"-ERR 'Permissions Violation for Subscription to \"a\\n\"'\r\n"


def test_closed_reason_text() -> None:
    assert ClosedReason.SlowConsumerPendingBytes.text == "Slow Consumer (Pending Bytes)"
    assert ClosedReason.ClientClosed.text == "Client Closed"
    assert len({r.text for r in ClosedReason}) == len(ClosedReason)


# -- writer ---------------------------------------------------------------------------

def test_msg_headers() -> None:
    assert msg_header(b"a", b"1", None, 2) == b"MSG a 1 2\r\n"
    assert msg_header(b"a", b"1", b"r", 2) == b"MSG a 1 r 2\r\n"
    assert hmsg_header(b"a", b"1", None, 12, 14) == b"HMSG a 1 12 14\r\n"
    assert hmsg_header(b"a", b"1", b"r", 12, 14) == b"HMSG a 1 r 12 14\r\n"


@given(st.from_regex(re.compile(rb"\A[a-z0-9.]{1,40}\Z")))
def test_no_responders_sizes(subject: bytes) -> None:
    wire = no_responders_hmsg(b"rep", b"7", subject)
    head, rest = wire.split(b"\r\n", 1)
    _, _, _, hdr, total = head.split(b" ")
    assert int(hdr) == int(total) == 32 + len(subject) == len(rest) - 2
    assert rest == b"NATS/1.0 503\r\nNats-Subject: " + subject + b"\r\n\r\n\r\n"


def test_info_line_go_escapes() -> None:
    line = info_line({"server_name": "a<b>&c\u2028\"", "port": 1, "headers": True})
    assert line == (b'INFO {"server_name":"a\\u003cb\\u003e\\u0026c\\u2028\\"",'
                    b'"port":1,"headers":true} \r\n')
    assert msgspec.json.decode(line[5:-3])["server_name"] == "a<b>&c\u2028\""


@pytest.mark.parametrize("depth", [400, 990, 1500, 2000])
def test_deeply_nested_connect_is_malformed_never_a_crash(depth: int) -> None:
    """A CONNECT nested past the decoder's recursion limit is refused like
    malformed JSON (close, no -ERR); a shallower one is parsed."""
    from natsd.proto.errors import ProtocolError

    arg = b'{"verbose":false,"x":' + b"[" * depth + b"]" * depth + b"}"
    try:
        opts = parse_connect(arg)
    except ProtocolError as e:
        assert e.close and e.text is None
    else:
        assert opts.verbose is False

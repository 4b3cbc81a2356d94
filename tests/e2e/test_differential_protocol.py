"""Raw-protocol scripts: natsd must answer exactly as nats-server does.

Every script runs against both servers (started once per module); the
transcripts, with INFO bodies normalised, must be identical line for line,
including whether the server closed the connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from rawproto import transcript
from servers import Server, running

pytestmark = [pytest.mark.e2e, pytest.mark.differential]

C = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
CH = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"no_responders":true}\r\n'

SCRIPTS: dict[str, bytes] = {
    "connect-verbose-default": b"CONNECT {}\r\nPING\r\n",
    "connect-verbose-ok": b'CONNECT {"verbose":true}\r\nSUB foo 1\r\nPUB foo 2\r\nhi\r\nUNSUB 1\r\nPING\r\n',
    "pub-sub": C + b"SUB foo 1\r\nPUB foo 5\r\nhello\r\nPING\r\n",
    "pub-reply": C + b"SUB foo 1\r\nPUB foo bar 2\r\nhi\r\nPING\r\n",
    "wildcards": C + b"SUB a.* 1\r\nSUB a.> 2\r\nSUB > 3\r\nPUB a.b 1\r\nx\r\nPUB a.b.c 1\r\ny\r\nPING\r\n",
    "lowercase-and-tabs": C + b"sub\tfoo\t 1\r\npub foo  3\r\nabc\r\nPing\r\n",
    "queue-and-plain": C + b"SUB q g 1\r\nSUB q 2\r\nPUB q 1\r\nx\r\nPING\r\n",
    "unsub-max": C + b"SUB foo 1\r\nUNSUB 1 2\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\nPUB foo 1\r\nc\r\nPING\r\n",
    "unsub-unknown": C + b"UNSUB 99\r\nPING\r\n",
    "dup-sid": C + b"SUB foo 1\r\nSUB bar 1\r\nPUB foo 1\r\na\r\nPUB bar 1\r\nb\r\nPING\r\n",
    "empty-payload": C + b"SUB foo 1\r\nPUB foo 0\r\n\r\nPING\r\n",
    "hpub-hmsg": CH + b"SUB h 1\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
    "connect-lone-surrogate-name": b'CONNECT {"verbose":false,"name":"\\ud800"}\r\nPING\r\n',
    "connect-huge-number-unknown-key": b'CONNECT {"verbose":false,"zz":1e999}\r\nPING\r\n',
    "connect-huge-number-protocol": b'CONNECT {"verbose":false,"protocol":1e999}\r\nPING\r\n',
    "connect-nan-literal": b'CONNECT {"verbose":false,"zz":NaN}\r\nPING\r\n',
    "hpub-empty-header-is-msg": CH + b"SUB h 1\r\nHPUB h 0 5\r\nhello\r\nHPUB h r 0 0\r\n\r\nPING\r\n",
    "hpub-without-headers": C + b"SUB h 1\r\nHPUB h 12 14\r\nNATS/1.0\r\n\r\nhi\r\nPING\r\n",
    "no-responders": CH + b"SUB reply 9\r\nPUB nobody reply 1\r\nx\r\nPING\r\n",
    "no-responders-needs-headers": b'CONNECT {"no_responders":true}\r\nPING\r\n',
    "bad-protocol-version": b'CONNECT {"protocol":2}\r\nPING\r\n',
    "forbidden-account-field": b'CONNECT {"account":"A"}\r\nPING\r\n',
    "echo-false": b'CONNECT {"verbose":false,"echo":false}\r\nSUB e 1\r\nPUB e 1\r\nx\r\nPING\r\n',
    "ping-before-connect": b"PING\r\n",
    "sub-before-connect": b"SUB foo 1\r\nPUB foo 1\r\nx\r\nPING\r\n",
    "unknown-op": C + b"ZZZ\r\nPING\r\n",
    "unknown-op-pubs": C + b"PUBS foo 1\r\nPING\r\n",
    "msg-from-client": C + b"MSG foo 1 1\r\nx\r\nPING\r\n",
    "pub-bad-size": C + b"PUB foo bar\r\nPING\r\n",
    "pub-negative-size": C + b"PUB foo -1\r\nPING\r\n",
    "pub-too-many-args": C + b"PUB a b c 1\r\nx\r\nPING\r\n",
    "pub-missing-args": C + b"PUB\r\nPING\r\n",
    "pub-bad-terminator": C + b"PUB foo 3\r\nabcd\r\nPING\r\n",
    "max-payload": C + b"PUB foo 2000000\r\nPING\r\n",
    "control-line-too-long": C + b"PUB " + b"a" * 5000 + b" 1\r\nx\r\nPING\r\n",
    "sub-invalid-subject": C + b"SUB foo..bar 1\r\nSUB foo.>.bar 2\r\nPING\r\n",
    "sub-missing-sid": C + b"SUB foo\r\nPING\r\n",
    "sub-too-many-args": C + b"SUB a b c d\r\nPING\r\n",
    "unsub-no-args": C + b"UNSUB\r\nPING\r\n",
    "pedantic-wildcard-pub": b'CONNECT {"verbose":false,"pedantic":true}\r\nSUB foo.* 1\r\nPUB foo.* 1\r\nx\r\nPING\r\n',
    "client-err-closes": C + b"-ERR 'boom'\r\nPING\r\n",
    "client-info-ok-ignored": C + b'INFO {}\r\n+OK\r\nPING\r\n',
    "connect-bad-json": b"CONNECT {bad\r\nPING\r\n",
    "reserved-reply": C + b"PUB foo _R_.abc 1\r\nx\r\nPING\r\n",
    "bare-newline": C + b"SUB foo 1\nPUB foo 1\nx\r\nPING\n",
    # A TLS ClientHello sent to a plain-text port.
    "tls-hello-on-plain-port": b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) + b"\r\nPING\r\n",
    # Runs of identical PUB lines take natsd's grouped fast path.
    "pub-run": C + b"SUB foo 1\r\nSUB f* 2\r\nSUB > 3\r\n" + b"PUB foo 2\r\nhi\r\n" * 5 + b"PING\r\n",
    "pub-run-unsub-max": C + b"SUB foo 1\r\nUNSUB 1 3\r\n" + b"PUB foo 1\r\nx\r\n" * 5 + b"PING\r\n",
    "pub-run-echo-false": b'CONNECT {"verbose":false,"echo":false}\r\nSUB foo 1\r\n' + b"PUB foo 1\r\nx\r\n" * 4 + b"PING\r\n",
    "pub-run-verbose": b'CONNECT {"verbose":true}\r\nSUB foo 1\r\n' + b"PUB foo 1\r\nx\r\n" * 3 + b"PING\r\n",
    "pub-run-mixed": C + b"SUB a 1\r\n" + b"PUB a 1\r\nx\r\n" * 3 + b"PUB a 2\r\nyy\r\n" + b"PUB a 1\r\nz\r\n" * 2 + b"PING\r\n",
}


@pytest.fixture(scope="module")
def pair() -> Iterator[tuple[Server, Server]]:
    with running("natsd") as a, running("nats-server") as b:
        yield a, b


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_same_transcript(pair: tuple[Server, Server], name: str) -> None:
    natsd, ref = pair
    script = SCRIPTS[name]
    expected = transcript(ref.port, script)
    got = transcript(natsd.port, script)
    assert got == expected, f"script {name!r}: natsd {got} != nats-server {expected}"

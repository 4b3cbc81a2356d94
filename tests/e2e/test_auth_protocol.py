"""Raw-protocol authentication scripts: natsd must answer exactly as nats-server.

The same config file goes to both servers; transcripts (INFO bodies and thus
nonces normalised away) must match line for line, including whether the
server hung up. Scripts that sign the nonce are built from each server's INFO.
Cases where natsd is deliberately stricter are asserted separately, on both
servers, so the divergence itself is pinned.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from authconf import both, connect_line, nkey_user, sign_nonce, transcript_info, write_conf
from rawproto import transcript
from servers import Server

pytestmark = [pytest.mark.e2e, pytest.mark.differential]

SEED, PUB = nkey_user(1)
OTHER_SEED, OTHER_PUB = nkey_user(2)

USERS = f"""
authorization {{
  timeout: 0.5
  users: [
    {{ user: plain, password: "plain-pw" }}
    {{ user: second, password: "second-pw" }}
    {{ nkey: {PUB} }}
  ]
}}
"""
NO_AUTH = """
no_auth_user: anon
authorization {
  timeout: 0.5
  users: [
    { user: anon, password: "anon-pw", permissions: { publish: "anon.>", subscribe: "anon.>" } }
    { user: other, password: "other-pw" }
  ]
}
"""
TOKEN = 'authorization { token: "tok-secret", timeout: 0.5 }\n'

OK_PLAIN = connect_line(user="plain", password="plain-pw")
PUBSUB = b"SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n"

SCRIPTS: dict[str, dict[str, bytes]] = {
    "users": {
        "good": OK_PLAIN + PUBSUB,
        "good-verbose": connect_line(user="plain", password="plain-pw", verbose=True) + PUBSUB,
        "wrong-password": connect_line(user="plain", password="nope") + b"PING\r\n",
        "unknown-user": connect_line(user="ghost", password="plain-pw") + b"PING\r\n",
        "password-of-other-user": connect_line(user="plain", password="second-pw") + b"PING\r\n",
        "empty-password": connect_line(user="plain", password="") + b"PING\r\n",
        "user-case": connect_line(user="PLAIN", password="plain-pw") + b"PING\r\n",
        "pass-only": connect_line(password="plain-pw") + b"PING\r\n",
        "missing-credentials": b"CONNECT {}\r\nPING\r\n",
        "connect-null": b"CONNECT null\r\nPING\r\n",
        "ping-before-connect": b"PING\r\n",
        "sub-before-connect": b"SUB foo 1\r\nPING\r\n",
        "pub-before-connect": b"PUB foo 1\r\nx\r\nPING\r\n",
        "garbage-before-connect": b"HELLO\r\nPING\r\n",
        "leading-space-connect": b"  " + OK_PLAIN + b"PING\r\n",
        "oversized-first-op": b"PUB " + b"a" * 5000 + b" 1\r\nx\r\nPING\r\n",
        "c-but-not-connect": b"CXYZ\r\nPING\r\n",
        "pong-before-connect": b"PONG\r\nPING\r\n",
        "lowercase-connect": b'connect {"user":"plain","pass":"plain-pw"}\r\nPING\r\n',
        "connect-without-arg": b"CONNECT\r\nPING\r\n",
        "pipelined-after-failed-connect": connect_line(user="plain", password="nope") + PUBSUB,
        "pipelined-after-good-connect": OK_PLAIN + b"SUB a 1\r\nSUB b 2\r\nPUB b 1\r\nB\r\nPUB a 1\r\nA\r\nPING\r\n",
        "oversized-connect": b'CONNECT {"user":"plain","pass":"plain-pw","name":"'
        + b"n" * 5000
        + b'"}\r\nPING\r\n',
        "malformed-json": b"CONNECT {bad\r\nPING\r\n",
        "malformed-trailing": b'CONNECT {"user":"plain","pass":"plain-pw"}x\r\nPING\r\n',
        "wrong-type-user": b'CONNECT {"user":5,"pass":"plain-pw"}\r\nPING\r\n',
        "wrong-type-pass": b'CONNECT {"user":"plain","pass":true}\r\nPING\r\n',
        "array-connect": b"CONNECT []\r\nPING\r\n",
        "account-field": connect_line(user="plain", password="plain-pw", account="X") + b"PING\r\n",
        "new-account-field": connect_line(user="plain", password="plain-pw", new_account=True) + b"PING\r\n",
        "case-folded-keys": b'CONNECT {"USER":"plain","Pass":"plain-pw","verbose":false}\r\nPING\r\n',
        "duplicate-key-last-wins": b'CONNECT {"user":"ghost","user":"plain","pass":"plain-pw","verbose":false}\r\nPING\r\n',
        "second-connect-same": OK_PLAIN + OK_PLAIN + PUBSUB,
        "second-connect-options-only": OK_PLAIN
        + connect_line(user="plain", password="plain-pw", verbose=True)
        + b"PING\r\n",
        "second-connect-wrong-password": OK_PLAIN + connect_line(user="plain", password="nope") + b"PING\r\n",
        "second-connect-account-field": OK_PLAIN
        + connect_line(user="plain", password="plain-pw", account="X")
        + b"PING\r\n",
        "nkey-without-sig": connect_line(nkey=PUB) + b"PING\r\n",
        "nkey-bad-sig": connect_line(nkey=PUB, sig="AAAA") + b"PING\r\n",
        "nkey-unknown": connect_line(nkey=OTHER_PUB, sig="AAAA") + b"PING\r\n",
        "nkey-malformed": connect_line(nkey="UNOTAKEY", sig="AAAA") + b"PING\r\n",
        "nkey-plus-valid-user": connect_line(user="plain", password="plain-pw", nkey=OTHER_PUB) + b"PING\r\n",
        "token-on-users-server": connect_line(auth_token="plain-pw") + b"PING\r\n",
        "jwt-on-users-server": connect_line(jwt="e30.e30.sig") + b"PING\r\n",
        "auth-timeout-silent": b"",
        "auth-timeout-partial-connect": b'CONNECT {"user":"plain"',
    },
    "no-auth": {
        "ping-before-connect": b"PING\r\n",
        "sub-pub-before-connect": b"SUB anon.x 1\r\nPUB anon.x 1\r\nx\r\nPING\r\n",
        "denied-before-connect": b"PUB foo 1\r\nx\r\nSUB foo 1\r\nPING\r\n",
        "empty-connect": b"CONNECT {}\r\nSUB anon.x 1\r\nPUB anon.x 1\r\nx\r\nPUB foo 1\r\ny\r\nPING\r\n",
        "empty-user-string": connect_line(user="") + b"PUB anon.a 1\r\nx\r\nPING\r\n",
        "explicit-other": connect_line(user="other", password="other-pw") + b"SUB foo 1\r\nPUB foo 1\r\nx\r\nPING\r\n",
        "explicit-wrong": connect_line(user="other", password="nope") + b"PING\r\n",
        "anon-wrong-password": connect_line(user="anon", password="nope") + b"PING\r\n",
        "pass-only": connect_line(password="anon-pw") + b"PING\r\n",
        "token-only": connect_line(auth_token="x") + b"PING\r\n",
        "account-field": connect_line(account="X") + b"PING\r\n",
        "malformed-json": b"CONNECT {bad\r\nPING\r\n",
        "oversized-first-line": b"PUB " + b"a" * 5000 + b" 1\r\nx\r\nPING\r\n",
        "garbage-before-connect": b"HELLO\r\nPING\r\n",
        "auth-timeout-silent": b"",
    },
    "token": {
        "good": connect_line(auth_token="tok-secret") + PUBSUB,
        "wrong": connect_line(auth_token="tok-secre") + b"PING\r\n",
        "missing": b"CONNECT {}\r\nPING\r\n",
        "user-pass-on-token-server": connect_line(user="tok-secret", password="tok-secret") + b"PING\r\n",
        "nkey-on-token-server": connect_line(nkey=PUB, sig="AAAA") + b"PING\r\n",
        "token-plus-user": connect_line(auth_token="tok-secret", user="someone") + PUBSUB,
        "token-in-pass": connect_line(password="tok-secret") + b"PING\r\n",
        "second-connect-other-token": connect_line(auth_token="tok-secret")
        + connect_line(auth_token="other")
        + b"PING\r\n",
        "ping-before-connect": b"PING\r\n",
    },
}

CONFIGS = {"users": USERS, "no-auth": NO_AUTH, "token": TOKEN}

CASES = [(c, n) for c in SCRIPTS for n in sorted(SCRIPTS[c])]


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Server, Server]]]:
    d = tmp_path_factory.mktemp("auth-proto")
    managers = {name: both(write_conf(d, f"{name}.conf", text)) for name, text in CONFIGS.items()}
    out: dict[str, tuple[Server, Server]] = {}
    try:
        for name, cm in managers.items():
            out[name] = cm.__enter__()
        yield out
    finally:
        for name in out:
            managers[name].__exit__(None, None, None)


@pytest.mark.parametrize("config,name", CASES)
def test_same_transcript(pairs, config: str, name: str) -> None:  # type: ignore[no-untyped-def]
    natsd, ref = pairs[config]
    script = SCRIPTS[config][name]
    expected = transcript(ref.port, script)
    got = transcript(natsd.port, script)
    assert got == expected, f"{config}/{name}: natsd {got} != nats-server {expected}"


def _signed(seed: str, pub: str, extra: bytes = PUBSUB, **fields: Any) -> Callable[[dict[str, Any]], bytes]:
    def make(info: dict[str, Any]) -> bytes:
        return connect_line(nkey=pub, sig=sign_nonce(seed, info["nonce"]), **fields) + extra

    return make


NONCE_SCRIPTS: dict[str, Callable[[dict[str, Any]], bytes]] = {
    "nkey-good": _signed(SEED, PUB),
    "nkey-wrong-seed": _signed(OTHER_SEED, PUB),
    "nkey-sig-of-other-key": _signed(OTHER_SEED, OTHER_PUB),
    "nkey-sig-over-other-nonce": lambda info: connect_line(nkey=PUB, sig=sign_nonce(SEED, "x" + info["nonce"]))
    + b"PING\r\n",
    "nkey-good-plus-wrong-user": _signed(SEED, PUB, user="plain", password="nope"),
    "nkey-second-connect-same": lambda info: _signed(SEED, PUB, b"")(info) * 2 + PUBSUB,
}


@pytest.mark.parametrize("name", sorted(NONCE_SCRIPTS))
def test_same_transcript_nonce(pairs, name: str) -> None:  # type: ignore[no-untyped-def]
    natsd, ref = pairs["users"]
    make = NONCE_SCRIPTS[name]
    expected = transcript_info(ref.port, make)
    got = transcript_info(natsd.port, make)
    assert got == expected, f"{name}: natsd {got} != nats-server {expected}"


def test_info_nonce_and_auth_required(pairs) -> None:  # type: ignore[no-untyped-def]
    """INFO advertises auth_required (false under no_auth_user) and a nonce with nkeys."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for config, (natsd, ref) in pairs.items():
        for s in (natsd, ref):
            transcript_info(s.port, lambda info, k=(config, s.kind): seen.setdefault(k, info) and b"")
    for config in CONFIGS:
        a, b = seen[(config, "natsd")], seen[(config, "nats-server")]
        assert a.get("auth_required", False) == b.get("auth_required", False), config
        assert ("nonce" in a) == ("nonce" in b), config
    assert seen[("users", "natsd")]["auth_required"] is True
    assert "auth_required" not in seen[("no-auth", "natsd")] or not seen[("no-auth", "natsd")]["auth_required"]


# -- natsd stricter: a second CONNECT may not change identity ---------------------------

SWITCH_USER = OK_PLAIN + connect_line(user="second", password="second-pw") + b"PING\r\n"


def test_second_connect_switching_user_refused_by_natsd(pairs) -> None:  # type: ignore[no-untyped-def]
    natsd, _ref = pairs["users"]
    assert transcript(natsd.port, SWITCH_USER) == ["-ERR 'Authorization Violation'", "<closed>"]


def test_second_connect_switching_user_accepted_by_nats_server(pairs) -> None:  # type: ignore[no-untyped-def]
    """The divergence is real: nats-server re-authenticates and keeps the connection."""
    _natsd, ref = pairs["users"]
    assert transcript(ref.port, SWITCH_USER) == ["PONG"]


def test_second_connect_without_credentials_only_changes_options(pairs) -> None:  # type: ignore[no-untyped-def]
    """A later CONNECT that presents no credentials keeps the identity and
    applies its options, on both servers (here: verbose on, then +OK)."""
    for server in pairs["users"]:
        script = OK_PLAIN + b'CONNECT {"verbose":true,"pedantic":false}\r\nPING\r\n'
        assert transcript(server.port, script) == ["+OK", "PONG"], server.kind


# -- no_auth_user: where natsd is stricter -------------------------------------------------


def test_nkey_without_nkey_users_not_ignored_into_no_auth_user(pairs) -> None:  # type: ignore[no-untyped-def]
    """CONNECT with an nkey on a server that has no nkey users, with no_auth_user.

    nats-server ignores the nkey (and its bogus signature) and binds the client as
    no_auth_user; natsd counts the nkey as a presented credential and refuses it.
    """
    natsd, ref = pairs["no-auth"]
    script = connect_line(nkey=PUB, sig="AAAA") + b"PING\r\n"
    assert transcript(ref.port, script) == ["PONG"]
    assert transcript(natsd.port, script) == ["-ERR 'Authorization Violation'", "<closed>"]


def test_partial_first_op_under_no_auth_user(pairs) -> None:  # type: ignore[no-untyped-def]
    """A partial non-CONNECT first op, then silence, under no_auth_user.

    Both servers bind no_auth_user on the first non-'C' byte (so nothing piles
    up before authentication) and stop the auth timer; the rest of the line is
    the worker's to parse.
    """
    natsd, ref = pairs["no-auth"]
    for server in (ref, natsd):
        assert transcript(server.port, b"PIN", timeout=1.5) == []
        assert transcript(server.port, b"PIN", timeout=1.5, settle=0.1) == []
        assert transcript(server.port, b"PI" + b"NG\r\n") == ["PONG"]


def test_nothing_piles_up_before_authentication(pairs) -> None:  # type: ignore[no-untyped-def]
    """Megabytes sent before a CONNECT line ends are refused at the control
    line limit (with 'C' first) or handed to the worker at once (anything
    else, under no_auth_user): the supervisor never buffers them."""
    natsd, ref = pairs["no-auth"]
    for server in (ref, natsd):
        assert transcript(server.port, b"CONNECT " + b"x" * 200_000) == ["-ERR 'maximum control line exceeded'", "<closed>"]
        assert transcript(server.port, b"INFO {}\r\n" * 20_000 + b"PING\r\n") == ["PONG"]

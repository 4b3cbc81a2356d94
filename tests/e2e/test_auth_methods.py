"""nats-py logs in with every configured method, against natsd and nats-server.

Each config file is written once and given unchanged to both servers; every
scenario runs against both, and a wrong or missing secret must be refused
with ``Authorization Violation`` by both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from authconf import bcrypt_hash, both, nats_connect, nkey_user, run, write_conf
from servers import Server, running

pytestmark = [pytest.mark.e2e, pytest.mark.differential]

KINDS = ["natsd", "nats-server"]
SEED, PUB = nkey_user(1)
OTHER_SEED, _OTHER_PUB = nkey_user(2)

USERS = f"""
authorization {{
  timeout: 0.5
  users: [
    {{ user: plain, password: "plain-pw" }}
    {{ user: b2a, password: "{bcrypt_hash("b2a-pw", "2a")}" }}
    {{ user: b2b, password: "{bcrypt_hash("b2b-pw", "2b")}" }}
    {{ nkey: {PUB} }}
  ]
}}
"""
TOKEN = 'authorization { token: "tok-secret" }\n'
TOKEN_BCRYPT = f'authorization {{ token: "{bcrypt_hash("tok-secret")}" }}\n'
NO_AUTH = """
no_auth_user: anon
authorization {
  users: [
    { user: anon, password: "anon-pw", permissions: { publish: "anon.>", subscribe: "anon.>" } }
    { user: other, password: "other-pw" }
  ]
}
"""
SINGLE = 'authorization { user: solo, password: "solo-pw" }\n'

CONFIGS = {"users": USERS, "token": TOKEN, "token-bcrypt": TOKEN_BCRYPT, "no-auth": NO_AUTH, "single": SINGLE}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Server]]:
    d = tmp_path_factory.mktemp("auth-methods")
    out: dict[tuple[str, str], Server] = {}
    stack = []
    try:
        for name, text in CONFIGS.items():
            cm = both(write_conf(d, f"{name}.conf", text))
            natsd, ref = cm.__enter__()
            stack.append(cm)
            out[(name, "natsd")], out[(name, "nats-server")] = natsd, ref
        yield out
    finally:
        for cm in reversed(stack):
            cm.__exit__(None, None, None)


def _url(s: Server, cred: str = "") -> str:
    return f"nats://{cred}127.0.0.1:{s.port}"


async def _roundtrip(nc: nats.NATS, subject: str = "hello") -> None:
    sub = await nc.subscribe(subject)
    await nc.publish(subject, b"hi")
    msg = await sub.next_msg(timeout=3)
    assert msg.data == b"hi"


def _ok(url: str, subject: str = "hello", **kw: object) -> None:
    async def main() -> None:
        nc = await nats_connect(url, **kw)
        try:
            await _roundtrip(nc, subject)
        finally:
            await nc.close()

    run(main())


def _refused(url: str, **kw: object) -> None:
    async def main() -> None:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            nc = await nats_connect(url, **kw)
            await nc.close()

    run(main())


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("user,pw", [("plain", "plain-pw"), ("b2a", "b2a-pw"), ("b2b", "b2b-pw")])
def test_user_password_in_url(servers, kind: str, user: str, pw: str) -> None:  # type: ignore[no-untyped-def]
    s = servers[("users", kind)]
    _ok(_url(s, f"{user}:{pw}@"))
    _ok(_url(s), user=user, password=pw)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    "cred",
    ["plain:wrong@", "b2a:wrong@", "b2b:b2a-pw@", "nobody:plain-pw@", "plain:@", "", "tok-secret@"],
)
def test_user_password_refused(servers, kind: str, cred: str) -> None:  # type: ignore[no-untyped-def]
    _refused(_url(servers[("users", kind)], cred))


@pytest.mark.parametrize("kind", KINDS)
def test_nkey_seed(servers, kind: str) -> None:  # type: ignore[no-untyped-def]
    s = servers[("users", kind)]
    _ok(_url(s), nkeys_seed_str=SEED)


@pytest.mark.parametrize("kind", KINDS)
def test_nkey_seed_file(servers, kind: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    seed_file = tmp_path / "user.nk"
    seed_file.write_text(SEED + "\n")
    _ok(_url(servers[("users", kind)]), nkeys_seed=str(seed_file))


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_nkey_refused(servers, kind: str) -> None:  # type: ignore[no-untyped-def]
    _refused(_url(servers[("users", kind)]), nkeys_seed_str=OTHER_SEED)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", ["token", "token-bcrypt"])
def test_token(servers, kind: str, config: str) -> None:  # type: ignore[no-untyped-def]
    s = servers[(config, kind)]
    _ok(_url(s, "tok-secret@"))
    _ok(_url(s), token="tok-secret")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("config", ["token", "token-bcrypt"])
@pytest.mark.parametrize("cred", ["wrong@", "", "tok-secret:x@", "user:tok-secret@"])
def test_token_refused(servers, kind: str, config: str, cred: str) -> None:  # type: ignore[no-untyped-def]
    _refused(_url(servers[(config, kind)], cred))


@pytest.mark.parametrize("kind", KINDS)
def test_token_bcrypt_hash_itself_refused(servers, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Sending the stored hash is not the secret."""
    s = servers[("token-bcrypt", kind)]
    stored = TOKEN_BCRYPT.split('"')[1]
    _refused(_url(s), token=stored)


@pytest.mark.parametrize("kind", KINDS)
def test_no_auth_user_binds_anonymous(servers, kind: str) -> None:  # type: ignore[no-untyped-def]
    s = servers[("no-auth", kind)]
    _ok(_url(s), subject="anon.x")
    _ok(_url(s, "other:other-pw@"))
    _ok(_url(s, "anon:anon-pw@"), subject="anon.y")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("cred", ["other:wrong@", "anon:wrong@", "nobody:x@", "tok@"])
def test_no_auth_user_no_fallback_for_wrong_credentials(servers, kind: str, cred: str) -> None:  # type: ignore[no-untyped-def]
    _refused(_url(servers[("no-auth", kind)], cred))


@pytest.mark.parametrize("kind", KINDS)
def test_single_user(servers, kind: str) -> None:  # type: ignore[no-untyped-def]
    s = servers[("single", kind)]
    _ok(_url(s, "solo:solo-pw@"))
    _refused(_url(s, "solo:nope@"))
    _refused(_url(s, "other:solo-pw@"))
    _refused(_url(s))


def test_bcrypt_no_auth_user_natsd_binds_nats_server_refuses(tmp_path: Path) -> None:
    """natsd-stricter/-saner: a bcrypt no_auth_user binds without comparing passwords.

    nats-server compares the stored hash with itself and refuses the anonymous
    client (spec §3.3 quirk); natsd binds directly. Explicit user/pass works on both.
    """
    conf = write_conf(
        tmp_path,
        "nab.conf",
        f'no_auth_user: anon\nauthorization {{ users: [ {{ user: anon, password: "{bcrypt_hash("pw")}" }} ] }}\n',
    )
    with running("natsd", config=conf) as natsd, running("nats-server", config=conf) as ref:
        _ok(_url(natsd))
        _refused(_url(ref))
        _ok(_url(natsd, "anon:pw@"))
        _ok(_url(ref, "anon:pw@"))

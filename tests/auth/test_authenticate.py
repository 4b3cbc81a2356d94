"""The config-mode authentication pipeline: precedence, secrets, bindings (spec §3)."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import bcrypt
import nkeys
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from natsd.auth.authenticate import (
    AuthConfig,
    AuthFail,
    AuthOk,
    ClientInfo,
    authenticate,
    credential_digest,
)
from natsd.config.schema import (
    Account,
    Authorization,
    Options,
    Permissions,
    SubjectPermission,
    User,
)

NONCE = "q2xAbCdEfGh-_9Z"
CLIENT = ClientInfo(host="127.0.0.1", port=50000, nonce=NONCE)
NOW = 1_000.0
PERMS = Permissions(publish=SubjectPermission(allow=("foo.>",)))
DEFAULTS = Permissions(subscribe=SubjectPermission(deny=("secret.>",)))


@dataclass(frozen=True)
class Connect:
    user: str | None = None
    password: str | None = None
    auth_token: str | None = None
    nkey: str | None = None
    sig: str | None = None
    jwt: str | None = None
    forbidden: bool = False


def _kp(n: int) -> nkeys.KeyPair:
    return nkeys.from_seed(nkeys.encode_seed(bytes([n]) * 32, nkeys.PREFIX_BYTE_USER))


ALICE_KEY = _kp(1)
ALICE_PUB = ALICE_KEY.public_key.decode()
MALLORY_KEY = _kp(2)


def _sig(kp: nkeys.KeyPair, data: bytes = NONCE.encode()) -> str:
    return base64.urlsafe_b64encode(kp.sign(data)).rstrip(b"=").decode()


def _bcrypt(secret: str) -> str:
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(4)).decode()


def _auth(opts: Options, connect: Connect, client: ClientInfo = CLIENT) -> AuthOk | AuthFail:
    return authenticate(connect, client, AuthConfig.from_options(opts), NOW)


def _ok(result: AuthOk | AuthFail) -> AuthOk:
    assert isinstance(result, AuthOk), result
    return result


def _fail(result: AuthOk | AuthFail) -> AuthFail:
    assert isinstance(result, AuthFail), result
    assert result.wire_text == "Authorization Violation"
    return result


# -- no auth -------------------------------------------------------------------------


def test_no_auth_accepts_anything_into_global() -> None:
    cfg = AuthConfig.from_options(Options())
    assert not cfg.enforced and not cfg.auth_required and not cfg.nonce_required
    ok = _ok(authenticate(Connect(user="x", password="y"), CLIENT, cfg, NOW))
    assert (ok.account, ok.user, ok.permissions, ok.is_system) == ("$G", None, None, False)


@pytest.mark.parametrize(
    "opts",
    [
        Options(),
        Options(authorization=Authorization(token="t")),
        Options(authorization=Authorization(users=(User(user="a", password="p"),))),
    ],
)
def test_forbidden_connect_fields_always_fail(opts: Options) -> None:
    reason = _fail(_auth(opts, Connect(user="a", password="p", auth_token="t", forbidden=True)))
    assert "account" in reason.reason


# -- token and single user ---------------------------------------------------------------


@pytest.mark.parametrize("stored", ["s3cr3t", _bcrypt("s3cr3t")])
def test_token(stored: str) -> None:
    opts = Options(authorization=Authorization(token=stored))
    assert AuthConfig.from_options(opts).auth_required
    ok = _ok(_auth(opts, Connect(auth_token="s3cr3t")))
    assert ok.account == "$G" and ok.user is None
    assert _fail(_auth(opts, Connect(auth_token="wrong"))).reason == "token mismatch"
    _fail(_auth(opts, Connect()))
    _fail(_auth(opts, Connect(user="s3cr3t", password="s3cr3t")))


def test_single_user() -> None:
    opts = Options(authorization=Authorization(user="bob", password="pw"))
    assert _ok(_auth(opts, Connect(user="bob", password="pw"))).user == "bob"
    assert "unknown" in _fail(_auth(opts, Connect(user="Bob", password="pw"))).reason
    assert _fail(_auth(opts, Connect(user="bob", password="px"))).reason == (
        'password mismatch for user "bob"'
    )
    _fail(_auth(opts, Connect(auth_token="pw")))


# -- username users -----------------------------------------------------------------------


def _users_opts(**kw: object) -> Options:
    return Options(
        authorization=Authorization(
            present=True,
            users=(
                User(user="alice", password="apw", permissions=PERMS),
                User(user="carol", password=_bcrypt("cpw")),
            ),
            default_permissions=DEFAULTS,
        ),
        accounts=(
            Account(
                name="ACME",
                users=(User(user="dave", password="dpw"),),
                default_permissions=PERMS,
                max_subscriptions=10,
                max_payload=2048,
            ),
            Account(name="$SYS", users=(User(user="admin", password="spw"),)),
        ),
        **kw,  # type: ignore[arg-type]
    )


def test_users_bind_account_and_permissions() -> None:
    opts = _users_opts()
    alice = _ok(_auth(opts, Connect(user="alice", password="apw")))
    assert (alice.account, alice.user, alice.permissions) == ("$G", "alice", PERMS)
    carol = _ok(_auth(opts, Connect(user="carol", password="cpw")))
    assert carol.permissions == DEFAULTS  # authorization default_permissions
    dave = _ok(_auth(opts, Connect(user="dave", password="dpw")))
    assert (dave.account, dave.permissions) == ("ACME", PERMS)
    assert (dave.max_subscriptions, dave.max_payload) == (10, 2048)
    admin = _ok(_auth(opts, Connect(user="admin", password="spw")))
    assert admin.is_system and admin.account == "$SYS"
    assert not dave.is_system


def test_users_failures() -> None:
    opts = _users_opts()
    assert _fail(_auth(opts, Connect(user="bob", password="x"))).reason == 'user "bob" unknown'
    assert _fail(_auth(opts, Connect(user="carol", password="CPW"))).reason == (
        'password mismatch for user "carol"'
    )
    _fail(_auth(opts, Connect()))  # no no_auth_user, authorization block present
    _fail(_auth(opts, Connect(password="apw")))
    _fail(_auth(opts, Connect(user="alice", password="apw", forbidden=True)))


def test_no_fallback_to_no_auth_user_after_wrong_credentials() -> None:
    opts = _users_opts(no_auth_user="alice")
    _fail(_auth(opts, Connect(user="alice", password="wrong")))
    _fail(_auth(opts, Connect(user="nobody")))
    _fail(_auth(opts, Connect(auth_token="whatever")))


def test_no_auth_user_binds_directly() -> None:
    opts = _users_opts(no_auth_user="carol")  # carol has a bcrypt password
    cfg = AuthConfig.from_options(opts)
    assert cfg.enforced and not cfg.auth_required and cfg.no_auth_fast_path()
    anon = _ok(authenticate(Connect(), CLIENT, cfg, NOW))
    assert (anon.account, anon.user, anon.permissions) == ("$G", "carol", DEFAULTS)
    # Explicit credentials for the same user still work.
    assert (
        _ok(authenticate(Connect(user="carol", password="cpw"), CLIENT, cfg, NOW)).user == "carol"
    )


@pytest.mark.parametrize(
    ("user", "conn_type", "allowed"),
    [
        (User(user="u", password="p", allowed_connection_types=("STANDARD",)), "STANDARD", True),
        (User(user="u", password="p", allowed_connection_types=("standard",)), "STANDARD", True),
        (User(user="u", password="p", allowed_connection_types=("WEBSOCKET",)), "STANDARD", False),
        (User(user="u", password="p", allowed_connection_types=("WEBSOCKET",)), "WEBSOCKET", True),
        (User(user="u", password="p"), "MQTT", True),
        (User(user="u", password="p", proxy_required=True), "STANDARD", False),
    ],
)
def test_connection_types_and_proxy(user: User, conn_type: str, allowed: bool) -> None:
    opts = Options(authorization=Authorization(users=(user,)), no_auth_user="u")
    client = ClientInfo(host="h", port=1, nonce=None, conn_type=conn_type)
    cfg = AuthConfig.from_options(opts)
    for connect in (Connect(user="u", password="p"), Connect()):
        result = authenticate(connect, client, cfg, NOW)
        assert isinstance(result, AuthOk) is allowed
    assert cfg.no_auth_fast_path(conn_type) is allowed


@settings(max_examples=50, deadline=None)
@given(secret=st.text(min_size=4, max_size=20), guess=st.text(min_size=4, max_size=20))
def test_failure_reasons_never_contain_the_secret(secret: str, guess: str) -> None:
    # A marker keeps a short random secret from matching the reason's own
    # words ("user", "0000" in an escaped code point...) by coincidence.
    secret, guess = "Zq9!" + secret, "Xw7?" + guess
    opts = Options(
        authorization=Authorization(users=(User(user="u", password=secret),)),
    )
    for connect in (Connect(user="u", password=guess), Connect(user="x", password=secret)):
        result = _auth(opts, connect)
        if isinstance(result, AuthFail):
            assert secret not in result.reason and guess not in result.reason
    token_opts = Options(authorization=Authorization(token=secret))
    result = _auth(token_opts, Connect(auth_token=guess))
    assert isinstance(result, AuthOk) is (guess == secret)
    if isinstance(result, AuthFail):
        assert secret not in result.reason and guess not in result.reason


def test_log_injection_in_user_name_is_escaped() -> None:
    opts = _users_opts()
    reason = _fail(_auth(opts, Connect(user='bob"\r\n[INF] admin ok' + "x" * 100))).reason
    assert "\r" not in reason and "\n" not in reason and '"...' in reason


# -- nkeys -----------------------------------------------------------------------------------


def _nkey_opts(**kw: object) -> Options:
    return Options(
        authorization=Authorization(
            users=(User(nkey=ALICE_PUB, permissions=PERMS), User(user="bob", password="bpw")),
        ),
        **kw,  # type: ignore[arg-type]
    )


def test_nkey_signature() -> None:
    opts = _nkey_opts()
    assert AuthConfig.from_options(opts).nonce_required
    ok = _ok(_auth(opts, Connect(nkey=ALICE_PUB, sig=_sig(ALICE_KEY))))
    assert (ok.user, ok.permissions, ok.account) == (ALICE_PUB, PERMS, "$G")
    std = base64.b64encode(ALICE_KEY.sign(NONCE.encode())).decode()
    _ok(_auth(opts, Connect(nkey=ALICE_PUB, sig=std)))


def test_nkey_failures() -> None:
    opts = _nkey_opts()
    decoded_nonce = base64.urlsafe_b64decode(NONCE + "=")
    assert _fail(
        _auth(opts, Connect(nkey=ALICE_PUB, sig=_sig(ALICE_KEY, decoded_nonce)))
    ).reason == ("nkey signature invalid")
    _fail(_auth(opts, Connect(nkey=ALICE_PUB, sig=_sig(MALLORY_KEY))))
    assert "missing" in _fail(_auth(opts, Connect(nkey=ALICE_PUB))).reason
    mallory = MALLORY_KEY.public_key.decode()
    assert "unknown" in _fail(_auth(opts, Connect(nkey=mallory, sig=_sig(MALLORY_KEY)))).reason
    # A different connection's nonce (replay) fails.
    replay = ClientInfo(host="h", port=2, nonce="ZZZZZZZZZZZZZZZ")
    _fail(_auth(opts, Connect(nkey=ALICE_PUB, sig=_sig(ALICE_KEY)), replay))
    _fail(_auth(opts, Connect(nkey=ALICE_PUB, sig=_sig(ALICE_KEY)), ClientInfo("h", 2, None)))
    # An unknown nkey does not fall back to the username path.
    _fail(_auth(opts, Connect(nkey=mallory, sig=_sig(MALLORY_KEY), user="bob", password="bpw")))


def test_nkey_and_username_users_coexist() -> None:
    assert _ok(_auth(_nkey_opts(), Connect(user="bob", password="bpw"))).user == "bob"


def test_no_auth_user_naming_an_nkey_needs_no_signature() -> None:
    opts = _nkey_opts(no_auth_user=ALICE_PUB)
    assert _ok(_auth(opts, Connect())).user == ALICE_PUB
    _fail(_auth(opts, Connect(nkey=ALICE_PUB)))  # presented, so it must be signed


# -- operator mode -------------------------------------------------------------------------


class _Verifier:
    def __init__(self) -> None:
        self.calls = 0

    def verify(self, connect: object, client: ClientInfo, now: float) -> AuthOk | AuthFail:
        self.calls += 1
        return AuthOk(account="AXYZ", user="UABC", permissions=None, auth_digest=b"")


def test_operator_mode_fails_closed_until_a_verifier_is_attached() -> None:
    opts = Options(trusted_keys=("OABC",))
    cfg = AuthConfig.from_options(opts)
    assert cfg.enforced and cfg.auth_required and cfg.nonce_required and cfg.jwt_verifier is None
    _fail(authenticate(Connect(jwt="eyJ"), CLIENT, cfg, NOW))
    verifier = _Verifier()
    attached = cfg.with_jwt_verifier(verifier)
    assert cfg.jwt_verifier is None  # immutable: a copy was made
    assert _ok(authenticate(Connect(jwt="eyJ"), CLIENT, attached, NOW)).account == "AXYZ"
    _fail(authenticate(Connect(jwt="eyJ", forbidden=True), CLIENT, attached, NOW))
    assert verifier.calls == 1


# -- §3.4 synthesised $G user ---------------------------------------------------------------


def _sys_only(**kw: object) -> Options:
    return Options(
        accounts=(Account(name="$SYS", users=(User(user="admin", password="spw"),)),),
        **kw,  # type: ignore[arg-type]
    )


def test_system_only_config_keeps_global_open() -> None:
    cfg = AuthConfig.from_options(_sys_only())
    assert cfg.enforced and cfg.auth_required and not cfg.no_auth_fast_path()
    anon = _ok(authenticate(Connect(), CLIENT, cfg, NOW))
    assert (anon.account, anon.permissions, anon.is_system) == ("$G", None, False)
    assert _ok(authenticate(Connect(user="admin", password="spw"), CLIENT, cfg, NOW)).is_system
    _fail(authenticate(Connect(user="admin", password="x"), CLIENT, cfg, NOW))


def test_system_only_config_with_nkey_users_keeps_global_open() -> None:
    opts = Options(accounts=(Account(name="$SYS", users=(User(nkey=ALICE_PUB),)),))
    assert _ok(_auth(opts, Connect())).account == "$G"
    assert _ok(_auth(opts, Connect(nkey=ALICE_PUB, sig=_sig(ALICE_KEY)))).is_system
    _fail(_auth(opts, Connect(user="x", password="y")))


def test_authorization_block_suppresses_synthesised_user() -> None:  # CVE-2023-47090
    _fail(_auth(_sys_only(authorization=Authorization(present=True)), Connect()))


def test_other_accounts_suppress_synthesised_user() -> None:
    opts = Options(
        accounts=(
            Account(name="$SYS", users=(User(user="admin", password="spw"),)),
            Account(name="A"),
        )
    )
    _fail(_auth(opts, Connect()))


# -- credential digest ------------------------------------------------------------------------

_field = st.one_of(st.none(), st.text(max_size=8))
_credentials = st.builds(
    Connect, user=_field, password=_field, auth_token=_field, nkey=_field, sig=_field, jwt=_field
)


@settings(max_examples=200, deadline=None)
@given(a=_credentials, b=_credentials)
def test_digest_distinguishes_credentials(a: Connect, b: Connect) -> None:
    da, db = credential_digest(a), credential_digest(b)
    assert (da == db) is (a == b)
    assert len(da) == 32


def test_ok_carries_digest_of_presented_credentials() -> None:
    opts = _users_opts()
    ok = _ok(_auth(opts, Connect(user="alice", password="apw")))
    assert ok.auth_digest == credential_digest(Connect(user="alice", password="apw"))
    assert ok.auth_digest != credential_digest(Connect(user="alice", password="apw2"))


@pytest.mark.parametrize(
    "authz",
    [
        Authorization(user="bob", password="pw"),  # --user/--pass, no config block
        Authorization(token="t"),  # --auth
        Authorization(users=(User(user="bob", password="pw"),)),
    ],
)
def test_no_synthesised_user_without_a_configured_system_account(authz: Authorization) -> None:
    cfg = AuthConfig.from_options(Options(authorization=authz))
    assert cfg.auth_required and not cfg.anonymous_g
    _fail(authenticate(Connect(), CLIENT, cfg, NOW))


def test_global_plus_system_accounts_still_synthesise() -> None:
    opts = Options(
        accounts=(
            Account(name="$G", users=(User(user="g", password="gpw"),)),
            Account(name="$SYS", users=(User(user="admin", password="spw"),)),
        )
    )
    assert _ok(_auth(opts, Connect())).user is None
    assert _ok(_auth(opts, Connect(user="g", password="gpw"))).user == "g"
    _fail(_auth(opts, Connect(user="g", password="bad")))

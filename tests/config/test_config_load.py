"""Mapping conf keys into Options, and nats-server's validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from natsd.config.errors import ConfigErrors
from natsd.config.load import options_from_text
from natsd.config.schema import Options, SubjectPermission

NKEY_A = "UBCUXP6U7CQAW76UWLTURI52VHZRJPQSHM2HL3GYSWGA7L7BZ7JFAAXT"
NKEY_B = "UBKELKYIIY5BBHYKU7ZTKEC3KIQLK6HBO7KI2JC6JPKWR35MCT2XQUPR"


def opts(text: str, env: dict[str, str] | None = None) -> Options:
    return options_from_text(text, "t.conf", env={} if env is None else env)[0]


def errors(text: str) -> list[str]:
    with pytest.raises(ConfigErrors) as ei:
        options_from_text(text, "t.conf", env={})
    return [str(e) for e in ei.value.errors]


def test_listener_limits_and_aliases() -> None:
    o = opts(
        "LISTEN: 10.0.0.1:4333\nServer_Name: s1\nmax_conn: 10\nmax_subs: 5\nmax_payload: 2mb\n"
        "max_pending: 8MB\nmax_control_line: 1kb\nping_interval: '30s'\nping_max: 3\n"
        "write_deadline: '1.5s'\nno_header_support: true\nhttp: 127.0.0.1:8222\nworkers: 2\n"
    )
    assert (o.host, o.port, o.server_name) == ("10.0.0.1", 4333, "s1")
    assert (o.max_connections, o.max_subscriptions, o.max_payload) == (10, 5, 2 << 20)
    assert (o.max_pending, o.max_control_line, o.ping_interval) == (8 << 20, 1024, 30.0)
    assert (o.ping_max, o.write_deadline, o.no_header_support) == (3, 1.5, True)
    assert (o.http_host, o.http_port, o.workers) == ("127.0.0.1", 8222, 2)
    assert opts("net: ::1\nport: -1\nmonitor_port: 8000").host == "::1"
    assert opts("listen: '[::1]:5222'").host == "::1"


def test_legacy_duration_numbers_are_seconds_with_warning() -> None:
    o, warnings = options_from_text("ping_interval: 20\nlame_duck_duration: '1m30s'", env={})
    assert (o.ping_interval, o.lame_duck_duration) == (20.0, 90.0)
    assert len(warnings) == 1 and "ping_interval should be converted to a duration" in warnings[0]


def test_permissions_forms_and_defaults() -> None:
    o = opts(
        """
        authorization {
          default_permissions: { pub: "a.>", sub: { allow: ["b.*", "c.> q1"], deny: "c.x" } }
          users: [
            { username: u1, pass: p1 }
            { user: u2, password: p2, permission: { publish: ["x"], allow_responses: true } }
            { user: u3, password: p3, permissions: { subscribe: "y", allow_responses: { max_msgs: 3, ttl: "5s" } } }
            { nkey: NKEY, connection_types: [standard, websocket], proxy_required: true }
          ]
        }
        """.replace("NKEY", NKEY_A)
    )
    u1, u2, u3, nk = o.authorization.users
    assert u1.permissions == o.authorization.default_permissions
    assert u1.permissions is not None and u1.permissions.subscribe == SubjectPermission(
        allow=("b.*", "c.> q1"), deny=("c.x",)
    )
    assert u2.permissions is not None and u2.permissions.allow_responses is not None
    assert (
        u2.permissions.allow_responses.max_msgs == 1
        and u2.permissions.allow_responses.expires == 120
    )
    rp = u3.permissions.allow_responses if u3.permissions else None
    assert rp is not None and (rp.max_msgs, rp.expires) == (3, 5.0)
    # allow_responses without publish means "publish nothing but replies"
    assert u3.permissions is not None and u3.permissions.publish == SubjectPermission(allow=())
    assert nk.nkey == NKEY_A and nk.allowed_connection_types == ("STANDARD", "WEBSOCKET")
    assert nk.proxy_required and all(u.account == "$G" for u in o.authorization.users)


def test_accounts_exports_imports_and_account_defaults() -> None:
    o = opts(
        """
        accounts {
          A: { users: [{user: a, password: a}]
               exports: [ {stream: "pub.>"}, {service: "q.*", accounts: [B], response: chunk, threshold: "3s"},
                          {service: "tok.*.x", account_token_position: 2} ] }
          B: { users: [{user: b, password: b}], default_permissions: { publish: "z" }
               imports: [ {stream: {account: A, subject: "pub.x"}, prefix: fromA},
                          {service: {account: A, subject: "q.1"}, to: q1},
                          {service: {account: A, subject: "tok.B.x"}} ] }
        }
        system_account: A
        """
    )
    a, b = o.accounts
    assert (
        a.service_exports[0].response_type == "chunked"
        and a.service_exports[0].response_threshold == 3
    )
    assert a.service_exports[1].account_token_position == 2 and a.stream_exports[0].accounts is None
    assert b.stream_imports[0].prefix == "fromA" and b.service_imports[0].to == "q1"
    assert b.users[0].account == "B" and b.users[0].permissions == b.default_permissions
    assert o.system_account == "A"
    assert [x.name for x in opts("accounts: [X, Y]").accounts] == ["X", "Y"]


def test_jetstream_tls_resolver_sections() -> None:
    o, warnings = options_from_text(
        "jetstream { store_dir: /d, max_mem: 1G, max_file: 2GB, cipher: chacha, key: $K }\n"
        "tls { cert_file: c, key_file: k, timeout: 3, handshake_first: '300ms', min_version: '1.3' }\n",
        env={"K": "secret"},
    )
    js = o.jetstream
    assert (js.enabled, js.store_dir, js.max_memory_store, js.max_file_store) == (
        True,
        "/d",
        10**9,
        2 << 30,
    )
    assert (js.cipher, js.key) == ("chachapoly", "secret")
    assert any("JetStream" in w for w in warnings)
    assert o.tls is not None and (o.tls.timeout, o.tls.handshake_first_fallback) == (3.0, 0.3)
    assert opts("jetstream: disabled").jetstream.enabled is False
    assert opts("jetstream: enabled\nstore_dir: /x").jetstream.store_dir == "/x"


def test_unsupported_features_warn(tmp_path: Path) -> None:
    o, warnings = options_from_text("cluster { port: 6222 }\nleafnodes {}\nmqtt {}", env={})
    assert o.cluster_present
    assert [w.split(": ", 1)[1] for w in warnings] == [
        f"natsd does not support {k} yet; the {k} block is ignored"
        for k in ("cluster", "leafnodes", "mqtt")
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("authorization { token: a, user: b, password: c }", "Cannot have a user/pass and token"),
        ("authorization { user: b, password: c, users: [{user: x}] }", "Can not have a single user/pass and a users array"),
        ("authorization { token: t, users: [{user: x}] }", "Can not have a token and a users array"),
        ("authorization { users: [{user: x}, {user: x}] }", 'Duplicate user "x" detected'),
        (f"accounts {{ A {{ users: [{{nkey: {NKEY_B}}}] }}, B {{ users: [{{nkey: {NKEY_B}}}] }} }}", f'Duplicate nkey "{NKEY_B}" detected'),
        (f"authorization {{ users: [{{nkey: {NKEY_A}, user: x}}] }}", "Nkey users do not take usernames or passwords"),
        ("authorization { users: [{nkey: UABC}] }", "Not a valid public nkey for a user"),
        ("authorization { users: [{password: x}] }", "User entry requires a user"),
        ("no_auth_user: foo", 'no_auth_user: "foo" present, but users/nkeys are not defined'),
        ("authorization { users: [{user: a}] }\nno_auth_user: foo", 'no_auth_user: "foo" not present as user or nkey'),
        ("accounts { $G { } }", '"$G" is a Reserved Account'),
        ("authorization { users: [{user: a, allowed_connection_types: [foo]}] }", 'invalid connection types ["FOO"]'),
        ("authorization { users: [{user: a, permissions: {foo: 1}}] }", 'Unknown field "foo" parsing permissions'),
        ("authorization { users: [{user: a, permissions: {publish: {x: 1}}}] }", "only 'allow' or 'deny' are permitted"),
        ("authorization { users: [{user: a, permissions: {publish: ['a..b']}}] }", 'subject "a..b" is not a valid subject'),
        ("authorization { users: [{user: a, permissions: {publish: ['x q']}}] }", 'subject "x q" is not a valid subject'),
        ("authorization { users: [{user: a, permissions: {publish: []}}] }", "empty publish list: nats-server would treat it as unrestricted"),
        ("authorization { users: [{user: a, permissions: {subscribe: {deny: []}}}] }", "empty subscribe deny list"),
        ("accounts { A { imports: [{stream: {account: B, subject: x}}] } }", '"B" account not defined for stream import'),
        ("accounts { A { imports: [{stream: {account: B, subject: x}}] }, B {} }", 'Error adding stream import "x": stream import not authorized'),
        ("accounts { A { imports: [{service: {account: B, subject: x}}] }, B {exports: [{service: x, accounts: [C]}]}, C {} }", "service import not authorized"),
        ("accounts { A { imports: [{stream: {account: B, subject: x}, prefix: p, to: q}] }, B {exports: [{stream: x}]} }", "Stream import can not have a 'prefix' and a 'to' property"),
        ("accounts { A { imports: [{stream: {account: B}}] }, B {exports: [{stream: x}]} }", "Expect an account name and a subject"),
        ("accounts { B {exports: [{stream: x, response: stream}]} }", "Detected response directive on non-service"),
        ("accounts { B {exports: [{stream: x, service: y}]} }", 'Detected service "y" but already saw a stream'),
        ("accounts { B {exports: [{service: x, response: foo}]} }", 'Unknown response type: "foo"'),
        ("accounts { B {bogus: 1} }", 'unknown field "bogus"'),
        ("tls { bogus: 1 }", 'error parsing tls config, unknown field ["bogus"]'),
        ("jetstream { cipher: rot13 }", "Unknown cipher type"),
        ("max_payload: 1t", "max_payload value is too big"),
        ("max_payload: 2mb\nmax_pending: 1mb", "max_payload (2097152) cannot be higher than max_pending (1048576)"),
        ("ping_interval: 'soon'", 'error parsing ping_interval: time: invalid duration "soon"'),
        ("port: 4222x", "port: expected an integer, got string '4222x'"),
        ("trusted_keys: [OBAD]", "valid public operator nkey"),
        ("resolver: MEMORY\noperator: nope.jwt", "error reading operator JWT"),
    ],
)  # fmt: skip
def test_validation_messages(text: str, expected: str) -> None:
    assert any(expected in e for e in errors(text)), errors(text)


def test_unknown_fields_with_position_except_referenced_variables() -> None:
    assert errors("port: 1\nbogus_key: 5") == ['t.conf:2:1: unknown field "bogus_key"']
    assert errors("UNUSED: 5") == ['t.conf:1:1: unknown field "UNUSED"']
    assert opts("PORT: 4333\nport: $PORT").port == 4333


def test_all_errors_reported_at_once() -> None:
    errs = errors(
        "bogus: 1\nport: 'x'\nauthorization {\n  token: a\n  user: b\n  password: c\n  nope: 2\n}\n"
        "accounts { $G {} }\n"
    )
    assert errs == [
        't.conf:1:1: unknown field "bogus"',
        "t.conf:2:7: port: expected an integer, got string 'x'",
        't.conf:7:3: unknown field "nope"',
        "t.conf:4:10: Cannot have a user/pass and token",
        't.conf:9:12: "$G" is a Reserved Account',
    ]


@pytest.mark.parametrize(
    "imports",
    [
        # A <-> B directly
        ("{service: {account: B, subject: q.x}}", "{service: {account: A, subject: q.x}}", None),
        # A -> B -> C -> A through wildcards
        ("{service: {account: B, subject: 'q.>'}}", "{service: {account: C, subject: 'q.x'}}",
         "{service: {account: A, subject: 'q.*'}}"),
    ],
)  # fmt: skip
def test_import_cycles_refused(imports: tuple[str, str, str | None]) -> None:
    a, b, c = imports
    text = (
        f"accounts {{ A {{ exports: [{{service: 'q.>'}}], imports: [{a}] }}\n"
        f"B {{ exports: [{{service: 'q.>'}}], imports: [{b}] }}\n"
        f"C {{ exports: [{{service: 'q.>'}}], imports: [{c or ''}] }} }}"
    )
    assert any("forms a cycle" in e for e in errors(text))


def test_no_cycle_when_subjects_do_not_meet() -> None:
    text = (
        "accounts { A { exports: [{service: 'a.>'}], imports: [{service: {account: B, subject: 'b.x'}}] }\n"
        "B { exports: [{service: 'b.>'}], imports: [{service: {account: A, subject: 'a.x'}}] } }"
    )
    assert len(opts(text).accounts) == 2


def test_operator_mode_conflicts(tmp_path: Path) -> None:
    import base64
    import json

    def b64(d: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")

    jwt = f"{b64({'alg': 'ed25519-nkey'})}.{b64({'sub': 'O', 'nats': {'type': 'operator', 'system_account': 'ASYS'}})}.sig"
    (tmp_path / "op.jwt").write_text(
        f"-----BEGIN NATS OPERATOR JWT-----\n{jwt}\n------END NATS OPERATOR JWT------\n"
    )
    o = opts(f"operator: {tmp_path / 'op.jwt'}\nresolver: MEMORY")
    assert o.operators == (jwt,) and o.system_account == "ASYS" and o.resolver is not None
    errs = errors(f"operator: {jwt}\naccounts: [A]\nno_auth_user: x")
    for msg in (
        "operators do not allow Accounts to be configured directly",
        "no_auth_user not compatible with Trusted Operator",
        "operators require an account resolver to be configured",
    ):
        assert any(msg in e for e in errs), errs

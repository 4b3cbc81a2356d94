"""Our loader and `nats-server -t` agree on which config files are valid.

Only files where natsd is not deliberately stricter are listed (natsd also
rejects empty permission lists and an undefined no_auth_user, which
`nats-server -t` lets through).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from natsd.config.errors import ConfigErrors
from natsd.config.load import load

NATS_SERVER = Path(sys.executable).parent / "nats-server"

CASES = {
    "syntax_mix": "listen: 127.0.0.1:4333\nmax_payload: 1MB; max_pending = 64MB\nping_interval '2m'\n",
    "variables": "P: 4444\nport: $P\nA = { publish: '>' }\nauthorization { users: [{user: a, password: b, permissions: $A}] }",
    "bcrypt": "authorization { users: [{user: a, password: $2a$04$P/.bd.7unw9Ew7yWJqXsl.f4oNRLQGvadEL2YnqQXbbb.IVQajRdK}] }",
    "accounts_ok": "accounts { A { exports: [{stream: 'x.>'}] }, B { imports: [{stream: {account: A, subject: 'x.y'}, prefix: p}] } }",
    "unknown_top": "port: 1\nbogus_key: 2",
    "unused_var": "UNUSED: 5",
    "missing_var": "port: $NOPE_NOT_SET_ANYWHERE",
    "token_and_user": "authorization { token: a, user: b, password: c }",
    "dup_user": "authorization { users: [{user: x}, {user: x}] }",
    "reserved_g": "accounts { $G {} }",
    "bad_subject": "authorization { users: [{user: a, permissions: {publish: ['a..b']}}] }",
    "bad_perm_key": "authorization { users: [{user: a, permissions: {foo: 1}}] }",
    "import_unauthorized": "accounts { A { imports: [{stream: {account: B, subject: x}}] }, B {} }",
    "import_no_account": "accounts { A { imports: [{service: {account: Z, subject: x}}] } }",
    "bad_response_type": "accounts { B {exports: [{service: x, response: foo}]} }",
    "payload_too_big": "max_payload: 1t",
    "bad_escape": 'server_name: "a\\qb"',
    "unterminated_map": "authorization { user: a",
}


@pytest.mark.differential
@pytest.mark.skipif(not NATS_SERVER.exists(), reason="reference nats-server not installed")
@pytest.mark.parametrize("name", sorted(CASES))
def test_validity_agrees_with_nats_server(tmp_path: Path, name: str) -> None:
    conf = tmp_path / f"{name}.conf"
    conf.write_text(CASES[name] + "\n")
    ref = subprocess.run(
        [str(NATS_SERVER), "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30
    )
    try:
        load(["-c", str(conf)], env={})
        ours_ok = True
    except ConfigErrors:
        ours_ok = False
    assert ours_ok == (ref.returncode == 0), ref.stderr + ref.stdout

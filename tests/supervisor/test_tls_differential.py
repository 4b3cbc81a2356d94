"""``verify_and_map`` outcomes: natsd's pure mapping against the real nats-server.

One nats-server runs with ``tls { verify_and_map: true }`` and a users list; each case
presents a client certificate, sends ``CONNECT {}`` + ``PING`` and records ``PONG`` (a
user was mapped; the ``+OK`` for the verbose default is skipped) or anything else,
such as ``-ERR 'Authorization Violation'`` or a failed handshake (refused). natsd's side is the pure path the
supervisor uses: ``check_client_leaf`` + ``peer_from_der`` + ``map_identity``.

Where natsd is deliberately stricter, the case asserts natsd's refusal *and* that
nats-server accepts, so a change on either side shows up:

* ``bob``: a configured DN with the same RDNs in another order (nats-server
  ``RDNsMatch``) — natsd matches in order only.
* ``carol``: subject ``CN=carol,DC=example,DC=org`` maps to the user ``CN=carol`` in
  nats-server (Go's ``ToRDNSequence`` drops DC) — natsd never matches a partial DN
  (advisory 2026-13).
* ``eve``: two CNs; nats-server maps by the last one — natsd: ambiguous, nobody.
* ``frank``: multi-valued RDN ``CN=frank+OU=eng``; nats-server flattens it — natsd:
  ambiguous, nobody.
* ``ca-as-leaf``: the CA's own certificate presented as a client certificate —
  natsd refuses any CA:TRUE leaf.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
from servers import Server, running
from tlscerts import PKI, Issued, client_context, make_pki, read_line

from natsd.auth.tlspeer import map_identity, peer_from_der
from supervisor.tls import check_client_leaf

pytestmark = pytest.mark.differential

USERS = [
    "CN=alice,O=Acme,C=US",
    "O=Acme,CN=bob",
    "CN=carol",
    "dave@example.com",
    "CN=eve2",
    "CN=frank,OU=eng,O=Acme",
    "CN=natsd test ca,O=natsd tests",
]

# case -> (subject in DER order, SAN emails, natsd accepts, nats-server accepts)
CASES: dict[str, tuple[object, list[str], bool, bool]] = {
    "alice": ([[("C", "US")], [("O", "Acme")], [("CN", "alice")]], [], True, True),
    "bob": ([[("O", "Acme")], [("CN", "bob")]], [], False, True),
    "carol": ([[("DC", "org")], [("DC", "example")], [("CN", "carol")]], [], False, True),
    "dave": ("CN=dave-device", ["dave@example.com"], True, True),
    "eve": ([[("CN", "eve")], [("CN", "eve2")]], [], False, True),
    "frank": ([[("O", "Acme")], [("CN", "frank"), ("OU", "eng")]], [], False, True),
    "mallory": ("CN=mallory,O=Acme", [], False, False),
}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def reference(pki: PKI, tmp_path_factory: pytest.TempPathFactory) -> Server:
    conf = tmp_path_factory.mktemp("conf") / "map.conf"
    users = ",\n    ".join(f'{{user: "{u}"}}' for u in USERS)
    conf.write_text(
        "tls {\n"
        f'  cert_file: "{pki.server.cert_path}"\n'
        f'  key_file: "{pki.server.key_path}"\n'
        f'  ca_file: "{pki.ca.cert_path}"\n'
        "  verify_and_map: true\n"
        "  timeout: 2\n"
        "}\n"
        f"authorization {{\n  users = [\n    {users}\n  ]\n}}\n"
    )
    with running("nats-server", config=str(conf)) as server:
        yield server  # type: ignore[misc]


def nats_server_accepts(server: Server, ca: Path, issued: Issued) -> bool:
    ctx = client_context(ca, issued.cert_path, issued.key_path)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        assert read_line(raw).startswith(b"INFO ")
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"CONNECT {}\r\nPING\r\n")
            reply = read_line(s)
            if reply == b"+OK\r\n":  # CONNECT defaults to verbose
                reply = read_line(s)
    except (ssl.SSLError, ConnectionError):
        return False
    finally:
        raw.close()
    return reply == b"PONG\r\n"


def natsd_accepts(issued: Issued) -> bool:
    if check_client_leaf(issued.der) is not None:
        return False
    return map_identity(peer_from_der(issued.der, verified=True), USERS) is not None


@pytest.mark.parametrize("case", sorted(CASES))
def test_verify_and_map_matches_or_is_stricter(pki: PKI, reference: Server, case: str) -> None:
    subject, emails, natsd_ok, reference_ok = CASES[case]
    issued = pki.client(case, subject, emails=emails)
    assert natsd_accepts(issued) is natsd_ok
    assert nats_server_accepts(reference, pki.ca.cert_path, issued) is reference_ok


def test_ca_certificate_as_leaf(pki: PKI, reference: Server) -> None:
    assert natsd_accepts(pki.ca.issued) is False
    assert nats_server_accepts(reference, pki.ca.cert_path, pki.ca.issued) is True


def test_wrong_ca_refused_by_both(pki: PKI, reference: Server) -> None:
    foreign = pki.other_ca.issue(
        "foreign-alice", [[("C", "US")], [("O", "Acme")], [("CN", "alice")]]
    )
    # natsd refuses at the handshake (see test_tls_context); its mapping alone would
    # accept the DN, which is why verification happens first.
    assert map_identity(peer_from_der(foreign.der, verified=False), USERS) is None
    assert nats_server_accepts(reference, pki.ca.cert_path, foreign) is False

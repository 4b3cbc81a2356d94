"""natsd/auth/sysreq.py: which $SYS subjects reach the supervisor, for whom."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from natsd.auth.sysreq import ACCOUNT_SCOPED, ApiRoute, api_route, is_system_request

SID = "NSERVERID"


@pytest.mark.parametrize(
    ("subject", "route"),
    [
        (b"$SYS.REQ.SERVER.PING", ApiRoute("server", "STATSZ")),
        (b"$SYS.REQ.SERVER.PING.VARZ", ApiRoute("server", "VARZ")),
        (b"$SYS.REQ.SERVER.NSERVERID.CONNZ", ApiRoute("server", "CONNZ")),
        (b"$SYS.REQ.SERVER.OTHER.CONNZ", None),
        (b"$SYS.REQ.SERVER.PING.STATZ", None),  # STATZ is an account endpoint
        (b"$SYS.REQ.SERVER.PING.PROFILEZ", None),
        (b"$SYS.REQ.ACCOUNT.A.SUBSZ", ApiRoute("account", "SUBSZ", "A")),
        (b"$SYS.REQ.ACCOUNT.A.INFO", ApiRoute("account", "INFO", "A")),
        (b"$SYS.REQ.ACCOUNT.A.CONNS", ApiRoute("account", "CONNS", "A")),
        (b"$SYS.REQ.ACCOUNT.A.BOGUS", None),
        (b"$SYS.REQ.ACCOUNT.PING.STATZ", ApiRoute("account", "STATZ", "PING")),
        (b"$SYS.REQ.ACCOUNT.A.CLAIMS.UPDATE", None),
        (b"$SYS.REQ.ACCOUNT..CONNZ", None),
        (b"$SYS.REQ.USER.INFO", ApiRoute("user", "INFO")),
        (b"$SYS.REQ.SERVER.PING.VARZ.X", None),
        (b"$SYS.REQ.SERVER.\xff.VARZ", None),
    ],
)
def test_api_route(subject: bytes, route: ApiRoute | None) -> None:
    assert api_route(subject, SID) == route


@pytest.mark.parametrize("subject", sorted(ACCOUNT_SCOPED))
def test_every_account_reaches_its_own_views(subject: bytes) -> None:
    assert is_system_request(subject, is_system=False, server_id=SID)
    assert is_system_request(subject, is_system=True, server_id=SID)


@pytest.mark.parametrize(
    "subject",
    [
        b"$SYS.REQ.SERVER.PING",
        b"$SYS.REQ.SERVER.PING.VARZ",
        b"$SYS.REQ.SERVER.NSERVERID.CONNZ",
        b"$SYS.REQ.ACCOUNT.B.CONNZ",
        b"$SYS.REQ.ACCOUNT.B.SUBSZ",
        b"$SYS.REQ.CLAIMS.LIST",
        b"$SYS.REQ.CLAIMS.UPDATE",
        b"$SYS.REQ.ACCOUNT.ABC.CLAIMS.UPDATE",
        b"$SYS.ACCOUNT.ABC.CLAIMS.UPDATE",
    ],
)
def test_only_the_system_account_reaches_the_rest(subject: bytes) -> None:
    assert is_system_request(subject, is_system=True, server_id=SID)
    assert not is_system_request(subject, is_system=False, server_id=SID)


@given(st.binary(max_size=60))
def test_other_accounts_reach_exactly_the_scoped_four(subject: bytes) -> None:
    assert is_system_request(subject, is_system=False, server_id=SID) == (subject in ACCOUNT_SCOPED)


@given(st.lists(st.sampled_from(["$SYS", "REQ", "SERVER", "ACCOUNT", "PING", SID, "VARZ", "STATZ", "X", ""]), max_size=6))
def test_routes_only_known_endpoints(tokens: list[str]) -> None:
    subject = ".".join(tokens).encode()
    route = api_route(subject, SID)
    if route is not None:
        assert subject.startswith(b"$SYS.REQ.")
        assert is_system_request(subject, is_system=True, server_id=SID)

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from servers import Server, running


@pytest.fixture
def natsd() -> Iterator[Server]:
    with running("natsd") as s:
        yield s


@pytest.fixture
def nats_server() -> Iterator[Server]:
    with running("nats-server") as s:
        yield s


@pytest.fixture(params=["natsd", "nats-server"])
def any_server(request: pytest.FixtureRequest) -> Iterator[Server]:
    """The same scenario against both servers (differential tests)."""
    with running(request.param) as s:
        yield s

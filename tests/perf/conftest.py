"""Fixtures for the load-generator smoke tests: real nats-server instances.

Each fixture starts the reference nats-server on a free loopback port with
the config a scenario family needs (none, accounts, stream import, TLS,
user/password, token), using the harness's own launcher and config writers so
those are exercised too.  Servers are module-scoped to keep the suite fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from perf import certs, servers
from perf.conn import Creds, Endpoint
from perf.scenarios import Options

if servers.nats_server_binary() is None:  # pragma: no cover - environment guard
    pytest.skip("nats-server binary not available", allow_module_level=True)


def _start(tmp: Path, name: str, text: str | None) -> servers.ServerProc:
    cfg = servers.write_config(tmp / f"{name}.conf", text) if text else None
    port = servers.free_port()
    return servers.ServerProc(name, servers.nats_server_argv(port, cfg), port, 15).start()


@pytest.fixture(scope="module")
def srv_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("perf-servers")


@pytest.fixture(scope="module")
def plain_server(srv_dir: Path) -> Iterator[servers.ServerProc]:
    srv = _start(srv_dir, "plain", None)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def accounts_server(srv_dir: Path) -> Iterator[servers.ServerProc]:
    srv = _start(srv_dir, "accounts", servers.accounts_config(3))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def import_server(srv_dir: Path) -> Iterator[servers.ServerProc]:
    srv = _start(srv_dir, "import", servers.import_config())
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def tls_material(srv_dir: Path) -> dict[str, str]:
    return certs.generate(srv_dir / "certs")


@pytest.fixture(scope="module")
def tls_server(srv_dir: Path, tls_material: dict[str, str]) -> Iterator[servers.ServerProc]:
    srv = _start(srv_dir, "tls", servers.tls_config(tls_material["cert"], tls_material["key"]))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def user_server(srv_dir: Path) -> Iterator[servers.ServerProc]:
    srv = _start(srv_dir, "user", servers.auth_config("bench", "s3cret", None))
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token_server(srv_dir: Path) -> Iterator[servers.ServerProc]:
    srv = _start(srv_dir, "token", servers.auth_config(None, None, "tok3n"))
    yield srv
    srv.stop()


def _small_options(srv: servers.ServerProc, scenario: str, **kw: object) -> Options:
    """A tiny bounded run: a few hundred messages, two generator processes."""
    ep = kw.pop("endpoint", None) or Endpoint(port=srv.port)
    creds = kw.pop("creds", None) or Creds()
    base: dict[str, object] = dict(msgs=300, procs=2, progress=False, quiet_s=0.5,
                                   timeout=10.0, server_pid=srv.pid)
    base.update(kw)
    return Options(scenario=scenario, endpoint=ep, creds=creds, **base)  # type: ignore[arg-type]


@pytest.fixture
def small_options() -> Callable[..., Options]:
    return _small_options

"""Every shipped example config (except TLS ones, which need certificates) loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from natsd.config.load import load
from natsd.config.schema import Options

CONFIG_DIR = Path(__file__).resolve().parents[2] / "config"
EXAMPLES = sorted(p for p in CONFIG_DIR.glob("*.conf") if not p.name.startswith("tls"))


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {
        "natsd.conf",
        "auth-token.conf",
        "auth-users.conf",
        "auth-nkeys.conf",
        "accounts.conf",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_loads_without_warnings(path: Path) -> None:
    _, opts, warnings = load(["-c", str(path)], env={})
    assert warnings == []
    assert opts.config_file == str(path)


def test_natsd_conf_is_the_embedded_defaults() -> None:
    path = CONFIG_DIR / "natsd.conf"
    _, opts, _ = load(["-c", str(path)], env={})
    assert opts == Options(config_file=str(path))


def test_accounts_example_shares_a_stream_and_a_service() -> None:
    _, opts, _ = load(["-c", str(CONFIG_DIR / "accounts.conf")], env={})
    orders, billing = opts.accounts
    assert orders.stream_exports and orders.service_exports
    assert billing.stream_imports[0].account == billing.service_imports[0].account == "ORDERS"

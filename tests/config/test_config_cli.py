"""Command-line spellings (Go flag package rules) and flags overriding the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from natsd.config.cli import UsageError, parse_args
from natsd.config.errors import ConfigErrors
from natsd.config.load import load


@pytest.mark.parametrize(
    "argv",
    [
        ["-p", "4333"],
        ["--p", "4333"],
        ["-port=4333"],
        ["--port=4333"],
        ["--port", "4333"],
        ["-p=4333"],
    ],
)
def test_port_spellings(argv: list[str]) -> None:
    assert parse_args(argv).port == 4333


@pytest.mark.parametrize(
    ("argv", "debug", "trace"),
    [
        (["-D"], True, None), (["--debug"], True, None), (["--debug=true"], True, None),
        (["-D=false"], False, None), (["-V"], None, True), (["--trace"], None, True),
        (["-DV"], True, True), (["-VV"], None, True), (["-DVV"], True, True),
    ],
)  # fmt: skip
def test_logging_flags(argv: list[str], debug: bool | None, trace: bool | None) -> None:
    cli = parse_args(argv)
    assert (cli.debug, cli.trace) == (debug, trace)


@pytest.mark.parametrize(
    ("argv", "field", "value"),
    [
        (["-a", "127.0.0.1"], "host", "127.0.0.1"), (["--addr", "h"], "host", "h"),
        (["--net", "h"], "host", "h"), (["-n", "srv"], "server_name", "srv"),
        (["--name", "srv"], "server_name", "srv"), (["--server_name", "srv"], "server_name", "srv"),
        (["-c", "f.conf"], "config_file", "f.conf"), (["--config=f.conf"], "config_file", "f.conf"),
        (["-l", "x.log"], "log_file", "x.log"), (["-P", "x.pid"], "pid_file", "x.pid"),
        (["-T=false"], "logtime", False), (["-m", "8222"], "http_port", 8222),
        (["-ms", "8443"], "https_port", 8443), (["-js"], "jetstream", True),
        (["-sd", "/d"], "store_dir", "/d"), (["--user", "u"], "user", "u"),
        (["--pass", "p"], "password", "p"), (["--auth", "t"], "token", "t"),
        (["--tlsverify"], "tls_verify", True), (["--tlscacert", "ca.pem"], "tls_ca_cert", "ca.pem"),
        (["--client_advertise", "h:1"], "client_advertise", "h:1"), (["--workers", "3"], "workers", 3),
        (["-s"], "syslog", True), (["--syslog"], "syslog", True),
        (["-r", "udp://h:514"], "remote_syslog", "udp://h:514"),
        (["--remote_syslog=tcp://h:1"], "remote_syslog", "tcp://h:1"),
    ],
)  # fmt: skip
def test_flag_fields(argv: list[str], field: str, value: object) -> None:
    assert getattr(parse_args(argv), field) == value


@pytest.mark.parametrize(
    ("argv", "action"),
    [([], "run"), (["-t"], "check"), (["-v"], "version"), (["--version"], "version"),
     (["-h"], "help"), (["--help"], "help"), (["-sl", "reload"], "signal")],
)  # fmt: skip
def test_actions(argv: list[str], action: str) -> None:
    assert parse_args(argv).action == action


def test_signal_with_pid_or_pidfile() -> None:
    cli = parse_args(["--signal", "ldm=/var/run/n.pid"])
    assert (cli.signal, cli.signal_target) == ("ldm", "/var/run/n.pid")
    cli = parse_args(["-sl", "STOP=42"])
    assert (cli.signal, cli.signal_target) == ("stop", "42")
    with pytest.raises(UsageError, match="unknown signal"):
        parse_args(["-sl", "bogus"])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-x"], "flag provided but not defined: -x"),
        (["--bogus=1"], "flag provided but not defined: -bogus"),
        (["-p"], "flag needs an argument: -p"),
        (["-p", "abc"], 'invalid value "abc" for flag -p'),
        (["-D=maybe"], 'invalid boolean value "maybe"'),
        (["stray"], "unexpected argument"),
    ],
)
def test_bad_command_lines_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as ei:
        parse_args(argv)
    assert message in str(ei.value) and "--help" in str(ei.value)
    assert isinstance(ei.value, ConfigErrors)  # one except clause catches both


def test_compat_flags_warn_not_fail() -> None:
    cli = parse_args(["--routes", "nats://a:6222", "--cluster_name", "c"])
    assert len(cli.warnings) == 2 and all("ignores" in w for w in cli.warnings)


@pytest.mark.parametrize("flags_first", [True, False])
def test_flags_override_file_wherever_they_stand(tmp_path: Path, flags_first: bool) -> None:
    conf = tmp_path / "s.conf"
    conf.write_text("port: 4000\nserver_name: from_file\ndebug: false\nmax_payload: 1kb\n")
    flags = ["-p", "5000", "-n", "from_flag", "-D"]
    argv = [*flags, "-c", str(conf)] if flags_first else ["-c", str(conf), *flags]
    _, opts, _ = load(argv, env={})
    assert (opts.port, opts.server_name, opts.debug) == (5000, "from_flag", True)
    assert opts.max_payload == 1024 and opts.config_file == str(conf)


def test_auth_and_tls_flags_build_options(tmp_path: Path) -> None:
    _, opts, _ = load(["--user", "u", "--pass", "p"], env={})
    assert (opts.authorization.user, opts.authorization.password) == ("u", "p")
    _, opts, _ = load(
        ["--tlsverify", "--tlscert", "c.pem", "--tlskey", "k.pem", "--tlscacert", "ca.pem"]
    )
    assert opts.tls is not None and opts.tls.verify and opts.tls.ca_file == "ca.pem"
    assert opts.tls.min_version == "1.2"  # same secure default as file TLS
    with pytest.raises(ConfigErrors, match="certificate must be present"):
        load(["--tls"])


def test_no_config_gives_schema_defaults() -> None:
    from natsd.config.schema import Options

    cli, opts, warnings = load([], env={})
    assert cli.action == "run" and opts == Options() and warnings == []


def test_remote_syslog_from_file_and_flag(tmp_path: Path) -> None:
    conf = tmp_path / "s.conf"
    conf.write_text('syslog: true\nremote_syslog: "udp://10.0.0.1:5514"\n')
    _cli, opts, _w = load(["-c", str(conf)])
    assert (opts.syslog, opts.remote_syslog) == (True, "udp://10.0.0.1:5514")
    _cli, opts, _w = load(["-c", str(conf), "-r", "unix:///dev/log"])
    assert opts.remote_syslog == "unix:///dev/log"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://h:514", 'invalid network type "http"'),
        ("udp://:514", "has no host"),
        ("tcp://h:99999", "invalid remote_syslog URL"),
        ("unix://", "has no socket path"),
    ],
)
def test_bad_remote_syslog_is_a_config_error_at_its_line(tmp_path: Path, url: str, message: str) -> None:
    conf = tmp_path / "bad.conf"
    conf.write_text(f'port: 4222\nremote_syslog: "{url}"\n')
    with pytest.raises(ConfigErrors) as ei:
        load(["-c", str(conf)])
    assert f"{conf}:2:" in str(ei.value) and message in str(ei.value)


def test_conflict_between_flag_and_file_points_at_the_file_line(tmp_path: Path) -> None:
    conf = tmp_path / "acc.conf"
    conf.write_text('port: 4222\naccounts {\n  A: { users: [ {user: a, password: b} ] }\n}\n')
    with pytest.raises(ConfigErrors) as ei:
        load(["-c", str(conf), "--auth", "tok"])
    assert f"{conf}:2:" in str(ei.value) and "Can not have a token and a users array" in str(ei.value)

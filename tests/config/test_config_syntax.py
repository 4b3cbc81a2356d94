"""The NATS conf syntax: each spelling, includes, variables, env, positions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from natsd.config.errors import ConfigError, ConfigErrors
from natsd.config.parser import parse_file, parse_text


def plain(text: str, env: dict[str, str] | None = None) -> dict:
    return parse_text(text, "t.conf", env={} if env is None else env).plain()


@pytest.mark.parametrize(
    "text",
    [
        "port = 4222",
        "port: 4222",
        "port 4222",
        "port=4222",
        "port:4222;",
        "port 4222,",
        "  port   4222  # c",
    ],
)
def test_key_value_separators(text: str) -> None:
    assert plain(text) == {"port": 4222}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: true", True), ("a: FALSE", False), ("a: yes", True), ("a: No", False),
        ("a: on", True), ("a: OFF", False), ("a: 'true'", "true"),
        ("a: 1k", 1000), ("a: 1K", 1000), ("a: 1kb", 1024), ("a: 1ki", 1024), ("a: 1KiB", 1024),
        ("a: 2m", 2_000_000), ("a: 2mb", 2 << 20), ("a: 1g", 10**9), ("a: 1GB", 1 << 30),
        ("a: 1t", 10**12), ("a: 1tb", 1 << 40), ("a: 1p", 10**15), ("a: 1e", 10**18),
        ("a: -1", -1), ("a: -2k", -2000), ("a: 1.5", 1.5), ("a: -0.25", -0.25),
        ("a: 127.0.0.1:4222", "127.0.0.1:4222"), ("a: 2s", "2s"), ("a: 1h30m", "1h30m"),
        ("a: bare-string", "bare-string"), ("a: x.y.>", "x.y.>"),
        ('a: "x\\ty\\n\\"q\\"\\\\"', 'x\ty\n"q"\\'), ('a: "\\x41\\x42"', "AB"),
        ("a: 'raw \\t $x'", "raw \\t $x"), ('a: "$NOT_A_VAR"', "$NOT_A_VAR"),
        ("a: 2006-01-02T15:04:05Z", dt.datetime(2006, 1, 2, 15, 4, 5, tzinfo=dt.UTC)),
    ],
)  # fmt: skip
def test_scalars(text: str, expected: object) -> None:
    got = plain(text)["a"]
    assert got == expected and type(got) is type(expected)


def test_comments_maps_arrays_nested() -> None:
    text = """
    // slash comment
    m {              # map right after the key
      a: [1, 2
          3]         # newline-separated array items
      b = { c: [ {d: x}, {d: y} ] }; e: 'z'
    }
    """
    assert plain(text) == {"m": {"a": [1, 2, 3], "b": {"c": [{"d": "x"}, {"d": "y"}]}, "e": "z"}}


def test_block_string_is_raw_and_multiline() -> None:
    text = "cert (\n-----BEGIN X-----\nabc $NOPE \\q\n)\nport: 1\n"
    assert plain(text) == {"cert": "\n-----BEGIN X-----\nabc $NOPE \\q\n", "port": 1}


def test_quoted_keys_keep_their_text() -> None:
    assert plain("\"a b\": 1\n'c.d' = 2") == {"a b": 1, "c.d": 2}


def test_positions_are_file_line_col() -> None:
    root = parse_text("\n  port: 4222\nm {\n  k: [a,\n    b]\n}\n", "f.conf", env={})
    port = root.value["port"]
    assert (port.key_pos.line, port.key_pos.col, port.pos.col) == (2, 3, 9)
    b = root.value["m"].value["k"].value[1]
    assert (b.pos.file, b.pos.line, b.pos.col) == ("f.conf", 5, 5)


def test_variables_scope_walks_outward_and_marks_used() -> None:
    root = parse_text("A: 1\nm { B: 2, x: $A, y: $B }\nz: $A", "t.conf", env={})
    assert root.plain()["m"] == {"B": 2, "x": 1, "y": 2}
    assert root.value["A"].used and root.value["m"].value["B"].used
    assert not root.value["z"].used


def test_variable_values_can_be_maps() -> None:
    assert plain("P = {publish: x}\nu: {permissions: $P}")["u"] == {"permissions": {"publish": "x"}}


def test_env_values_are_reparsed() -> None:
    got = plain("a: $NUM\nb: $STR\nc: $LIST", env={"NUM": "42", "STR": "hello", "LIST": "[1, 2]"})
    assert got == {"a": 42, "b": "hello", "c": [1, 2]}


def test_env_cycle_detected() -> None:
    with pytest.raises(ConfigErrors, match="cycle"):
        plain("a: $X", env={"X": "$Y", "Y": "$X"})


def test_unknown_variable_reports_line_and_all_of_them() -> None:
    with pytest.raises(ConfigErrors) as ei:
        plain("a: $NOPE\nb: 1\nc: $ALSO")
    msgs = [str(e) for e in ei.value.errors]
    assert msgs == [
        "t.conf:1:4: variable reference for 'NOPE' on line 1 can not be found",
        "t.conf:3:4: variable reference for 'ALSO' on line 3 can not be found",
    ]


def test_bcrypt_bare_literal_is_not_a_variable() -> None:
    h = "$2a$11$abcdefghijklmnopqrstuu5VkLBW4bV5wNVp2vOHvLD6S9FYAPcla"
    assert plain(f"p: {h}")["p"] == h


def test_include_relative_to_including_file(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "users.conf").write_text("users: [{user: a}]\ninclude more.conf\n")
    (tmp_path / "sub" / "more.conf").write_text("timeout: 3\n")
    main = tmp_path / "main.conf"
    main.write_text('port: 1\nauthorization {\n  include "sub/users.conf"\n}\n')
    root = parse_file(str(main), env={})
    assert root.plain() == {"port": 1, "authorization": {"users": [{"user": "a"}], "timeout": 3}}
    # positions of included values name the included file
    t = root.value["authorization"].value["timeout"]
    assert t.pos.file.endswith("more.conf") and t.pos.line == 1


def test_include_cycle_and_missing_file(tmp_path: Path) -> None:
    (tmp_path / "a.conf").write_text("include b.conf\n")
    (tmp_path / "b.conf").write_text("include a.conf\n")
    with pytest.raises(ConfigErrors, match="include cycle"):
        parse_file(str(tmp_path / "a.conf"), env={})
    (tmp_path / "c.conf").write_text("x: 1\ninclude nope.conf\n")
    with pytest.raises(ConfigErrors, match=r"c\.conf:2:9: error opening include file"):
        parse_file(str(tmp_path / "c.conf"), env={})


@pytest.mark.parametrize(
    ("text", "where", "fragment"),
    [
        ("a: 1 2", (1, 6), "Expected a value to end"),
        ("a: [1,, 2]", (1, 7), "Unexpected array value terminator"),
        ('a: "\\q"', (1, 5), "Invalid escape character 'q'"),
        ("a: .5", (1, 4), "Floats must start with a digit"),
        ("a: {b: 1", (1, 9), "Unexpected EOF"),
        ("a: 'open", (1, 4), "Unexpected EOF"),
        ("a: -x", (1, 4), "Invalid number"),
        ("a =\n 1", (1, 4), "Expected value but found new line"),
    ],
)
def test_syntax_errors_have_positions(text: str, where: tuple[int, int], fragment: str) -> None:
    with pytest.raises(ConfigErrors) as ei:
        parse_text(text, "s.conf", env={})
    (err,) = ei.value.errors
    assert isinstance(err, ConfigError) and (err.line, err.col) == where
    assert fragment in err.reason and str(err).startswith(f"s.conf:{where[0]}:{where[1]}: ")

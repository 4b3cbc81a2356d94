"""natsd.proto stays sans-IO: no module imports I/O or clock modules."""

from __future__ import annotations

import ast
from pathlib import Path

import natsd.proto

FORBIDDEN = {"asyncio", "socket", "ssl", "os", "time", "selectors", "subprocess", "threading"}


def test_proto_imports_no_io() -> None:
    root = Path(natsd.proto.__file__).parent
    files = sorted(root.glob("*.py"))
    assert len(files) >= 5
    for f in files:
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{f.name} imports {name}"

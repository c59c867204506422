"""protocol/ stays sans-IO: no module in it imports networking, clocks, threads or logging."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import protocol

FORBIDDEN = {"socket", "ssl", "asyncio", "selectors", "zmq", "threading", "time", "logging"}
PACKAGE_DIR = Path(protocol.__file__).parent
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))


def imported_modules(source: str) -> set[str]:
    """Top-level names of every absolute import, wherever it appears in the file."""
    names = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and getattr(node.func, "id", getattr(node.func, "attr", "")) in
            {"__import__", "import_module"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names.add(node.args[0].value.split(".")[0])
    return names


def test_the_walk_finds_the_package() -> None:
    names = {p.relative_to(PACKAGE_DIR).as_posix() for p in MODULES}
    assert {"__init__.py", "_connection.py", "binary/primitives.py"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(PACKAGE_DIR).as_posix())
def test_no_io_imports(path: Path) -> None:
    bad = imported_modules(path.read_text(encoding="utf-8")) & FORBIDDEN
    assert not bad, f"{path} imports {sorted(bad)}"


def test_the_checker_catches_every_form() -> None:
    source = (
        "import socket\nimport asyncio.events\nfrom time import monotonic\n"
        "def f():\n    import threading\n    __import__('ssl')\n"
        "importlib.import_module('zmq')\n"
    )
    assert imported_modules(source) == {"socket", "asyncio", "time", "threading", "ssl", "zmq"}

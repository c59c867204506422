"""The static checks run with the suite, so CI (./dev test) holds the tree to them: ruff, and
mypy with pyproject.toml's [tool.mypy] settings on protocol, broker and libclient; every module
of those packages imports first in a fresh interpreter (no import circle hides behind the order
modules happen to load in), and no import circle hides in function-level imports either (one
known group excepted); and no function in them is over 60 lines."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("protocol", "broker", "libclient")
MAX_FUNCTION_LINES = 60


def _run(*command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def _sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


# A package's __main__ runs its command line when imported: the package itself stands for it.
MODULES = [_module_name(p) for p in _sources() if p.name != "__main__.py"]


def test_ruff_finds_nothing():
    result = _run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_nothing():
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_module_walk_finds_every_package():
    assert {"protocol", "protocol.binary.codec", "broker.dispatch", "broker.devcluster",
            "libclient", "libclient.datatypes"} <= set(MODULES)


# One interpreter that has loaded none of our packages forks a child per module, which imports
# that module first: as fresh as a new interpreter for protocol, broker and libclient, without
# paying for the interpreter and the third-party libraries (preloaded) 130 times.
_IMPORT_EACH_FIRST = """
import importlib, os, sys, traceback
for lib in ("asyncio", "msgpack", "zmq", "zmq.asyncio", "uvloop", "prometheus_client"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not any(m.split(".")[0] in ("protocol", "broker", "libclient") for m in sys.modules)
for name in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            importlib.import_module(name)
        except BaseException:
            traceback.print_exc()
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status:
        print(name)
"""


def test_every_module_imports_first_in_a_fresh_interpreter():
    result = _run(sys.executable, "-c", _IMPORT_EACH_FIRST, *MODULES)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "", (
        f"these modules fail as the first import:\n{result.stdout}\n{result.stderr[-3000:]}"
    )


def test_the_fresh_import_check_catches_a_circle(tmp_path: Path):
    for name, imports in (("circ_a", "from circ_b import B\nA = 1\n"),
                          ("circ_b", "from circ_a import A\nB = 2\n")):
        (tmp_path / f"{name}.py").write_text(imports)
    result = subprocess.run([sys.executable, "-c", _IMPORT_EACH_FIRST, "circ_a", "circ_b"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["circ_a", "circ_b"]
    assert "partially initialized module" in result.stderr


# The pyignite-compatible type hints hash values with the stub's own encoder, which is built on
# those hints: they reach each other through imports inside functions, as pyignite's modules do.
KNOWN_CIRCLE = frozenset({
    "libclient.binary", "libclient.datatypes._hashing", "libclient.datatypes._hints",
    "libclient.datatypes.base", "libclient.utils", "libclient.wire",
})


def _imported_modules(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``name`` imports, at module level or in functions, but not
    under ``if TYPE_CHECKING:`` (``from pkg import sub`` counts as importing ``pkg.sub``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {id(n) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
                   for stmt in node.body for n in ast.walk(stmt)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join([*base, node.module or ""]).strip(".") if node.level else node.module
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else str(target))
    return (found & known) - {name}


def import_circles(modules: dict[str, Path]) -> list[set[str]]:
    """The groups of modules that import each other, directly or not (Tarjan's strongly
    connected components of the import graph, groups of two or more)."""
    known = set(modules)
    edges = {name: _imported_modules(name, path, known) for name, path in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while not group or v not in group:
                group.add(stack.pop())
            if len(group) > 1:
                circles.append(group)

    for name in sorted(modules):
        if name not in index:
            visit(name)
    return circles


def test_no_import_circle_but_the_known_one():
    modules = {_module_name(p): p for p in _sources()}
    circles = import_circles(modules)
    assert all(group <= KNOWN_CIRCLE for group in circles), circles


def test_the_circle_check_sees_imports_inside_functions(tmp_path: Path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from c import g\n")
    (tmp_path / "c.py").write_text("if TYPE_CHECKING:\n    import b\ndef g():\n    import a\n")
    modules = {name: tmp_path / f"{name}.py" for name in "abc"}
    assert import_circles(modules) == [{"a", "b", "c"}]
    (tmp_path / "c.py").write_text("if TYPE_CHECKING:\n    import a\n")
    assert import_circles(modules) == []


def long_functions(source: str, limit: int = MAX_FUNCTION_LINES) -> list[tuple[str, int, int]]:
    """(name, first line, length) of every function or method over ``limit`` lines, from the
    ``def`` line to its last line (nested functions count on their own too)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            length = node.end_lineno - node.lineno + 1
            if length > limit:
                found.append((node.name, node.lineno, length))
    return found


def test_no_function_is_over_60_lines():
    over = [f"{path.relative_to(ROOT)}:{line} {name} ({length} lines)"
            for path in _sources()
            for name, line, length in long_functions(path.read_text(encoding="utf-8"))]
    assert not over, "functions over 60 lines:\n" + "\n".join(over)


def test_the_length_check_counts_from_def_to_last_line():
    body = "".join(f"    x{i} = {i}\n" for i in range(60))
    source = f"def long():\n{body}\nclass C:\n    async def short(self):\n        pass\n"
    assert long_functions(source) == [("long", 1, 61)]
    assert long_functions(source, limit=61) == []

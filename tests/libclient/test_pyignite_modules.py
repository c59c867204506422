"""Every pyignite 0.6.1 module that user code imports exists at the same path under libclient,
with every public name, constant value and class helper: generated from the installed pyignite
package (pkgutil walk + each module's own source), so a name pyignite has and libclient lacks
fails here unless it is listed below as a deliberate omission, with the reason."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil

import pyignite
import pytest

# The modules of pyignite 0.6.1's API reference (docs/source/pyignite*.rst at tag 0.6.1), plus
# utils and constants, which the reference listed up to 0.5 and user code still imports.
DOCUMENTED = {
    "pyignite", "pyignite.aio_cache", "pyignite.aio_client", "pyignite.aio_cluster",
    "pyignite.binary", "pyignite.cache", "pyignite.client", "pyignite.cluster",
    "pyignite.connection", "pyignite.connection.protocol_context", "pyignite.cursors",
    "pyignite.datatypes", "pyignite.datatypes.base", "pyignite.datatypes.binary",
    "pyignite.datatypes.cache_config", "pyignite.datatypes.cache_properties",
    "pyignite.datatypes.cluster_state", "pyignite.datatypes.complex",
    "pyignite.datatypes.expiry_policy", "pyignite.datatypes.internal",
    "pyignite.datatypes.key_value", "pyignite.datatypes.null_object",
    "pyignite.datatypes.primitive", "pyignite.datatypes.primitive_arrays",
    "pyignite.datatypes.primitive_objects", "pyignite.datatypes.sql",
    "pyignite.datatypes.standard", "pyignite.datatypes.transactions", "pyignite.exceptions",
    "pyignite.monitoring", "pyignite.transaction", "pyignite.utils", "pyignite.constants",
}

# pyignite modules libclient does not have, on purpose.
NOT_MIRRORED = {
    # the C extension behind utils.hashcode/schema_id (libclient.utils uses protocol.hashing)
    "pyignite._cutils",
    # one request/response codec per node operation: the broker talks to the nodes
    "pyignite.api", "pyignite.api.affinity", "pyignite.api.binary", "pyignite.api.cache_config",
    "pyignite.api.cluster", "pyignite.api.key_value", "pyignite.api.result", "pyignite.api.sql",
    "pyignite.api.tx_api",
    "pyignite.queries", "pyignite.queries.cache_info", "pyignite.queries.op_codes",
    "pyignite.queries.query", "pyignite.queries.response",
    "pyignite.stream", "pyignite.stream.binary_stream",
    # node sockets, the node handshake and TLS belong to the broker
    "pyignite.connection.aio_connection", "pyignite.connection.connection",
    "pyignite.connection.handshake", "pyignite.connection.ssl",
}

# Public names libclient leaves out of a mirrored module, on purpose.
OMITTED_NAMES = {
    # node connections: the broker holds them (Client.random_node describes the node instead)
    ("pyignite.connection", "Connection"), ("pyignite.connection", "AioConnection"),
    # the codec's type inference writing into a BinaryStream (libclient.wire maps values)
    ("pyignite.datatypes.internal", "infer_from_python"),
    ("pyignite.datatypes.internal", "infer_from_python_async"),
    # turns pyignite.api's APIResult into an exception: there are no APIResults here
    ("pyignite.utils", "status_to_exception"),
}

# Members of pyignite's type-hint classes that read or write the wire format (BinaryStream,
# ctypes structures): the broker encodes, so hints have none of them.
CODEC_MEMBERS = {
    "parse", "parse_async", "from_python", "from_python_async", "to_python", "to_python_async",
    "parse_not_null", "parse_not_null_async", "from_python_not_null",
    "from_python_not_null_async", "to_python_not_null", "to_python_not_null_async",
    "build_c_type", "build_header", "c_type", "get_header_class", "offset_c_type",
    "schema_type", "write_policy", "get_subtype", "map_python_type",
}


def _walk() -> list[str]:
    found = sorted(m.name for m in pkgutil.walk_packages(pyignite.__path__, "pyignite."))
    return ["pyignite", *found]


MODULES = _walk()
MIRRORED = [m for m in MODULES if m not in NOT_MIRRORED]


def _ours(name: str) -> str:
    return "libclient" + name[len("pyignite"):]


def _public_names(module) -> list[str]:
    """``__all__``, else what the module's own source binds at top level (defs, classes,
    assignments; for a package also what it imports from pyignite)."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    names: list[str] = []
    for node in ast.parse(inspect.getsource(module)).body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(node.name)
        elif isinstance(node, ast.Assign):
            names += [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.append(node.target.id)
        elif (isinstance(node, ast.ImportFrom) and hasattr(module, "__path__")
              and (node.level or (node.module or "").startswith("pyignite"))):
            names += [a.asname or a.name for a in node.names if a.name != "*"]
    return [n for n in names if not n.startswith("_")]


def _expected(module_name: str) -> list[str]:
    theirs = importlib.import_module(module_name)
    return [n for n in _public_names(theirs) if (module_name, n) not in OMITTED_NAMES]


def test_the_walk_finds_every_documented_module():
    assert DOCUMENTED - set(MODULES) == set()
    assert set() == DOCUMENTED & NOT_MIRRORED
    # a stale entry means pyignite changed (its C extension is optional: absent, not stale)
    assert NOT_MIRRORED - set(MODULES) <= {"pyignite._cutils"}


@pytest.mark.parametrize("name", MIRRORED)
def test_module_exists_with_every_public_name(name):
    ours = importlib.import_module(_ours(name))
    assert [n for n in _expected(name) if not hasattr(ours, n)] == []


def _comparable(value):
    """A value with classes replaced by their names (ours are other classes of those names)."""
    if inspect.isclass(value):
        return value.__name__
    if isinstance(value, list | tuple | set | frozenset):
        items = [_comparable(v) for v in value]
        return sorted(items, key=repr) if any(inspect.isclass(v) for v in value) else value
    return value


# Constants whose value depends on the installation: pyignite's FALLBACK is True when its C
# extension is missing; libclient's is False (protocol.hashing is its one implementation).
INSTALLATION_DEPENDENT = {("pyignite.utils", "FALLBACK")}


@pytest.mark.parametrize("name", MIRRORED)
def test_constants_have_pyignites_values(name):
    theirs, ours = importlib.import_module(name), importlib.import_module(_ours(name))
    for n in _expected(name):
        if (name, n) in INSTALLATION_DEPENDENT:
            continue
        value = getattr(theirs, n)
        if isinstance(value, bool | int | float | str | bytes | tuple | frozenset | set | list):
            assert _comparable(getattr(ours, n)) == _comparable(value), n
        elif inspect.isclass(value):
            assert inspect.isclass(getattr(ours, n)), n
        elif callable(value):
            assert callable(getattr(ours, n)), n
            assert (inspect.iscoroutinefunction(getattr(ours, n))
                    == inspect.iscoroutinefunction(value)), n


def _classes():
    for name in MIRRORED:
        theirs = importlib.import_module(name)
        for n in _expected(name):
            cls = getattr(theirs, n)
            if inspect.isclass(cls) and cls.__module__.startswith("pyignite"):
                yield name, n


@pytest.mark.parametrize("module_name, class_name", sorted(set(_classes())),
                         ids=lambda x: x.rsplit(".", 1)[-1])
def test_classes_have_every_public_member(module_name, class_name):
    theirs = getattr(importlib.import_module(module_name), class_name)
    ours = getattr(importlib.import_module(_ours(module_name)), class_name)
    wanted = {m for m in dir(theirs) if not m.startswith("_")} - CODEC_MEMBERS
    assert sorted(m for m in wanted if not hasattr(ours, m)) == []


def test_libclient_modules_never_import_pyignite():
    for name in MIRRORED:
        tree = ast.parse(inspect.getsource(importlib.import_module(_ours(name))))
        imported = {a.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                    for a in node.names}
        imported |= {node.module or "" for node in ast.walk(tree)
                     if isinstance(node, ast.ImportFrom)}
        assert not any(m.split(".")[0] == "pyignite" for m in imported), name

"""The tables of docs/ipc.md that the code defines (enum encodings, cache properties, TYPED codes,
error kinds), generated from the code; test_conformance.py fails when the doc differs.

    python -m tests.conformance.doctables --write     # refresh them in docs/ipc.md

Each table sits between ``<!-- generated: NAME -->`` and ``<!-- end: NAME -->`` lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
from enum import IntEnum
from pathlib import Path
from typing import Any

import protocol
from broker import bounds, errors
from protocol import cacheconfig, cluster, ipc, ops, queries, tx
from protocol.binary import codec
from protocol.binary.typecodes import TypeCode
from protocol.binary.values import COLLECTION_KINDS, MAP_KINDS, CollectionKind, MapKind

DOC = Path(__file__).parents[2] / "docs" / "ipc.md"
BROKER_DIR = Path(errors.__file__).parent
#: The broker modules that define BrokerError subclasses of their own.
_ERROR_MODULES = ("broker.dispatch", "broker.frontend", "broker.nodeconn", "broker.registry")


def _members(values: Any) -> str:
    """``0 NAME, 1 NAME`` for an IntEnum or a class of int constants."""
    if isinstance(values, type) and issubclass(values, IntEnum):
        pairs = [(m.value, m.name) for m in values]
    else:
        pairs = sorted((v, k) for k, v in vars(values).items() if k.isupper())
    return ", ".join(f"{value} {name}" for value, name in pairs)


def enums_table() -> str:
    rows = [
        ("`tx_start` `concurrency`", tx.TxConcurrency),
        ("`tx_start` `isolation`", tx.TxIsolation),
        ("`cache_get_size` `peek_modes` items", ops.PeekMode),
        ("`sql` `statement_type`", queries.StatementType),
        ("`cluster_set_state` `state`, `cluster_get_state` result", cluster.ClusterState),
        ("COLLECTION ext `kind`", CollectionKind),
        ("MAP ext `kind`", MapKind),
    ]
    assert {getattr(CollectionKind, k) for k in vars(CollectionKind) if k.isupper()} \
        == COLLECTION_KINDS and {MapKind.HASH_MAP, MapKind.LINKED_HASH_MAP} == MAP_KINDS
    lines = ["| where | integer: name |", "|---|---|"]
    lines += [f"| {where} | {_members(values)} |" for where, values in rows]
    return "\n".join(lines)


# The msgpack form of each writer of protocol/cacheconfig.py.
def _value_form(writer: Any) -> str:
    enum = inspect.getclosurevars(writer).nonlocals.get("enum")
    if enum is not None:
        return f"int: {_members(enum)}"
    forms = {
        "_write_str": "str", "_write_i32": "int (i32)", "_write_i64": "int (i64)",
        "_write_bool": "bool",
        "_write_entities": "array of QueryEntity maps (below)",
        "_write_key_configs": "array of CacheKeyConfiguration maps (below)",
        "_write_expiry": "ExpiryPolicy as `[create_ms, update_ms, access_ms]` or nil",
    }
    return forms[writer.__name__]


def _fields(cls: type) -> str:
    return ", ".join(f"`{f.name}`" for f in dataclasses.fields(cls))


def cache_config_table() -> str:
    lines = ["| code | property | value |", "|---|---|---|"]
    for code, writer in sorted(cacheconfig._WRITERS.items()):
        lines.append(f"| {int(code)} | {cacheconfig.Prop(code).name} | {_value_form(writer)} |")
    lines += ["", "| map | keys |", "|---|---|"]
    for cls in (cacheconfig.QueryEntity, cacheconfig.QueryField, cacheconfig.QueryFieldAlias,
                cacheconfig.QueryIndex, cacheconfig.QueryIndexField,
                cacheconfig.CacheKeyConfiguration, cacheconfig.ExpiryPolicy):
        lines.append(f"| {cls.__name__} | {_fields(cls)} |")
    return "\n".join(lines)


_SCALAR_FORMS = {
    "BYTE": "int", "SHORT": "int", "INT": "int", "LONG": "int", "FLOAT": "float",
    "DOUBLE": "float", "CHAR": "str of one UTF-16 unit", "BOOL": "bool", "STRING": "str",
    "UUID": "UUID ext", "DATE": "DATE ext", "DECIMAL": "DECIMAL ext",
    "TIMESTAMP": "TIMESTAMP ext", "TIME": "TIME ext", "ENUM": "ENUM ext",
    "BINARY_ENUM": "ENUM ext", "NULL": "nil", "COLLECTION": "COLLECTION ext",
    "MAP": "MAP ext", "OBJECT_ARRAY": "OBJECT_ARRAY ext", "COMPLEX_OBJECT": "OBJECT ext",
    "BYTE_ARRAY": "bin, or array of int", "ENUM_ARRAY": "`[type_id, [ENUM ext, ...]]`",
    "OPTIMIZED_MARSHALLER": "bin (a Java-serialized blob, passed through)",
}


def typed_table() -> str:
    codes = sorted(codec.writable_codes(), key=lambda c: (c < 0, c))
    lines = ["| code | Ignite type | value in `[code, value]` |", "|---|---|---|"]
    for code in codes:
        name = TypeCode(code).name
        form = _SCALAR_FORMS.get(name)
        if form is None and name.endswith("_ARRAY"):
            form = f"array of {_SCALAR_FORMS[name[:-len('_ARRAY')]]}"
        lines.append(f"| {code} | {name} | {form} |")
    return "\n".join(lines)


def _broker_errors() -> list[type[errors.BrokerError]]:
    for name in _ERROR_MODULES:
        importlib.import_module(name)
    found, todo = [], [errors.BrokerError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


# error_payload("kind", ...) in broker/, with the Status written before it when there is one.
_LITERAL_KIND = re.compile(r'(?:Status\.(\w+),\s*)?error_payload\(\s*"(\w+)"')
#: Kinds of the broker's own errors that never reach a worker, and why.
_NOT_SENT = {
    "config": "start-up and reload only",
    "connect": "node connections only; requests see `cluster_unavailable`",
    "native_build": "`ignite-broker native build` only",
}


def error_kinds_table() -> str:
    """Each ``kind`` with its statuses: BrokerError classes' own, and literal error_payload
    calls in broker/ (the frontend's; "set by the caller" when the status is a variable)."""
    kinds: dict[str, set[str]] = {}
    for cls in _broker_errors():
        if "kind" in vars(cls) or cls is errors.BrokerError:
            kinds.setdefault(cls.kind, set()).add(ipc.Status(cls.status).name)
    for path in sorted(BROKER_DIR.glob("*.py")):
        for status, kind in _LITERAL_KIND.findall(path.read_text()):
            kinds.setdefault(kind, set()).add(status or "set by the caller")
    lines = ["| kind | status |", "|---|---|"]
    for kind, statuses in sorted(kinds.items()):
        if kind not in _NOT_SENT:
            lines.append(f"| `{kind}` | {', '.join(sorted(statuses))} |")
    lines += ["", "| kind | never sent to a worker |", "|---|---|"]
    lines += [f"| `{kind}` | {why} |" for kind, why in sorted(_NOT_SENT.items())]
    return "\n".join(lines)


def limits_table() -> str:
    lines = ["| what | value |", "|---|---|",
             f"| request frame, default `limits.max_request_bytes` | "
             f"{ipc.DEFAULT_MAX_REQUEST_BYTES} bytes |",
             f"| nesting levels, envelope included | {ipc.MAX_NESTING} |",
             f"| DECIMAL digits | {protocol.limits.MAX_DECIMAL_DIGITS} |",
             f"| error message characters | {errors.MAX_ERROR_MESSAGE} |",
             f"| FIELD type codes of `binary_type_put` | {min(bounds.FIELD_TYPE_CODES)}.."
             f"{max(bounds.FIELD_TYPE_CODES)}, those Ignite names |"]
    return "\n".join(lines)


def tables() -> dict[str, str]:
    return {"enums": enums_table(), "cache-config": cache_config_table(),
            "typed-codes": typed_table(), "error-kinds": error_kinds_table(),
            "limits": limits_table()}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- end: {name} -->)", re.S)


def write(path: Path = DOC) -> list[str]:
    """Refresh each table in the doc; the names whose markers it lacks."""
    text = path.read_text()
    missing = []
    for name, table in tables().items():
        pattern = _block(name)
        if not pattern.search(text):
            missing.append(name)
            continue
        text = pattern.sub(lambda m, t=table: m.group(1) + t + "\n" + m.group(2), text)
    path.write_text(text)
    return missing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="update docs/ipc.md in place")
    options = parser.parse_args()
    if options.write:
        missing = write()
        if missing:
            raise SystemExit(f"docs/ipc.md has no markers for {missing}")
        return
    for name, table in tables().items():
        print(f"<!-- generated: {name} -->\n{table}\n<!-- end: {name} -->\n")


if __name__ == "__main__":
    main()

"""Key/value and cache-management ops (1000-1021, 1050-1056): builders, parsers, node vectors."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import LocalProtocolError, OpCode, RemoteProtocolError, ops
from protocol.binary import TypeCode
from tests.protocol.capture_ops import ReplayChecks
from tests.protocol.protocol_helpers import ignite_str

T = TypeCode


def pfx(flags: int = 0, cache: int = 42) -> bytes:
    return struct.pack("<ib", cache, flags)


def s(value: str) -> bytes:
    return ignite_str(value)


def i32(n: int) -> bytes:
    return struct.pack("<i", n)


def long_obj(n: int) -> bytes:
    return b"\x04" + struct.pack("<q", n)


def int_obj(n: int) -> bytes:
    return b"\x03" + struct.pack("<i", n)


# -- every op has a builder and a parser ------------------------------------------------------

OP_FUNCTIONS = {
    OpCode.CACHE_GET: "cache_get",
    OpCode.CACHE_PUT: "cache_put",
    OpCode.CACHE_PUT_IF_ABSENT: "cache_put_if_absent",
    OpCode.CACHE_GET_ALL: "cache_get_all",
    OpCode.CACHE_PUT_ALL: "cache_put_all",
    OpCode.CACHE_GET_AND_PUT: "cache_get_and_put",
    OpCode.CACHE_GET_AND_REPLACE: "cache_get_and_replace",
    OpCode.CACHE_GET_AND_REMOVE: "cache_get_and_remove",
    OpCode.CACHE_GET_AND_PUT_IF_ABSENT: "cache_get_and_put_if_absent",
    OpCode.CACHE_REPLACE: "cache_replace",
    OpCode.CACHE_REPLACE_IF_EQUALS: "cache_replace_if_equals",
    OpCode.CACHE_CONTAINS_KEY: "cache_contains_key",
    OpCode.CACHE_CONTAINS_KEYS: "cache_contains_keys",
    OpCode.CACHE_CLEAR: "cache_clear",
    OpCode.CACHE_CLEAR_KEY: "cache_clear_key",
    OpCode.CACHE_CLEAR_KEYS: "cache_clear_keys",
    OpCode.CACHE_REMOVE_KEY: "cache_remove_key",
    OpCode.CACHE_REMOVE_IF_EQUALS: "cache_remove_if_equals",
    OpCode.CACHE_REMOVE_KEYS: "cache_remove_keys",
    OpCode.CACHE_REMOVE_ALL: "cache_remove_all",
    OpCode.CACHE_GET_SIZE: "cache_get_size",
    OpCode.CACHE_LOCAL_PEEK: "cache_local_peek",
    OpCode.CACHE_GET_NAMES: "cache_get_names",
    OpCode.CACHE_CREATE_WITH_NAME: "cache_create_with_name",
    OpCode.CACHE_GET_OR_CREATE_WITH_NAME: "cache_get_or_create_with_name",
    OpCode.CACHE_CREATE_WITH_CONFIGURATION: "cache_create_with_configuration",
    OpCode.CACHE_GET_OR_CREATE_WITH_CONFIGURATION: "cache_get_or_create_with_configuration",
    OpCode.CACHE_GET_CONFIGURATION: "cache_get_configuration",
    OpCode.CACHE_DESTROY: "cache_destroy",
}


def test_every_cache_op_has_a_builder_and_a_parser() -> None:
    for op, name in OP_FUNCTIONS.items():
        assert callable(getattr(ops, name)), op
        assert callable(getattr(ops, "parse_" + name)), op
        assert name in ops.__all__ and "parse_" + name in ops.__all__
    assert set(range(1000, 1022)) <= {int(op) for op in OP_FUNCTIONS}
    assert set(range(1050, 1057)) <= {int(op) for op in OP_FUNCTIONS}


# -- builders: exact bytes, assembled by hand ------------------------------------------------

BUILDS: list[tuple[str, Callable[[], bytes], bytes]] = [
    ("put_if_absent", lambda: ops.cache_put_if_absent(42, "k", "v"), pfx() + s("k") + s("v")),
    ("put_if_absent-hints", lambda: ops.cache_put_if_absent(42, 1, 2, key_hint=T.INT,
                                                             value_hint=T.SHORT),
     pfx() + int_obj(1) + b"\x02\x02\x00"),
    ("get_and_put", lambda: ops.cache_get_and_put(42, "k", 7), pfx() + s("k") + long_obj(7)),
    ("get_and_replace", lambda: ops.cache_get_and_replace(42, "k", "v"),
     pfx() + s("k") + s("v")),
    ("get_and_put_if_absent", lambda: ops.cache_get_and_put_if_absent(42, "k", None),
     pfx() + s("k") + b"\x65"),
    ("replace", lambda: ops.cache_replace(42, "k", True), pfx() + s("k") + b"\x08\x01"),
    ("replace_if_equals", lambda: ops.cache_replace_if_equals(42, "k", "old", "new"),
     pfx() + s("k") + s("old") + s("new")),
    ("replace_if_equals-hint", lambda: ops.cache_replace_if_equals(42, "k", 1, 2,
                                                                    value_hint=T.INT),
     pfx() + s("k") + int_obj(1) + int_obj(2)),
    ("get_and_remove", lambda: ops.cache_get_and_remove(42, "k"), pfx() + s("k")),
    ("contains_key", lambda: ops.cache_contains_key(42, 5, key_hint=T.INT),
     pfx() + int_obj(5)),
    ("clear_key", lambda: ops.cache_clear_key(42, "k"), pfx() + s("k")),
    ("remove_key", lambda: ops.cache_remove_key(42, "k"), pfx() + s("k")),
    ("remove_if_equals", lambda: ops.cache_remove_if_equals(42, "k", "v"),
     pfx() + s("k") + s("v")),
    ("get_all", lambda: ops.cache_get_all(42, ["a", "b"]), pfx() + i32(2) + s("a") + s("b")),
    ("get_all-empty", lambda: ops.cache_get_all(42, []), pfx() + i32(0)),
    ("get_all-generator", lambda: ops.cache_get_all(42, (k for k in "ab")),
     pfx() + i32(2) + s("a") + s("b")),
    ("contains_keys", lambda: ops.cache_contains_keys(42, [1], key_hint=T.INT),
     pfx() + i32(1) + int_obj(1)),
    ("clear_keys", lambda: ops.cache_clear_keys(42, ["a"]), pfx() + i32(1) + s("a")),
    ("remove_keys", lambda: ops.cache_remove_keys(42, ["a"]), pfx() + i32(1) + s("a")),
    ("put_all-mapping", lambda: ops.cache_put_all(42, {"a": 1, "b": "x"}),
     pfx() + i32(2) + s("a") + long_obj(1) + s("b") + s("x")),
    ("put_all-pairs-hints", lambda: ops.cache_put_all(42, [(1, 2), [3, 4]], key_hint=T.INT,
                                                      value_hint=T.BYTE),
     pfx() + i32(2) + int_obj(1) + b"\x01\x02" + int_obj(3) + b"\x01\x04"),
    ("clear", lambda: ops.cache_clear(42), pfx()),
    ("remove_all", lambda: ops.cache_remove_all(42), pfx()),
    ("get_size", lambda: ops.cache_get_size(42), pfx() + i32(0)),
    ("get_size-modes", lambda: ops.cache_get_size(42, [ops.PeekMode.PRIMARY,
                                                       ops.PeekMode.BACKUP]),
     pfx() + i32(2) + b"\x02\x03"),
    ("local_peek", lambda: ops.cache_local_peek(42, "k", [ops.PeekMode.ONHEAP]),
     pfx() + s("k") + i32(1) + b"\x04"),
    ("local_peek-no-modes", lambda: ops.cache_local_peek(42, "k"), pfx() + s("k") + i32(0)),
    ("keep-binary", lambda: ops.cache_remove_all(42, flags=ops.FLAG_KEEP_BINARY), pfx(1)),
    ("tx-and-expiry", lambda: ops.cache_get_all(42, ["a"], tx_id=7, expiry=(1, -1, -2)),
     pfx(6) + struct.pack("<qqq", 1, -1, -2) + i32(7) + i32(1) + s("a")),
    ("tx-only", lambda: ops.cache_clear_key(42, "k", tx_id=3), pfx(2) + i32(3) + s("k")),
    ("expiry-only", lambda: ops.cache_put_if_absent(42, "k", "v", expiry=(0, 0, 0)),
     pfx(4) + bytes(24) + s("k") + s("v")),
    ("get_size-tx", lambda: ops.cache_get_size(42, [0], tx_id=1), pfx(2) + i32(1) + i32(1)
     + b"\x00"),
    ("get_names", ops.cache_get_names, b""),
    ("create_with_name", lambda: ops.cache_create_with_name("c"), s("c")),
    ("get_or_create_with_name", lambda: ops.cache_get_or_create_with_name("кэш"), s("кэш")),
    ("get_configuration", lambda: ops.cache_get_configuration(42), pfx()),
    ("get_configuration-flags", lambda: ops.cache_get_configuration(-7, flags=1), pfx(1, -7)),
    ("destroy", lambda: ops.cache_destroy(-2), i32(-2)),
]


@pytest.mark.parametrize(("build", "expected"), [pytest.param(b, e, id=i) for i, b, e in BUILDS])
def test_builder_bytes(build: Callable[[], bytes], expected: bytes) -> None:
    assert build().hex() == expected.hex()


MISUSE: list[tuple[str, Callable[[], object]]] = [
    ("keys-str", lambda: ops.cache_get_all(42, "ab")),
    ("keys-bytes", lambda: ops.cache_remove_keys(42, b"ab")),
    ("keys-not-iterable", lambda: ops.cache_contains_keys(42, 5)),  # type: ignore[arg-type]
    ("pairs-short", lambda: ops.cache_put_all(42, [("a",)])),  # type: ignore[list-item]
    ("pairs-long", lambda: ops.cache_put_all(42, [("a", 1, 2)])),  # type: ignore[list-item]
    ("pairs-not-iterable", lambda: ops.cache_put_all(42, 3)),  # type: ignore[arg-type]
    ("peek-out-of-range", lambda: ops.cache_get_size(42, [6])),
    ("peek-negative", lambda: ops.cache_local_peek(42, "k", [-1])),
    ("peek-str", lambda: ops.cache_get_size(42, ["ALL"])),  # type: ignore[list-item]
    ("unencodable-key", lambda: ops.cache_get_and_remove(42, object())),
    ("value-out-of-hint", lambda: ops.cache_replace(42, "k", 300, value_hint=T.BYTE)),
    ("tx-flag-without-id", lambda: ops.cache_clear(42, flags=ops.FLAG_TRANSACTIONAL)),
    ("expiry-flag-without-ttl", lambda: ops.cache_clear(42, flags=ops.FLAG_WITH_EXPIRY_POLICY)),
    ("tx-id-too-big", lambda: ops.cache_remove_all(42, tx_id=2**31)),
    ("cache-id-too-big", lambda: ops.cache_destroy(2**31)),
    ("configuration-cache-id", lambda: ops.cache_get_configuration(2**31)),
    ("name-none", lambda: ops.cache_create_with_name(None)),  # type: ignore[arg-type]
    ("name-int", lambda: ops.cache_get_or_create_with_name(5)),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("call", [pytest.param(c, id=i) for i, c in MISUSE])
def test_builder_misuse_is_a_local_error(call: Callable[[], object]) -> None:
    with pytest.raises(LocalProtocolError):
        call()


def test_keyword_only_options() -> None:
    with pytest.raises(TypeError):
        ops.cache_put_if_absent(42, "k", "v", T.STRING)  # type: ignore[misc]
    # cache_get / cache_put keep their positional hints (older callers rely on them).
    assert ops.cache_get(42, 1, T.INT) == pfx() + int_obj(1)
    assert ops.cache_put(42, 1, 2, T.INT, T.INT) == pfx() + int_obj(1) + int_obj(2)


# -- parsers ----------------------------------------------------------------------------------

BOOL_PARSERS = [ops.parse_cache_put_if_absent, ops.parse_cache_replace,
                ops.parse_cache_replace_if_equals, ops.parse_cache_contains_key,
                ops.parse_cache_contains_keys, ops.parse_cache_remove_key,
                ops.parse_cache_remove_if_equals]
VALUE_PARSERS = [ops.parse_cache_get, ops.parse_cache_get_and_put,
                 ops.parse_cache_get_and_replace, ops.parse_cache_get_and_remove,
                 ops.parse_cache_get_and_put_if_absent, ops.parse_cache_local_peek]
EMPTY_PARSERS = [ops.parse_cache_put, ops.parse_cache_put_all, ops.parse_cache_clear,
                 ops.parse_cache_clear_key, ops.parse_cache_clear_keys,
                 ops.parse_cache_remove_keys, ops.parse_cache_remove_all,
                 ops.parse_cache_create_with_name, ops.parse_cache_get_or_create_with_name,
                 ops.parse_cache_create_with_configuration,
                 ops.parse_cache_get_or_create_with_configuration, ops.parse_cache_destroy]
ALL_PARSERS: list[Callable[[Any], object]] = [
    *BOOL_PARSERS, *VALUE_PARSERS, *EMPTY_PARSERS, ops.parse_cache_get_all,
    ops.parse_cache_get_size, ops.parse_cache_get_names,
]


@pytest.mark.parametrize("parse", BOOL_PARSERS, ids=lambda f: f.__name__)
def test_bool_parsers(parse: Callable[[Any], object]) -> None:
    assert parse(b"\x01") is True
    assert parse(memoryview(b"\x00")) is False
    assert parse(b"\x02") is True  # like Java's readBoolean
    for bad in (b"", b"\x01\x00"):
        with pytest.raises(RemoteProtocolError):
            parse(bad)


@pytest.mark.parametrize("parse", VALUE_PARSERS, ids=lambda f: f.__name__)
def test_value_parsers(parse: Callable[[Any], object]) -> None:
    assert parse(b"\x65") is None
    assert parse(memoryview(s("v"))) == "v"
    assert parse(long_obj(-5)) == -5
    for bad in (b"", b"\x03\x00", b"\x65\x65", b"\x00"):
        with pytest.raises(RemoteProtocolError):
            parse(bad)


@pytest.mark.parametrize("parse", EMPTY_PARSERS, ids=lambda f: f.__name__)
def test_empty_parsers(parse: Callable[[Any], object]) -> None:
    assert parse(b"") is None
    assert parse(memoryview(b"")) is None
    with pytest.raises(RemoteProtocolError):
        parse(b"\x00")


def test_parse_get_all() -> None:
    body = i32(2) + s("a") + long_obj(1) + int_obj(3) + b"\x65"
    assert ops.parse_cache_get_all(body) == [("a", 1), (3, None)]
    assert ops.parse_cache_get_all(memoryview(body)) == [("a", 1), (3, None)]
    assert ops.parse_cache_get_all(i32(0)) == []


@pytest.mark.parametrize(
    "body",
    [b"", b"\x01\x00", i32(-1), i32(2**31 - 1) + s("a") + s("b"), i32(1) + s("a"),
     i32(1) + s("a") + s("b") + b"\x00", i32(2) + s("a") + s("b")],
    ids=["empty", "short-count", "negative", "huge", "half-pair", "trailing", "missing-pair"],
)
def test_parse_get_all_malformed(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ops.parse_cache_get_all(body)


def test_parse_get_size() -> None:
    assert ops.parse_cache_get_size(struct.pack("<q", 2**40)) == 2**40
    for bad in (b"", bytes(7), bytes(9)):
        with pytest.raises(RemoteProtocolError):
            ops.parse_cache_get_size(bad)


@given(st.binary(max_size=48))
def test_parsers_raise_only_remote_protocol_errors(body: bytes) -> None:
    for parse in ALL_PARSERS:
        with contextlib.suppress(RemoteProtocolError):
            parse(body)


@given(st.lists(st.tuples(st.text(max_size=5), st.integers(-(2**63), 2**63 - 1)), max_size=6),
       st.data())
def test_get_all_round_trip_and_truncation(pairs: list[tuple[str, int]], data: st.DataObject
                                          ) -> None:
    body = i32(len(pairs)) + b"".join(s(k) + long_obj(v) for k, v in pairs)
    assert ops.parse_cache_get_all(body) == pairs
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(RemoteProtocolError):
        ops.parse_cache_get_all(body[:cut])


# -- real-node vectors ------------------------------------------------------------------------


class TestKeyValueVectors(ReplayChecks):
    vectors = "ops_kv"

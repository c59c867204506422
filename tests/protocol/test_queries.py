"""Query ops: SQL fields, scan, old SQL, cursors, continuous queries; pyignite as an oracle."""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyignite import Client as PyClient
from pyignite.connection.protocol_context import ProtocolContext
from pyignite.datatypes import AnyDataArray, Bool, Int, Long, Null, String
from pyignite.datatypes.sql import StatementType as PyStatementType
from pyignite.queries import Query
from pyignite.queries.cache_info import CacheInfo
from pyignite.queries.op_codes import OP_QUERY_SCAN, OP_QUERY_SQL, OP_QUERY_SQL_FIELDS
from pyignite.stream import BinaryStream

from protocol import LocalProtocolError, RemoteProtocolError, queries
from protocol.binary.values import BinaryObject
from protocol.features import Feature
from protocol.queries import CacheEntryEvent, EntryPage, EventType, SqlFieldsPage
from tests.protocol.capture_ops import ReplayChecks
from tests.protocol.protocol_helpers import ignite_str

BIT7 = frozenset({Feature.QRY_PARTITIONS_BATCH_SIZE})
BIT18 = frozenset({Feature.TX_AWARE_QUERIES})


def i32(n: int) -> bytes:
    return struct.pack("<i", n)


def i64(n: int) -> bytes:
    return struct.pack("<q", n)


def s(value: str | None) -> bytes:
    return ignite_str(value)


def long_obj(n: int) -> bytes:
    return b"\x04" + i64(n)


SQL_FIELDS_BASE = (
    struct.pack("<ib", 42, 0) + s("PUBLIC") + i32(1024) + i32(-1) + s("SELECT ?")
    + i32(1) + long_obj(5) + b"\x00" + bytes(6) + i64(0) + b"\x00"
)

# -- requests -----------------------------------------------------------------------------------


def test_sql_fields_base_layout() -> None:
    body = queries.sql_fields(42, "SELECT ?", schema="PUBLIC", args=[5])
    assert body.hex() == SQL_FIELDS_BASE.hex()


def test_sql_fields_every_field() -> None:
    body = queries.sql_fields(
        0, "q", schema=None, page_size=7, max_rows=9, args=(), statement_type=2,
        distributed_joins=True, local=False, replicated_only=True, enforce_join_order=False,
        collocated=True, lazy=True, timeout=1500, include_field_names=True,
    )
    assert body.hex() == (
        struct.pack("<ib", 0, 0) + b"\x65" + i32(7) + i32(9) + s("q") + i32(0) + b"\x02"
        + b"\x01\x00\x01\x00\x01\x01" + i64(1500) + b"\x01"
    ).hex()


def test_sql_fields_bit7_extras() -> None:
    plain = queries.sql_fields(42, "SELECT ?", schema="PUBLIC", args=[5], features=BIT7)
    assert plain.hex() == (SQL_FIELDS_BASE + i32(-1) + i32(1)).hex()
    parts = queries.sql_fields(42, "SELECT ?", schema="PUBLIC", args=[5], features=BIT7,
                               partitions=[3, 1], update_batch_size=64)
    assert parts.hex() == (SQL_FIELDS_BASE + i32(2) + i32(3) + i32(1) + i32(64)).hex()
    with pytest.raises(LocalProtocolError, match="at least one"):  # as Query.prepare refuses
        queries.sql_fields(42, "SELECT ?", schema="PUBLIC", args=[5], features=BIT7,
                           partitions=[])


def test_sql_fields_tx_needs_bit18() -> None:
    body = queries.sql_fields(42, "SELECT ?", schema="PUBLIC", args=[5], tx_id=3, features=BIT18)
    assert body == struct.pack("<ibi", 42, 2, 3) + SQL_FIELDS_BASE[5:]
    with pytest.raises(LocalProtocolError):
        queries.sql_fields(42, "SELECT 1", tx_id=3, features=BIT7)


def _pyignite_body(op: int, fields: list[tuple[str, Any]], values: dict[str, Any]) -> bytes:
    context = ProtocolContext((1, 7, 0), None)
    values = {"cache_info": CacheInfo(cache_id=42, protocol_context=context), **values}
    query = Query(op, [("cache_info", CacheInfo), *fields], query_id=1)
    with BinaryStream(PyClient()) as stream:
        query.from_python(stream, values)
        return bytes(stream.getvalue()[14:])  # i32 length, i16 op, i64 id


def test_sql_fields_matches_pyignite() -> None:
    fields = [("schema", String), ("page_size", Int), ("max_rows", Int), ("query_str", String),
              ("query_args", AnyDataArray()), ("statement_type", PyStatementType),
              ("distributed_joins", Bool), ("local", Bool), ("replicated_only", Bool),
              ("enforce_join_order", Bool), ("collocated", Bool), ("lazy", Bool),
              ("timeout", Long), ("include_field_names", Bool)]
    values = {"schema": "PUBLIC", "page_size": 10, "max_rows": -1, "query_str": "SELECT ?, ?",
              "query_args": [1, "x"], "statement_type": 1, "distributed_joins": True,
              "local": False, "replicated_only": False, "enforce_join_order": True,
              "collocated": False, "lazy": True, "timeout": 99, "include_field_names": True}
    ours = queries.sql_fields(42, "SELECT ?, ?", schema="PUBLIC", page_size=10, args=[1, "x"],
                              statement_type=1, distributed_joins=True, enforce_join_order=True,
                              lazy=True, timeout=99, include_field_names=True)
    assert ours.hex() == _pyignite_body(OP_QUERY_SQL_FIELDS, fields, values).hex()


def test_scan_matches_pyignite() -> None:
    fields = [("filter", Null), ("page_size", Int), ("partitions", Int), ("local", Bool)]
    theirs = _pyignite_body(OP_QUERY_SCAN, fields, {"filter": None, "page_size": 7,
                                                    "partitions": 3, "local": True})
    assert queries.scan(42, page_size=7, partition=3, local=True).hex() == theirs.hex()
    assert queries.scan(42).hex() == (struct.pack("<ib", 42, 0) + b"\x65" + i32(1024) + i32(-1)
                                      + b"\x00").hex()


def test_scan_tx_needs_bit18() -> None:
    assert queries.scan(42, tx_id=1, features=BIT18).startswith(struct.pack("<ibi", 42, 2, 1))
    with pytest.raises(LocalProtocolError):
        queries.scan(42, tx_id=1)


def test_old_sql_matches_pyignite() -> None:
    fields = [("table_name", String), ("query_str", String), ("query_args", AnyDataArray()),
              ("distributed_joins", Bool), ("local", Bool), ("replicated_only", Bool),
              ("page_size", Int), ("timeout", Long)]
    values = {"table_name": "Person", "query_str": "age > ?", "query_args": [3],
              "distributed_joins": False, "local": True, "replicated_only": False,
              "page_size": 5, "timeout": 0}
    ours = queries.sql(42, "Person", "age > ?", args=[3], local=True, page_size=5)
    assert ours.hex() == _pyignite_body(OP_QUERY_SQL, fields, values).hex()


def test_cursor_requests() -> None:
    for build in (queries.sql_fields_page, queries.scan_page, queries.sql_page,
                  queries.resource_close, queries.cursor_close):
        assert build(-2) == i64(-2)


def test_continuous_query_request() -> None:
    assert queries.continuous_query(42) == (struct.pack("<ib", 42, 0) + i32(1) + i64(0)
                                            + b"\x00\x65")
    body = queries.continuous_query(-1, page_size=64, time_interval=500, include_expired=True,
                                    flags=1)
    assert body == struct.pack("<ib", -1, 1) + i32(64) + i64(500) + b"\x01\x65"


MISUSE: list[tuple[str, Callable[[], object]]] = [
    ("partitions-without-bit7", lambda: queries.sql_fields(0, "q", partitions=[1])),
    ("batch-size-without-bit7", lambda: queries.sql_fields(0, "q", update_batch_size=5)),
    ("bad-partition", lambda: queries.sql_fields(0, "q", partitions=["x"], features=BIT7)),
    ("statement-type", lambda: queries.sql_fields(0, "q", statement_type=3)),
    ("query-none", lambda: queries.sql_fields(0, None)),  # type: ignore[arg-type]
    ("schema-int", lambda: queries.sql_fields(0, "q", schema=1)),  # type: ignore[arg-type]
    ("args-str", lambda: queries.sql_fields(0, "q", args="ab")),
    ("page-size-overflow", lambda: queries.sql_fields(0, "q", page_size=2**31)),
    ("scan-partition-overflow", lambda: queries.scan(0, partition=2**31)),
    ("old-sql-table-none", lambda: queries.sql(0, None, "q")),  # type: ignore[arg-type]
    ("cq-interval-overflow", lambda: queries.continuous_query(0, time_interval=2**63)),
    ("close-overflow", lambda: queries.resource_close(2**63)),
    ("page-negative-columns", lambda: queries.parse_sql_fields_page(i32(0) + b"\x00", -1)),
]


@pytest.mark.parametrize("call", [pytest.param(c, id=i) for i, c in MISUSE])
def test_misuse_is_a_local_error(call: Callable[[], object]) -> None:
    with pytest.raises(LocalProtocolError):
        call()


# -- responses ----------------------------------------------------------------------------------


def test_parse_sql_fields() -> None:
    body = i64(7) + i32(2) + s("ID") + s("NAME") + i32(2) + long_obj(1) + s("a") + long_obj(2)
    body += b"\x65" + b"\x01"
    page = queries.parse_sql_fields(body, True)
    assert page == SqlFieldsPage(7, ("ID", "NAME"), [[1, "a"], [2, None]], True, 2)
    no_names = i64(7) + i32(2) + i32(1) + long_obj(1) + s("a") + b"\x00"
    assert queries.parse_sql_fields(memoryview(no_names), False) == SqlFieldsPage(
        7, (), [[1, "a"]], False, 2)
    empty = i64(1) + i32(3) + i32(0) + b"\x00"
    assert queries.parse_sql_fields(empty, False) == SqlFieldsPage(1, (), [], False, 3)


def test_parse_sql_fields_page() -> None:
    body = i32(2) + long_obj(1) + long_obj(2) + b"\x01"
    assert queries.parse_sql_fields_page(body, 1) == ([[1], [2]], True)
    with pytest.raises(RemoteProtocolError):
        queries.parse_sql_fields_page(body, 2)  # 2 rows of 2 columns do not fit
    assert queries.parse_sql_fields_page(i32(0) + b"\x00", 0) == ([], False)


@pytest.mark.parametrize(
    ("body", "names"),
    [
        (i64(1) + i32(-1) + i32(0) + b"\x00", False),
        (i64(1) + i32(1) + b"\x65" + i32(0) + b"\x00", True),
        (i64(1) + i32(1) + s("A") + i32(0), True),
        (i64(1) + i32(0) + i32(1) + b"\x00", False),
        (i64(1) + i32(1) + i32(1) + long_obj(1) + b"\x00\x00", False),
        (i64(1) + i32(2**31 - 1) + i32(0) + b"\x00", True),
        (i64(1) + i32(1) + i32(2**31 - 1) + long_obj(1) + b"\x00", False),
    ],
    ids=["negative-columns", "null-name", "no-more-flag", "rows-without-columns", "trailing",
         "huge-column-count", "huge-row-count"],
)
def test_parse_sql_fields_malformed(body: bytes, names: bool) -> None:
    with pytest.raises(RemoteProtocolError):
        queries.parse_sql_fields(body, names)


def test_parse_entries() -> None:
    body = i64(3) + i32(1) + s("k") + long_obj(1) + b"\x01"
    assert queries.parse_scan(body) == EntryPage(3, [("k", 1)], True)
    assert queries.parse_sql(body) == EntryPage(3, [("k", 1)], True)
    assert queries.parse_scan_page(body[8:]) == ([("k", 1)], True)
    assert queries.parse_sql_page(memoryview(body[8:])) == ([("k", 1)], True)
    for bad in (body[:-1], body + b"\x00", i64(3) + i32(-1) + b"\x00"):
        with pytest.raises(RemoteProtocolError):
            queries.parse_scan(bad)


def test_parse_continuous_query() -> None:
    assert queries.parse_continuous_query(i64(12)) == 12
    events = (i32(2) + s("k") + b"\x65" + s("v") + b"\x00"
              + s("k") + s("v") + b"\x65" + b"\x02")
    assert queries.parse_continuous_query_event(events) == [
        CacheEntryEvent("k", None, "v", EventType.CREATED),
        CacheEntryEvent("k", "v", None, EventType.REMOVED),
    ]
    assert queries.parse_continuous_query_event(i32(0)) == []
    for bad in (i32(1) + s("k") + b"\x65\x65\x04", i32(1) + s("k") + b"\x65\x65",
                i32(2**30) + b"\x65" * 4, events + b"\x00", i64(12)[:7]):
        with pytest.raises(RemoteProtocolError):
            queries.parse_continuous_query_event(bad)


PARSERS: list[Callable[[bytes], object]] = [
    lambda b: queries.parse_sql_fields(b, True),
    lambda b: queries.parse_sql_fields(b, False),
    lambda b: queries.parse_sql_fields_page(b, 2),
    lambda b: queries.parse_sql_fields_page(b, 0),
    queries.parse_scan, queries.parse_scan_page, queries.parse_sql, queries.parse_sql_page,
    queries.parse_continuous_query, queries.parse_continuous_query_event,
    queries.parse_resource_close,
]


@given(st.binary(max_size=64))
def test_parsers_raise_only_remote_protocol_errors(body: bytes) -> None:
    for parse in PARSERS:
        with contextlib.suppress(RemoteProtocolError):
            parse(body)


@given(st.lists(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text()),
                         min_size=3, max_size=3), max_size=5),
       st.booleans(), st.data())
def test_sql_page_round_trip_and_truncation(rows: list[list[Any]], more: bool,
                                            data: st.DataObject) -> None:
    def obj(v: Any) -> bytes:
        return b"\x65" if v is None else long_obj(v) if isinstance(v, int) else s(v)

    body = i32(len(rows)) + b"".join(obj(v) for row in rows for v in row) + bytes([more])
    assert queries.parse_sql_fields_page(body, 3) == (rows, more)
    cut = data.draw(st.integers(0, len(body) - 1))
    with pytest.raises(RemoteProtocolError):
        queries.parse_sql_fields_page(body[:cut], 3)


# -- real-node vectors ------------------------------------------------------------------------


class TestQueryVectors(ReplayChecks):
    vectors = "ops_queries"


def test_java_filter_is_a_raw_platform_java_object_factory_proxy() -> None:
    """What Ignite 2.17's ClientCacheQueryContinuousRequest accepts as a Java remote filter:
    a type-99 object (PlatformJavaObjectFactoryProxy) whose raw data names the class
    (factory kind 1, the default) and its fields, sorted by name."""
    blob = queries.java_filter("a.F", {"z": 1, "prefix": "k"})
    raw = (struct.pack("<i", 1) + b"\x65" + b"\x09" + struct.pack("<i", 3) + b"a.F"
           + struct.pack("<i", 2)
           + b"\x09" + struct.pack("<i", 6) + b"prefix" + b"\x09" + struct.pack("<i", 1) + b"k"
           + b"\x09" + struct.pack("<i", 1) + b"z" + b"\x04" + struct.pack("<q", 1))
    version, flags, type_id, _, length, schema_id, raw_offset = struct.unpack_from(
        "<bhiiiii", blob, 1)
    assert blob[0] == 103 and version == 1 and flags == 0x0004  # raw data only, not a user type
    assert (type_id, length, schema_id, raw_offset) == (99, 24 + len(raw), 0, 24)
    assert blob[24:] == raw
    body = queries.continuous_query(7, remote_filter=blob)
    assert body.endswith(blob + b"\x01")  # platform 1: Java
    assert queries.continuous_query(7).endswith(b"\x65")


def test_java_filter_refuses_what_it_cannot_send() -> None:
    with pytest.raises(LocalProtocolError):
        queries.java_filter(None)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        queries.java_filter("F", {"o": BinaryObject(5, {})})

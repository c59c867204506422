#!/usr/bin/env python3
"""Capture data-type and complex-object byte vectors from a real Ignite node into
tests/protocol/vectors/types_<name>.json (format: tests/protocol/type_vectors.py).

What it records, each value as the node sends it back:

- standard types, arrays, collections and maps: put as a cache value (encoded by us),
  read back with CACHE_GET;
- complex objects encoded by us with compact and full footers, 1/2/4-byte offsets, raw
  data, nested objects, an enum field, an unregistered (type id 0) object, a field that
  is a HANDLE (the node's SQL engine reads it through the handle; the SQL row is
  recorded too);
- objects written by pyignite 0.6.1 (GenericObjectMeta, compact and full footers);
- objects the node builds itself from SQL (CREATE TABLE ... WITH "KEY_TYPE=...,
  VALUE_TYPE=..."; INSERT), read with a scan and with CACHE_GET by a key that we encode
  from the metadata: finding the row proves our key bytes and hash equal the node's;
- the BINARY_TYPE_GET answers for every type used (replayed tests build their registry
  from them), and BINARY_TYPE_GET/PUT and BINARY_TYPE_NAME_GET/PUT exchanges.

The expected value of each case is what was put (or inserted), never what our decoder
says; where the node normalises a value (USER_SET -> HASH_SET, Enum -> BinaryEnum ...)
the expectation says so explicitly. Disagreements are printed and make the run exit 1.

    python -m broker.devcluster start --base-port 11050
    .venv/bin/python tests/protocol/capture_types.py --port 11050 \
        --name types_captured_ignite_2.17.0
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import socket
import struct
import sys
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root

from protocol import (
    NEED_DATA,
    ClientConnection,
    ConnectionConfig,
    ErrorResponse,
    HandshakeAccepted,
    OpCode,
    Response,
    cache_id,
)
from protocol.binary import TypeCode, decode_value, encode_value, read_value, write_value
from protocol.binary.metadata import (
    binary_type_get,
    binary_type_name_get,
    binary_type_name_put,
    binary_type_put,
    enum_type,
    parse_binary_type_get,
    parse_binary_type_name_get,
    parse_binary_type_name_put,
)
from protocol.binary.registry import BinaryType, CodecContext, Registry
from protocol.binary.values import BinaryObject, Typed
from protocol.hashing import object_hash, type_id
from tests.protocol.type_vectors import (
    VECTOR_DIR,
    Json,
    deep_same,
    tj,
    tj_to_python,
    tj_to_typed,
)

T = TypeCode
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I32_MIN, I32_MAX = -(2**31), 2**31 - 1
U1 = "8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8"
_HEADER = struct.Struct("<bbhiiiii")


class NodeError(Exception):
    def __init__(self, status: int, message: str | None) -> None:
        super().__init__(f"status {status}: {message}")
        self.status = status


class Node:
    """One thin-client connection driven by protocol.ClientConnection over a socket."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.address = (host, port)
        self.timeout = timeout
        self._connect()

    def _connect(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        # features 2, 3, 11 only: no bit 7, so QUERY_SQL_FIELDS has no partition fields
        self.conn = ClientConnection(ConnectionConfig(features=frozenset({2, 3, 11})))
        self.sock.sendall(self.conn.initiate())
        if not isinstance(self._wait(None), HandshakeAccepted):
            raise SystemExit("handshake refused")

    def _frame(self) -> bytes:
        head = self._exactly(4)
        return head + self._exactly(int.from_bytes(head, "little", signed=True))

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("the node closed the connection")
            data += chunk
        return data

    def _wait(self, request_id: int | None) -> object:
        while True:
            event = self.conn.next_event()
            if event is NEED_DATA:
                self.conn.receive_data(self._frame())
            elif request_id is None or getattr(event, "request_id", None) == request_id:
                return event

    def op(self, op: int, body: bytes = b"") -> bytes:
        request_id, data = self.conn.send_request(op, body)
        try:
            self.sock.sendall(data)
            event = self._wait(request_id)
        except (ConnectionError, OSError):
            self.sock.close()
            self._connect()  # the node drops connections on requests it cannot parse
            raise NodeError(-1, "connection closed by the node") from None
        if isinstance(event, ErrorResponse):
            raise NodeError(event.status, event.message)
        assert isinstance(event, Response)
        return bytes(event.body)


def _str(value: str | None) -> bytes:
    buf = bytearray()
    write_value(buf, value, T.STRING)
    return bytes(buf)


class Capture:
    def __init__(self, node: Node) -> None:
        self.node = node
        self.registry = Registry()
        self.compact = CodecContext(self.registry, compact_footer=True)
        self.full = CodecContext(self.registry, compact_footer=False)
        self.cases: list[Json] = []
        self.exchanges: list[Json] = []
        self.type_ids: set[int] = set()
        self.mismatches = 0
        self.cache = "types-vectors"
        self.node.op(OpCode.CACHE_GET_OR_CREATE_WITH_NAME, _str(self.cache))

    # -- plumbing -----------------------------------------------------------------------------

    def register_pending(self, ctx: CodecContext) -> None:
        for bt in ctx.take_pending():
            self.node.op(OpCode.BINARY_TYPE_PUT, binary_type_put(bt))
            self.registry.add(bt)
            self.type_ids.add(bt.type_id)

    def refresh(self, tid: int) -> BinaryType:
        bt = parse_binary_type_get(self.node.op(OpCode.BINARY_TYPE_GET, binary_type_get(tid)))
        assert bt is not None, tid
        self.registry.add(bt)
        self.type_ids.add(tid)
        return bt

    def kv(self, op: OpCode, key: object, value: bytes | None = None, cache: str | None = None,
           ctx: CodecContext | None = None) -> bytes:
        body = bytearray(struct.pack("<ib", cache_id(cache or self.cache), 0))
        write_value(body, key, ctx=ctx)
        if value is not None:
            body += value
        return self.node.op(op, bytes(body))

    def record(self, name: str, group: str, data: bytes, expected: Json, *,
               ctx: CodecContext | None, encode_tj: Json | None = None, note: str = "") -> None:
        """Check and store one case: ``data`` must decode to ``expected``."""
        ctx = ctx or self.compact
        case: Json = {"name": name, "group": group, "hex": data.hex(), "value": expected}
        try:
            decoded = decode_value(data, ctx=ctx)
            if not deep_same(decoded, tj_to_python(expected)):
                raise AssertionError(f"decoded {decoded!r}")
        except Exception as exc:  # report, keep going
            self.mismatches += 1
            print(f"MISMATCH {group}/{name}: {exc!r}"[:400], file=sys.stderr)
            print(f"  expected {tj_to_python(expected)!r}"[:400], file=sys.stderr)
        case["encode"] = False
        for source in ([encode_tj] if encode_tj else []) + [expected]:
            target = data
            if data[0] == T.WRAPPED_BINARY and data[-4:] == bytes(4):  # root at offset 0
                target = data[5:-4]  # we never write 27: compare the root object
                if source["type"] == "WRAPPED_BINARY":
                    source = source["value"]
            try:
                again = encode_value(tj_to_typed(source), ctx=ctx)
            except Exception:  # decode-only case (handles, hand-made layouts ...)
                continue
            if again == target:
                case["encode"] = {"compact_footer": ctx.compact_footer,
                                  "unwrap": target is not data}
                if source is encode_tj:
                    case["encode_value"] = encode_tj
                break
        if note:
            case["note"] = note
        self.cases.append(case)

    def put_get(self, name: str, group: str, value: Json, *, expected: Json | None = None,
                ctx: CodecContext | None = None, note: str = "") -> bytes | None:
        """Put ``value`` (encoded by us) as a cache value, read it back, record the bytes."""
        ctx = ctx or self.compact
        data = encode_value(tj_to_typed(value), ctx=ctx)
        self.register_pending(ctx)
        key = f"{group}/{name}/{'compact' if ctx.compact_footer else 'full'}"
        try:
            self.kv(OpCode.CACHE_PUT, key, data)
            got = self.kv(OpCode.CACHE_GET, key)
        except NodeError as exc:
            print(f"REFUSED {group}/{name}: {exc}", file=sys.stderr)
            return None
        expected = expected or value
        if got[0] == T.WRAPPED_BINARY and expected["type"] == "COMPLEX_OBJECT":
            expected = tj(T.WRAPPED_BINARY, expected)  # the node answers objects wrapped
        self.record(name, group, got, expected, ctx=ctx,
                    encode_tj=value if expected is not value else None, note=note)
        return got

    def sql(self, query: str, *args: object, schema: str = "PUBLIC") -> list[list[object]]:
        body = bytearray(struct.pack("<ib", 0, 0))
        body += _str(schema) + struct.pack("<ii", 1024, -1) + _str(query)
        body += struct.pack("<i", len(args))
        for arg in args:
            write_value(body, arg)
        body += struct.pack("<b", 0) + bytes(6) + struct.pack("<q", 0) + b"\x00"
        reply = self.node.op(OpCode.QUERY_SQL_FIELDS, bytes(body))
        _, columns, rows = struct.unpack_from("<qii", reply, 0)
        pos, out = 16, []
        for _ in range(rows):
            row = []
            for _ in range(columns):
                value, pos = read_value(reply, pos, ctx=self.compact)
                row.append(value)
            out.append(row)
        return out

    def scan(self, cache: str) -> list[tuple[bytes, bytes]]:
        body = struct.pack("<ib", cache_id(cache), 1) + b"\x65" + struct.pack("<iib", 1000, -1, 0)
        reply = self.node.op(OpCode.QUERY_SCAN, body)
        (count,) = struct.unpack_from("<i", reply, 8)
        pos, pairs = 12, []
        for _ in range(count):
            k_end = value_end(reply, pos)
            v_end = value_end(reply, k_end)
            pairs.append((reply[pos:k_end], reply[k_end:v_end]))
            pos = v_end
        return pairs

    def exchange(self, name: str, op: OpCode, body: bytes, parse: Any, to_json: Any = None) -> Any:
        try:
            reply = self.node.op(op, body)
        except NodeError as exc:
            self.exchanges.append({"name": name, "op": op.name, "request_hex": body.hex(),
                                   "error": {"status": exc.status}})
            return None
        result = parse(reply)
        record: Json = {"name": name, "op": op.name, "request_hex": body.hex()}
        if len(reply) > 4096:  # big answers are in the cases already: keep a digest
            record["response_sha256"] = hashlib.sha256(reply).hexdigest()
        else:
            record["response_hex"] = reply.hex()
            record["result"] = to_json(result) if to_json else result
        self.exchanges.append(record)
        return result


def value_end(buf: bytes, pos: int) -> int:
    """End of one value, found from its length fields (not with our decoder) for the shapes
    a scan returns here: INT keys, 103 objects and 27 wrapped objects."""
    code = buf[pos]
    if code == T.INT:
        return pos + 5
    if code == T.COMPLEX_OBJECT:
        return pos + struct.unpack_from("<i", buf, pos + 12)[0]
    if code == T.WRAPPED_BINARY:
        return pos + 9 + struct.unpack_from("<i", buf, pos + 1)[0]
    raise ValueError(f"unexpected type code {code} in a scan reply")


def header(data: bytes) -> dict[str, int]:
    """type id, hash code and schema id straight from a (possibly wrapped) object header."""
    pos = 5 if data[0] == T.WRAPPED_BINARY else 0
    _, _, _, tid, hash_code, _, sid, _ = _HEADER.unpack_from(data, pos)
    return {"type_id": tid, "hash_code": hash_code, "schema_id": sid}


def obj(type_name: str, fields: list[tuple[str, Json]], *, raw: str | None = None,
        data: bytes | None = None, type_id_: int | None = None) -> Json:
    """A COMPLEX_OBJECT TJ; hash and schema ids come from ``data``'s header when given."""
    out = tj(T.COMPLEX_OBJECT, None, type_id=type_id(type_name) if type_id_ is None else type_id_,
             type_name=type_name, fields=[[n, v] for n, v in fields], raw=raw)
    del out["value"]
    if data is not None:
        out.update({k: v for k, v in header(data).items() if k != "type_id"})
    return out


def bt_json(bt: BinaryType | None) -> Json | None:
    if bt is None:
        return None
    out = dataclasses.asdict(bt)
    out["schemas"] = {str(k): v for k, v in bt.schemas.items()}
    return out


# -- samples ----------------------------------------------------------------------------------

STANDARD: list[tuple[str, Json]] = [
    ("uuid-nil", tj(T.UUID, "00000000-0000-0000-0000-000000000000")),
    ("uuid-max", tj(T.UUID, "ffffffff-ffff-ffff-ffff-ffffffffffff")),
    ("uuid", tj(T.UUID, U1)),
    ("date-epoch", tj(T.DATE, 0)),
    ("date-minus-one", tj(T.DATE, -1)),
    ("date-2023", tj(T.DATE, 1700000000123)),
    ("date-year-1", tj(T.DATE, -62135596800000)),
    ("date-year-9999", tj(T.DATE, 253402300799999)),
    ("date-long-max", tj(T.DATE, I64_MAX)),
    ("date-long-min", tj(T.DATE, I64_MIN)),
    ("timestamp-epoch", tj(T.TIMESTAMP, [0, 0])),
    ("timestamp-nanos", tj(T.TIMESTAMP, [1700000000123, 456789])),
    ("timestamp-before-epoch", tj(T.TIMESTAMP, [-1, 999999])),
    ("timestamp-max", tj(T.TIMESTAMP, [I64_MAX, 999999])),
    ("time-midnight", tj(T.TIME, 0)),
    ("time-last-ms", tj(T.TIME, 86399999)),
    ("time-noon-ish", tj(T.TIME, 45296789)),
    ("time-negative", tj(T.TIME, -1)),
    ("decimal-zero", tj(T.DECIMAL, "0")),
    ("decimal-one", tj(T.DECIMAL, "1")),
    ("decimal-minus-one", tj(T.DECIMAL, "-1")),
    ("decimal-scale-2", tj(T.DECIMAL, "1.50")),
    ("decimal-neg-scale-2", tj(T.DECIMAL, "-1.50")),
    ("decimal-127", tj(T.DECIMAL, "127")),
    ("decimal-128", tj(T.DECIMAL, "128")),
    ("decimal-minus-128", tj(T.DECIMAL, "-128")),
    ("decimal-255", tj(T.DECIMAL, "255")),
    ("decimal-256", tj(T.DECIMAL, "256")),
    ("decimal-neg-scale", tj(T.DECIMAL, "1E+10")),
    ("decimal-tiny", tj(T.DECIMAL, "1E-30")),
    ("decimal-zero-scale-3", tj(T.DECIMAL, "0.000")),
    ("decimal-max-scale", tj(T.DECIMAL, "1E-2147483647")),
    ("decimal-long-min", tj(T.DECIMAL, str(I64_MIN))),
    ("decimal-long-max", tj(T.DECIMAL, str(I64_MAX))),
    ("decimal-big", tj(T.DECIMAL, "-123456789012345678901234567890.123456789")),
    ("short-array", tj(T.SHORT_ARRAY, [-(2**15), 0, 2**15 - 1])),
    ("int-array", tj(T.INT_ARRAY, [I32_MIN, -1, 0, I32_MAX])),
    ("long-array", tj(T.LONG_ARRAY, [I64_MIN, 0, I64_MAX])),
    ("float-array", tj(T.FLOAT_ARRAY, [1.5, "-inf", -0.0])),
    ("double-array", tj(T.DOUBLE_ARRAY, [-2.25, "inf", 5e-324])),
    ("char-array", tj(T.CHAR_ARRAY, ["a", "Ж", "\uffff"])),
    ("bool-array", tj(T.BOOL_ARRAY, [True, False, True])),
    ("byte-array", tj(T.BYTE_ARRAY, "00ff7f80")),
    ("empty-short-array", tj(T.SHORT_ARRAY, [])),
    ("empty-int-array", tj(T.INT_ARRAY, [])),
    ("empty-long-array", tj(T.LONG_ARRAY, [])),
    ("empty-float-array", tj(T.FLOAT_ARRAY, [])),
    ("empty-double-array", tj(T.DOUBLE_ARRAY, [])),
    ("empty-char-array", tj(T.CHAR_ARRAY, [])),
    ("empty-bool-array", tj(T.BOOL_ARRAY, [])),
    ("string-array", tj(T.STRING_ARRAY, [tj(T.STRING, "a"), tj(T.NULL), tj(T.STRING, "ключ"),
                                         tj(T.STRING, "😀"), tj(T.STRING, "")])),
    ("empty-string-array", tj(T.STRING_ARRAY, [])),
    ("uuid-array", tj(T.UUID_ARRAY, [tj(T.UUID, U1), tj(T.NULL)])),
    ("date-array", tj(T.DATE_ARRAY, [tj(T.DATE, 0), tj(T.NULL), tj(T.DATE, -1)])),
    ("timestamp-array", tj(T.TIMESTAMP_ARRAY, [tj(T.TIMESTAMP, [1, 2]), tj(T.NULL)])),
    ("time-array", tj(T.TIME_ARRAY, [tj(T.TIME, 1), tj(T.NULL)])),
    ("decimal-array", tj(T.DECIMAL_ARRAY, [tj(T.DECIMAL, "1.5"), tj(T.NULL),
                                           tj(T.DECIMAL, "-2")])),
    ("object-array", tj(T.OBJECT_ARRAY, [tj(T.LONG, 1), tj(T.STRING, "a"), tj(T.NULL),
                                         tj(T.INT_ARRAY, [1, 2])], type_id=-1)),
    ("empty-object-array", tj(T.OBJECT_ARRAY, [], type_id=-1)),
]

COLLECTIONS: list[tuple[str, Json, Json | None, str]] = [
    ("arr-list", tj(T.COLLECTION, [tj(T.LONG, 1), tj(T.STRING, "a"), tj(T.NULL)], kind=1), None,
     ""),
    ("linked-list", tj(T.COLLECTION, [tj(T.INT, 1), tj(T.INT, 2)], kind=2), None, ""),
    ("hash-set", tj(T.COLLECTION, [tj(T.STRING, "x")], kind=3), None, ""),
    ("linked-hash-set", tj(T.COLLECTION, [tj(T.STRING, "y"), tj(T.STRING, "x")], kind=4), None,
     ""),
    ("empty-arr-list", tj(T.COLLECTION, [], kind=1), None, ""),
    ("user-col", tj(T.COLLECTION, [tj(T.STRING, "a")], kind=0),
     tj(T.COLLECTION, [tj(T.STRING, "a")], kind=1), "the node answers USER_COL as ARR_LIST"),
    ("user-set", tj(T.COLLECTION, [tj(T.STRING, "a")], kind=-1),
     tj(T.COLLECTION, [tj(T.STRING, "a")], kind=3), "the node answers USER_SET as HASH_SET"),
    ("hash-map", tj(T.MAP, [[tj(T.STRING, "k"), tj(T.LONG, 1)]], kind=1), None, ""),
    ("linked-hash-map", tj(T.MAP, [[tj(T.STRING, "b"), tj(T.INT, 1)],
                                   [tj(T.STRING, "a"), tj(T.NULL)],
                                   [tj(T.INT, 3), tj(T.STRING_ARRAY, [tj(T.STRING, "z")])]],
                           kind=2), None, ""),
    ("empty-map", tj(T.MAP, [], kind=1), None, ""),
    ("nested", tj(T.COLLECTION, [
        tj(T.MAP, [[tj(T.STRING, "inner"), tj(T.COLLECTION, [tj(T.DOUBLE, 1.5)], kind=2)]],
           kind=2),
        tj(T.OBJECT_ARRAY, [tj(T.UUID, U1), tj(T.DECIMAL, "3.14")], type_id=-1),
    ], kind=1), None, ""),
]


def capture_standard(cap: Capture) -> None:
    for name, value in STANDARD:
        cap.put_get(name, "standard", value)
    cap.put_get("decimal-negative-zero", "standard", tj(T.DECIMAL, "-0"),
                expected=tj(T.DECIMAL, "0"), note="Java has no negative zero: the sign is dropped")
    for name, value, expected, note in COLLECTIONS:
        cap.put_get(name, "collections", value, expected=expected, note=note)
    # SINGLETON_LIST comes back as an optimized-marshaller blob: record the node's bytes.
    data = encode_value(tj_to_typed(tj(T.COLLECTION, [tj(T.STRING, "a")], kind=5)))
    cap.kv(OpCode.CACHE_PUT, "collections/singleton", data)
    got = cap.kv(OpCode.CACHE_GET, "collections/singleton")
    assert got[0] == 0xFE, got.hex()
    cap.record("singleton-list", "collections", got, tj(T.OPTIMIZED_MARSHALLER, got[5:].hex()),
               ctx=None, note="SINGLETON_LIST is answered as a -2 (optimized marshaller) blob")
    # Enums: registered with BINARY_TYPE_PUT, put as Enum (28), answered as BinaryEnum (38).
    color = enum_type("types.Color", ["RED", "GREEN", "BLUE"])
    cap.exchange("put-enum-type", OpCode.BINARY_TYPE_PUT, binary_type_put(color), lambda b: None)
    cap.registry.add(color)
    cap.type_ids.add(color.type_id)
    tid = color.type_id
    cap.put_get("enum", "standard", tj(T.ENUM, [tid, 1]), expected=tj(T.BINARY_ENUM, [tid, 1]),
                note="an Enum value comes back as a BinaryEnum")
    cap.put_get("binary-enum", "standard", tj(T.BINARY_ENUM, [tid, 2]))
    cap.put_get("enum-array", "standard",
                tj(T.ENUM_ARRAY, [tj(T.ENUM, [tid, 0]), tj(T.NULL)], type_id=tid),
                expected=tj(T.OBJECT_ARRAY, [tj(T.BINARY_ENUM, [tid, 0]), tj(T.NULL)],
                            type_id=-1),
                note="an Enum[] comes back as an Object[] of BinaryEnums")
    cap.put_get("optimized-blob", "standard", tj(T.OPTIMIZED_MARSHALLER, got[5:].hex()))


# -- complex objects encoded by us ------------------------------------------------------------

ALL_FIELDS: list[tuple[str, Json]] = [
    ("aByte", tj(T.BYTE, -5)),
    ("aShort", tj(T.SHORT, 300)),
    ("anInt", tj(T.INT, -70000)),
    ("aLong", tj(T.LONG, 1 << 40)),
    ("aFloat", tj(T.FLOAT, 0.5)),
    ("aDouble", tj(T.DOUBLE, -1.25)),
    ("aChar", tj(T.CHAR, "Ж")),
    ("aBool", tj(T.BOOL, True)),
    ("aString", tj(T.STRING, "héllo")),
    ("aUuid", tj(T.UUID, U1)),
    ("aDate", tj(T.DATE, 1700000000123)),
    ("aTimestamp", tj(T.TIMESTAMP, [1700000000123, 456789])),
    ("aTime", tj(T.TIME, 45296789)),
    ("aDecimal", tj(T.DECIMAL, "-12.345")),
    ("bytes", tj(T.BYTE_ARRAY, "0102")),
    ("ints", tj(T.INT_ARRAY, [1, 2, 3])),
    ("strings", tj(T.STRING_ARRAY, [tj(T.STRING, "a"), tj(T.NULL)])),
    ("aList", tj(T.COLLECTION, [tj(T.LONG, 1)], kind=1)),
    ("aMap", tj(T.MAP, [[tj(T.STRING, "k"), tj(T.STRING, "v")]], kind=1)),
    ("nothing", tj(T.NULL)),
]


def capture_objects(cap: Capture) -> None:
    for ctx, form in ((cap.compact, "compact"), (cap.full, "full")):
        name = "types.AllFields"
        probe = encode_value(tj_to_typed(obj(name, ALL_FIELDS)), ctx=ctx)
        cap.put_get(f"all-fields-{form}", "objects", obj(name, ALL_FIELDS, data=probe), ctx=ctx)
        for label, size in (("2-byte-offsets", 300), ("4-byte-offsets", 65520)):
            fields = [("text", tj(T.STRING, "x", times=size)), ("after", tj(T.INT, 7))]
            probe = encode_value(tj_to_typed(obj("types.Offsets", fields)), ctx=ctx)
            cap.put_get(f"{label}-{form}", "objects", obj("types.Offsets", fields, data=probe),
                        ctx=ctx)
        # 255 is the last one-byte offset (pyignite switches to two bytes there)
        fields = [("pad", tj(T.BYTE_ARRAY, "00" * (255 - 24 - 5))), ("last", tj(T.BYTE, 1))]
        probe = encode_value(tj_to_typed(obj("types.Offsets255", fields)), ctx=ctx)
        cap.put_get(f"offset-255-{form}", "objects", obj("types.Offsets255", fields, data=probe),
                    ctx=ctx, note="last field at offset 255: still one-byte offsets")
        inner = obj("types.Point", [("x", tj(T.INT, 1)), ("y", tj(T.INT, 2))],
                    data=encode_value(tj_to_typed(obj("types.Point", [("x", tj(T.INT, 1)),
                                                                        ("y", tj(T.INT, 2))])),
                                      ctx=ctx))
        fields = [("name", tj(T.STRING, "segment")), ("from", inner), ("to", inner),
                  ("points", tj(T.COLLECTION, [inner], kind=1))]
        probe = encode_value(tj_to_typed(obj("types.Segment", fields)), ctx=ctx)
        cap.put_get(f"nested-{form}", "objects", obj("types.Segment", fields, data=probe), ctx=ctx,
                    expected=None)
        raw_fields = [("id", tj(T.INT, 5))]
        probe = encode_value(tj_to_typed(obj("types.WithRaw", raw_fields, raw="deadbeef")), ctx=ctx)
        cap.put_get(f"raw-data-{form}", "objects",
                    obj("types.WithRaw", raw_fields, raw="deadbeef", data=probe), ctx=ctx,
                    note="raw data written by us (the thin client has no way to make the node "
                         "write raw data); stored and returned as is")
        probe = encode_value(tj_to_typed(obj("types.RawOnly", [], raw="0102")), ctx=ctx)
        cap.put_get(f"raw-only-{form}", "objects", obj("types.RawOnly", [], raw="0102", data=probe),
                    ctx=ctx)
        probe = encode_value(tj_to_typed(obj("types.Empty", [])), ctx=ctx)
        cap.put_get(f"empty-{form}", "objects", obj("types.Empty", [], data=probe), ctx=ctx)
        tid = type_id("types.Color")
        fields = [("color", tj(T.BINARY_ENUM, [tid, 2])), ("label", tj(T.STRING, "blue"))]
        probe = encode_value(tj_to_typed(obj("types.Tagged", fields)), ctx=ctx)
        cap.put_get(f"enum-field-{form}", "objects", obj("types.Tagged", fields, data=probe),
                    ctx=ctx)
    capture_unregistered(cap)


def capture_unregistered(cap: Capture) -> None:
    """Type id 0 with the class name before the fields (full footer: no schema needed)."""
    name = "types.Unregistered"
    cls = _str(name)
    fields = encode_value(Typed(T.INT, 42))
    body = cls + fields
    footer = struct.pack("<iB", type_id("value"), 24 + len(cls))
    data_hash = object_hash(fields)
    length = 24 + len(body) + len(footer)
    flags = 0x01 | 0x02 | 0x08
    from protocol.hashing import schema_id
    sid = schema_id([type_id("value")])
    data = _HEADER.pack(103, 1, flags, 0, data_hash, length, sid, 24 + len(body)) + body + footer
    cap.registry.add(BinaryType(type_id(name), name, fields=[("value", 3, type_id("value"))],
                                schemas={sid: [type_id("value")]}))
    cap.node.op(OpCode.BINARY_TYPE_PUT, binary_type_put(cap.registry.get(type_id(name))))  # type: ignore[arg-type]
    cap.type_ids.add(type_id(name))
    expected = obj(name, [("value", tj(T.INT, 42))])
    expected.update(hash_code=data_hash, schema_id=sid)
    try:
        cap.kv(OpCode.CACHE_PUT, "objects/unregistered", data)
        got = cap.kv(OpCode.CACHE_GET, "objects/unregistered")
        cap.record("unregistered-type", "objects", got, expected, ctx=cap.full,
                   note="type id 0 + class name, hand-made (our encoder never writes it)")
    except NodeError as exc:
        print(f"REFUSED unregistered: {exc}", file=sys.stderr)
        cap.record("unregistered-type-local", "objects", data, expected, ctx=cap.full,
                   note=f"hand-made; the node refused it ({exc})")


def capture_handles(cap: Capture) -> None:
    """A field that is a HANDLE to an earlier field's value: the node's SQL engine reads it
    through the handle, which pins down where a handle points (102 byte - offset)."""
    cap.sql('CREATE TABLE IF NOT EXISTS types_handles (id INT PRIMARY KEY, a VARCHAR, b VARCHAR) '
            'WITH "VALUE_TYPE=types.Handles,CACHE_NAME=types_handles"')
    cap.sql("MERGE INTO types_handles (id, a, b) VALUES (1, 'first', 'second')")
    bt = cap.refresh(type_id("types.Handles"))
    sid = next(iter(bt.schemas))
    a = encode_value("first")
    handle = b"\x66" + struct.pack("<i", len(a))  # back to the start of field A
    body = a + handle
    footer = bytes([24, 24 + len(a)])
    flags = 0x01 | 0x02 | 0x08 | 0x20
    data = _HEADER.pack(103, 1, flags, bt.type_id, object_hash(body), 24 + len(body) + 2, sid,
                        24 + len(body)) + body + footer
    cap.kv(OpCode.CACHE_PUT, Typed(T.INT, 2), data, cache="types_handles")
    got = cap.kv(OpCode.CACHE_GET, Typed(T.INT, 2), cache="types_handles")
    rows = cap.sql("SELECT a, b FROM types_handles WHERE id = 2")
    fields = [("A", tj(T.STRING, "first")), ("B", tj(T.STRING, "first"))]
    expected = tj(T.WRAPPED_BINARY, obj("types.Handles", fields, data=data))
    cap.record("field-handle", "handles", got, expected, ctx=cap.compact,
               note=f"field B is a HANDLE to field A; the node's SQL reads it as {rows[0]!r}")
    if rows != [["first", "first"]]:
        cap.mismatches += 1
        print(f"MISMATCH handles: SQL read {rows!r}", file=sys.stderr)
    # A handle in a collection: the node resolves it and answers with a full copy.
    col = encode_value(tj_to_typed(tj(T.COLLECTION, [tj(T.STRING, "z")], kind=1)))
    head = b"\x17" + struct.pack("<ii", -1, 2)
    arr = head + col + b"\x66" + struct.pack("<i", len(col))
    cap.record("object-array-handle", "handles", arr,
               tj(T.OBJECT_ARRAY, [tj(T.COLLECTION, [tj(T.STRING, "z")], kind=1)] * 2,
                  type_id=-1), ctx=None, note="hand-made: element 2 is a HANDLE to element 1")
    cap.kv(OpCode.CACHE_PUT, "handles/array", arr)
    got = cap.kv(OpCode.CACHE_GET, "handles/array")
    cap.record("object-array-handle-answer", "handles", got,
               tj(T.OBJECT_ARRAY, [tj(T.COLLECTION, [tj(T.STRING, "z")], kind=1)] * 2,
                  type_id=-1), ctx=None,
               note="the node's answer to object-array-handle: the handle resolved, written out")


# -- objects written by pyignite -------------------------------------------------------------


def capture_pyignite(cap: Capture, host: str, port: int) -> None:
    from collections import OrderedDict
    from decimal import Decimal

    from pyignite import Client, GenericObjectMeta
    from pyignite.datatypes import (
        BoolObject,
        CollectionObject,
        DateObject,
        DecimalObject,
        DoubleObject,
        IntArrayObject,
        IntObject,
        LongObject,
        MapObject,
        String,
        TimeObject,
        UUIDObject,
    )

    schema = OrderedDict([
        ("name", String), ("count", IntObject), ("big", LongObject), ("ratio", DoubleObject),
        ("flag", BoolObject), ("ident", UUIDObject), ("price", DecimalObject),
        ("when", DateObject), ("at", TimeObject), ("ints", IntArrayObject),
        ("tags", CollectionObject), ("attrs", MapObject),
    ])
    utc = datetime.UTC
    values = dict(
        name="pyignite", count=-7, big=1 << 40, ratio=0.25, flag=True, ident=uuid.UUID(U1),
        price=Decimal("1.50"), when=datetime.datetime(2024, 2, 29, 12, 0, tzinfo=utc),
        at=datetime.timedelta(hours=1, milliseconds=5), ints=[1, 2],
        tags=(CollectionObject.ARR_LIST, ["a"]), attrs=(MapObject.HASH_MAP, {"k": 1}),
    )
    expected_fields = [
        ("name", tj(T.STRING, "pyignite")), ("count", tj(T.INT, -7)),
        ("big", tj(T.LONG, 1 << 40)), ("ratio", tj(T.DOUBLE, 0.25)), ("flag", tj(T.BOOL, True)),
        ("ident", tj(T.UUID, U1)),
        ("price", tj(T.DECIMAL, "1.5")),  # pyignite normalises the Decimal (scale 1, not 2)
        ("when", tj(T.DATE, 1709208000000)), ("at", tj(T.TIME, 3600005)),
        ("ints", tj(T.INT_ARRAY, [1, 2])),
        ("tags", tj(T.COLLECTION, [tj(T.STRING, "a")], kind=1)),
        ("attrs", tj(T.MAP, [[tj(T.STRING, "k"), tj(T.LONG, 1)]], kind=1)),
    ]
    for compact in (True, False):
        type_name = f"types.Pyignite{'Compact' if compact else 'Full'}"

        class Sample(metaclass=GenericObjectMeta, type_name=type_name, schema=schema):
            pass

        client = Client(compact_footer=compact)
        with client.connect(host, port):
            cache = client.get_or_create_cache("types-pyignite")
            cache.put(type_name, Sample(**values))
        got = cap.kv(OpCode.CACHE_GET, type_name, cache="types-pyignite")
        cap.refresh(type_id(type_name))
        expected = obj(type_name, expected_fields, data=got)
        ctx = cap.compact if compact else cap.full
        cap.record(f"generic-object-{'compact' if compact else 'full'}", "pyignite", got,
                   expected, ctx=ctx, note="written by pyignite 0.6.1 (GenericObjectMeta)")


# -- objects the node builds from SQL ----------------------------------------------------------

SQL_COLUMNS = [
    ("C_BOOL", "BOOLEAN"), ("C_TINY", "TINYINT"), ("C_SMALL", "SMALLINT"), ("C_INT", "INT"),
    ("C_BIG", "BIGINT"), ("C_DEC", "DECIMAL(20, 4)"), ("C_DOUBLE", "DOUBLE"), ("C_REAL", "REAL"),
    ("C_TIME", "TIME"), ("C_DATE", "DATE"), ("C_TS", "TIMESTAMP"), ("C_UUID", "UUID"),
    ("C_BIN", "BINARY"), ("C_TEXT", "VARCHAR"), ("C_AFTER", "INT"),
]


def _sql_row(text: str, times: int, after: int) -> tuple[list[object], dict[str, Json]]:
    """INSERT arguments (encoded by us) and the fields the node should build from them."""
    args: list[object] = [
        True, Typed(T.BYTE, -8), Typed(T.SHORT, 1234), Typed(T.INT, -123456),
        Typed(T.LONG, 1 << 50), Typed(T.DECIMAL, __import__("decimal").Decimal("12345.6789")),
        2.5, Typed(T.FLOAT, 0.75), None, None, None, uuid.UUID(U1), b"\x01\x02\x03",
        text * times, Typed(T.INT, after),
    ]
    fields = {
        "C_BOOL": tj(T.BOOL, True), "C_TINY": tj(T.BYTE, -8), "C_SMALL": tj(T.SHORT, 1234),
        "C_INT": tj(T.INT, -123456), "C_BIG": tj(T.LONG, 1 << 50),
        "C_DEC": tj(T.DECIMAL, "12345.6789"), "C_DOUBLE": tj(T.DOUBLE, 2.5),
        "C_REAL": tj(T.FLOAT, 0.75),
        "C_TIME": tj(T.TIME, 45296000), "C_DATE": tj(T.NULL),  # see capture_sql
        "C_TS": tj(T.TIMESTAMP, [1709210096789, 123456]),
        "C_UUID": tj(T.UUID, U1), "C_BIN": tj(T.BYTE_ARRAY, "010203"),
        "C_TEXT": tj(T.STRING, text, times=times), "C_AFTER": tj(T.INT, after),
    }
    return args, fields


def capture_sql(cap: Capture) -> None:
    columns = ", ".join(f"{name} {sqltype}" for name, sqltype in SQL_COLUMNS)
    cap.sql(f"CREATE TABLE IF NOT EXISTS types_sql (ID INT, REGION VARCHAR, {columns}, "
            'PRIMARY KEY (ID, REGION)) WITH "KEY_TYPE=types.SqlKey,VALUE_TYPE=types.SqlValue,'
            'CACHE_NAME=types_sql"')
    names = ", ".join(name for name, _ in SQL_COLUMNS)
    marks = ", ".join("?" for _ in SQL_COLUMNS[:8]) + (
        ", TIME '12:34:56', DATE '2024-02-29', TIMESTAMP '2024-02-29 12:34:56.789123456'"
    ) + ", ?, ?, ?, ?"
    # C_AFTER follows the text, so a long text pushes the last offset past 255 / 65535
    rows = {1: ("short", 1), 2: ("y", 300), 3: ("z", 65520)}
    expected: dict[int, dict[str, Json]] = {}
    for row_id, (text, times) in rows.items():
        args, fields = _sql_row(text, times, row_id * 10)
        args = [a for a in args if a is not None]
        cap.sql(f"MERGE INTO types_sql (ID, REGION, {names}) VALUES (?, ?, {marks})",
                Typed(T.INT, row_id), "eu", *args)
        expected[row_id] = fields
    cap.sql("MERGE INTO types_sql (ID, REGION, C_INT) VALUES (4, 'us', 99)")
    expected[4] = {"C_INT": tj(T.INT, 99)}
    key_bt = cap.refresh(type_id("types.SqlKey"))
    value_bt = cap.refresh(type_id("types.SqlValue"))
    for key_data, value_data in cap.scan("types_sql"):
        key_header = header(key_data)
        key_names = key_bt.field_names(key_header["schema_id"])
        kid = decode_value(key_data, ctx=cap.compact).fields["ID"]  # type: ignore[attr-defined]
        region = "us" if kid == 4 else "eu"
        key_fields = {"ID": tj(T.INT, kid), "REGION": tj(T.STRING, region)}
        key_tj = obj("types.SqlKey", [(n, key_fields[n]) for n in key_names], data=key_data)
        cap.record(f"sql-key-{kid}", "sql", key_data, key_tj, ctx=cap.compact,
                   note="key object built by the node from SQL")
        value_names = value_bt.field_names(header(value_data)["schema_id"])
        row = dict(expected[kid])
        if "C_DATE" in row:
            # A DATE column holds a java.sql.Date, which the node writes with the optimized
            # marshaller (-2): opaque Java serialization, taken from the node as is.
            date = decode_value(value_data, ctx=cap.compact).fields["C_DATE"]  # type: ignore[attr-defined]
            assert isinstance(date, Typed) and date.type_code == T.OPTIMIZED_MARSHALLER, date
            row["C_DATE"] = tj(T.OPTIMIZED_MARSHALLER, date.value.hex())
        value_tj = obj("types.SqlValue",
                       [(n, row.get(n, tj(T.NULL))) for n in value_names], data=value_data)
        if value_data[0] == T.WRAPPED_BINARY:
            value_tj = tj(T.WRAPPED_BINARY, value_tj)
        cap.record(f"sql-value-{kid}", "sql", value_data, value_tj, ctx=cap.compact,
                   note="value object built by the node from SQL")
        # Our key, encoded from the metadata alone, must find the row.
        key = BinaryObject(key_bt.type_id, {"ID": kid, "REGION": region}, "types.SqlKey")
        ours = encode_value(key, ctx=cap.compact)
        inner_key = key_data[5:-4] if key_data[0] == T.WRAPPED_BINARY else key_data
        if ours != inner_key:
            cap.mismatches += 1
            print(f"MISMATCH our key {ours.hex()} != node key {key_data.hex()}", file=sys.stderr)
        body = bytearray(struct.pack("<ib", cache_id("types_sql"), 0)) + ours
        answer = cap.exchange(f"sql-get-by-our-key-{kid}", OpCode.CACHE_GET, bytes(body),
                              lambda b: b)
        cap.exchanges[-1].pop("result", None)  # the value case holds it
        if answer != value_data:
            cap.mismatches += 1
            print(f"MISMATCH get by our key {kid}: {cap.exchanges[-1]}", file=sys.stderr)


def capture_metadata(cap: Capture) -> None:
    tid = type_id("types.SqlValue")
    cap.exchange("get-type", OpCode.BINARY_TYPE_GET, binary_type_get(tid), parse_binary_type_get,
                 bt_json)
    cap.exchange("get-enum-type", OpCode.BINARY_TYPE_GET, binary_type_get(type_id("types.Color")),
                 parse_binary_type_get, bt_json)
    cap.exchange("get-unknown-type", OpCode.BINARY_TYPE_GET, binary_type_get(123456789),
                 parse_binary_type_get, bt_json)
    named = type_id("types.Named")
    cap.exchange("put-type-name", OpCode.BINARY_TYPE_NAME_PUT,
                 binary_type_name_put(named, "types.Named"), parse_binary_type_name_put)
    cap.exchange("get-type-name", OpCode.BINARY_TYPE_NAME_GET, binary_type_name_get(named),
                 parse_binary_type_name_get)
    cap.exchange("get-unknown-type-name", OpCode.BINARY_TYPE_NAME_GET,
                 binary_type_name_get(987654321), parse_binary_type_name_get)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="types_captured")
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--out", type=Path, default=VECTOR_DIR)
    args = parser.parse_args(argv)

    cap = Capture(Node(args.host, args.port, args.timeout))
    capture_standard(cap)
    capture_objects(cap)
    capture_handles(cap)
    capture_pyignite(cap, args.host, args.port)
    capture_sql(cap)
    capture_metadata(cap)
    metadata = {}
    for tid in sorted(cap.type_ids):
        metadata[str(tid)] = cap.node.op(OpCode.BINARY_TYPE_GET, binary_type_get(tid)).hex()
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    document = {
        "source": f"captured from {args.host}:{args.port} by tests/protocol/capture_types.py "
                  f"at {now}",
        "metadata": metadata,
        "cases": cap.cases,
        "exchanges": cap.exchanges,
    }
    path = args.out / f"{args.name}.json"
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n", "utf-8")
    encodable = sum(1 for c in cap.cases if c["encode"])
    print(f"wrote {path}: {len(cap.cases)} cases ({encodable} re-encode exactly), "
          f"{len(cap.exchanges)} exchanges, {len(metadata)} types, {cap.mismatches} mismatches")
    return 1 if cap.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Micro-benchmark of the codec: our sans-IO protocol vs pyignite 0.6.1's own encode/parse path.

Measured per message, in-process, no sockets: building a request frame (op builder +
``ClientConnection.send_request`` vs pyignite's ``Query(...).from_python`` into a
``BinaryStream``), turning a response frame into a value (``receive_data`` +
``next_event`` + the op parser vs pyignite's ``Response.parse`` + ``read_ctype`` +
``to_python``), a 20-field complex object both ways (``protocol.binary`` with a
registry vs a ``GenericObjectMeta`` class), and our key routing (``node_for``). Every
timing is the best of several rounds of a tight loop.

    .venv/bin/python bench/codec_bench.py            # prints a markdown table
    .venv/bin/python bench/codec_bench.py --quick    # fewer iterations
Results are also written to bench/results/codec.md.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import struct
import sys
import timeit
import uuid
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root

from pyignite import Client as PyClient
from pyignite import GenericObjectMeta
from pyignite.api.result import APIResult
from pyignite.connection.bitmask_feature import BitmaskFeature
from pyignite.connection.protocol_context import ProtocolContext
from pyignite.datatypes import (
    AnyDataObject,
    BoolObject,
    DoubleObject,
    IntObject,
    LongObject,
    String,
    UUIDObject,
)
from pyignite.datatypes.complex import BinaryObject as PyBinaryObject
from pyignite.queries import Query
from pyignite.queries.cache_info import CacheInfo
from pyignite.queries.op_codes import OP_CACHE_GET, OP_CACHE_PUT
from pyignite.queries.response import Response as PyResponse
from pyignite.stream import READ_BACKWARD, BinaryStream

from protocol import NEED_DATA, ClientConnection, ConnectionConfig, OpCode, affinity, cache_id, ops
from protocol.binary import decode_value, encode_value
from protocol.binary.metadata import object_type
from protocol.binary.registry import CodecContext, Registry
from protocol.binary.values import BinaryObject

RESULTS = Path(__file__).parent / "results" / "codec.md"
CACHE = "bench-cache"
KEY = "user:1234567"
VALUE = "a typical cached value, some sixty-four characters of text ..!"
NODE = uuid.UUID("8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")

# 20 fields: 5 int, 5 String, 4 double, 3 long, 2 bool, 1 UUID.
FIELDS: list[tuple[str, Any, int, Any]] = (
    [(f"int{i}", IntObject, 3, i * 1000 - 7) for i in range(5)]
    + [(f"str{i}", String, 9, f"string field number {i}") for i in range(5)]
    + [(f"dbl{i}", DoubleObject, 6, i / 3) for i in range(4)]
    + [(f"lng{i}", LongObject, 4, 2**40 + i) for i in range(3)]
    + [(f"flag{i}", BoolObject, 8, i % 2 == 0) for i in range(2)]
    + [("id", UUIDObject, 10, uuid.UUID(int=0x1234_5678_9ABC_DEF0_1234_5678_9ABC_DEF0))]
)
TYPE_NAME = "BenchObject20"


# -- ours -------------------------------------------------------------------------------------


def _ready_connection() -> ClientConnection:
    conn = ClientConnection(ConnectionConfig(versions=((1, 7, 0),)))
    conn.initiate()
    features = b"\x0c" + struct.pack("<i", 2) + b"\x0c\x08"
    node = b"\x0a" + struct.pack("<QQ", NODE.int >> 64, NODE.int & (2**64 - 1))
    payload = b"\x01" + features + node
    conn.receive_data(struct.pack("<i", len(payload)) + payload)
    conn.next_event()
    return conn


def _response_frame(request_id: int, body: bytes) -> bytes:
    payload = struct.pack("<qh", request_id, 0) + body
    return struct.pack("<i", len(payload)) + payload


def ours_get_request(conn: ClientConnection, cid: int) -> Callable[[], object]:
    def run() -> object:
        return conn.send_request(OpCode.CACHE_GET, ops.cache_get(cid, KEY))

    return run


def ours_put_request(conn: ClientConnection, cid: int) -> Callable[[], object]:
    def run() -> object:
        return conn.send_request(OpCode.CACHE_PUT, ops.cache_put(cid, KEY, VALUE))

    return run


def ours_response(conn: ClientConnection, body: bytes, parse: Callable[[Any], object],
                  n: int) -> Callable[[], object]:
    """Decoding n responses: frames for n sent requests, fed one per call."""
    frames = iter([_response_frame(conn.send_request(OpCode.CACHE_GET, b"")[0], body)
                   for _ in range(n)])

    def run() -> object:
        conn.receive_data(next(frames))
        event = conn.next_event()
        assert event is not NEED_DATA
        return parse(event.body)  # type: ignore[union-attr]

    return run


def ours_object() -> tuple[CodecContext, BinaryObject]:
    ctx = CodecContext(Registry())
    bt = object_type(TYPE_NAME, [(name, code) for name, _, code, _ in FIELDS])
    ctx.registry.add(bt)
    return ctx, BinaryObject(bt.type_id, {name: v for name, _, _, v in FIELDS}, TYPE_NAME)


# -- pyignite -------------------------------------------------------------------------------------


def _py_client() -> PyClient:
    client = PyClient(compact_footer=True)
    client.compact_footer = True
    return client


def _py_context() -> ProtocolContext:
    return ProtocolContext((1, 7, 0), BitmaskFeature.from_array(b"\x04"))


def py_get_request(client: PyClient, info: CacheInfo) -> Callable[[], object]:
    def run() -> object:
        query = Query(OP_CACHE_GET, [("cache_info", CacheInfo), ("key", AnyDataObject)])
        with BinaryStream(client) as stream:
            query.from_python(stream, {"cache_info": info, "key": KEY})
            return stream.getvalue()

    return run


def py_put_request(client: PyClient, info: CacheInfo) -> Callable[[], object]:
    def run() -> object:
        query = Query(OP_CACHE_PUT, [("cache_info", CacheInfo), ("key", AnyDataObject),
                                     ("value", AnyDataObject)])
        with BinaryStream(client) as stream:
            query.from_python(stream, {"cache_info": info, "key": KEY, "value": VALUE})
            return stream.getvalue()

    return run


def py_response(client: PyClient, frame: bytes, following: list[Any]) -> Callable[[], object]:
    context = _py_context()

    def run() -> object:
        response_struct = PyResponse(protocol_context=context, following=following)
        with BinaryStream(client, frame) as stream:
            ctype = response_struct.parse(stream)
            response = stream.read_ctype(ctype, direction=READ_BACKWARD)
        result = APIResult(response)
        if result.status == 0:
            result.value = response_struct.to_python(response)
        return result

    return run


def py_object_class(client: PyClient) -> type:
    schema = OrderedDict((name, ptype) for name, ptype, _, _ in FIELDS)

    class Bench20(metaclass=GenericObjectMeta, type_name=TYPE_NAME, schema=schema):  # type: ignore[call-arg,misc]
        pass

    client._registry[Bench20.type_id][Bench20.schema_id] = Bench20  # no server round trip
    return Bench20


def py_object(cls: type) -> Any:
    obj = cls()
    for name, _, _, value in FIELDS:
        setattr(obj, name, value)
    return obj


def py_encode_object(client: PyClient, obj: Any) -> Callable[[], object]:
    def run() -> object:
        with BinaryStream(client) as stream:
            PyBinaryObject.from_python(stream, obj)
            return stream.getvalue()

    return run


def py_decode_object(client: PyClient, data: bytes) -> Callable[[], object]:
    def run() -> object:
        with BinaryStream(client, data) as stream:
            ctype = PyBinaryObject.parse(stream)
            return PyBinaryObject.to_python(stream.read_ctype(ctype, direction=READ_BACKWARD),
                                            client=client)

    return run


# -- measuring ------------------------------------------------------------------------------------


def best_us(fn: Callable[[], object], number: int, repeat: int) -> float:
    """Best per-call time in microseconds over ``repeat`` rounds of ``number`` calls."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def measure(number: int, repeat: int) -> list[tuple[str, float, float | None]]:
    cid = cache_id(CACHE)
    conn = _ready_connection()
    client = _py_client()
    info = CacheInfo(cache_id=cid, protocol_context=_py_context())
    value_body = encode_value(VALUE)
    rows: list[tuple[str, float, float | None]] = []

    # Sanity: both sides build the same request bytes (request ids aside).
    ours_bytes = ours_put_request(_ready_connection(), cid)()[1]  # type: ignore[index]
    py_bytes = py_put_request(client, info)()
    assert ours_bytes[:6] == py_bytes[:6] and ours_bytes[14:] == py_bytes[14:], "encoders differ"

    rows.append(("CACHE_GET request: build frame", best_us(ours_get_request(conn, cid), number,
                 repeat), best_us(py_get_request(client, info), number, repeat)))
    rows.append(("CACHE_PUT request: build frame", best_us(ours_put_request(conn, cid), number,
                 repeat), best_us(py_put_request(client, info), number, repeat)))
    get_frame = _response_frame(1, value_body)
    ours_get = min(best_us(ours_response(conn, value_body, ops.parse_cache_get, number), number, 1)
                   for _ in range(repeat))
    rows.append(("CACHE_GET response: frame -> value", ours_get,
                 best_us(py_response(client, get_frame, [("value", AnyDataObject)]), number,
                         repeat)))
    ours_put = min(best_us(ours_response(conn, b"", ops.parse_cache_put, number), number, 1)
                   for _ in range(repeat))
    rows.append(("CACHE_PUT response: frame -> None", ours_put,
                 best_us(py_response(client, _response_frame(1, b""), []), number, repeat)))

    ctx, ours_obj = ours_object()
    ours_data = encode_value(ours_obj, ctx=ctx)
    py_cls = py_object_class(client)
    py_obj = py_object(py_cls)
    py_data = py_encode_object(client, py_obj)()
    assert ours_data == py_data, "the 20-field objects differ"  # same bytes, same hash
    small = max(number // 4, 1)
    rows.append(("20-field object: encode", best_us(lambda: encode_value(ours_obj, ctx=ctx),
                 small, repeat), best_us(py_encode_object(client, py_obj), small, repeat)))
    rows.append(("20-field object: decode", best_us(lambda: decode_value(ours_data, ctx=ctx),
                 small, repeat), best_us(py_decode_object(client, py_data), small, repeat)))

    mapping = _mapping()
    rows.append(("route a str key (node_for)", best_us(lambda: mapping.node_for(cid, KEY),
                 number, repeat), None))
    rows.append(("route an int key (node_for)", best_us(lambda: mapping.node_for(cid, 123456789),
                 number, repeat), None))
    encoded_key = encode_value(KEY)
    rows.append(("route an encoded key (node_for_encoded)",
                 best_us(lambda: mapping.node_for_encoded(cid, encoded_key), number, repeat), None))
    return rows


def _mapping() -> affinity.AffinityMapping:
    nodes = [uuid.UUID(int=i + 1) for i in range(3)]
    table = tuple(nodes[p % 3] for p in range(1024))
    cache = affinity.CacheMapping(cache_id(CACHE), True, {}, table, True)
    return affinity.AffinityMapping((1, 0), {cache.cache_id: cache})


def render(rows: list[tuple[str, float, float | None]], number: int, repeat: int) -> str:
    lines = [
        "| message | ours µs | pyignite µs | speed-up |",
        "|---|---:|---:|---:|",
    ]
    for name, ours, theirs in rows:
        if theirs is None:
            lines.append(f"| {name} | {ours:.2f} | n/a | |")
        else:
            lines.append(f"| {name} | {ours:.2f} | {theirs:.2f} | {theirs / ours:.1f}x |")
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    cutils = "with" if _has_cutils() else "without"
    header = (
        f"Codec micro-benchmark, {stamp}: Python {platform.python_version()} on "
        f"{platform.machine()}, pyignite 0.6.1 {cutils} its C extension; best of {repeat} "
        f"rounds of {number} calls (objects: {max(number // 4, 1)}). In-process, no I/O.\n"
    )
    return header + "\n" + "\n".join(lines) + "\n"


def _has_cutils() -> bool:
    try:
        import pyignite._cutils  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    parser.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS}")
    args = parser.parse_args()
    number, repeat = (2_000, 3) if args.quick else (20_000, 5)
    text = render(measure(number, repeat), number, repeat)
    print(text)
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

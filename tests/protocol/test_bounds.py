"""The codec's bounds: nesting depth, decimal digits, and request builders that refuse bad
arguments with LocalProtocolError only (see protocol/limits.py and issue 10)."""

from __future__ import annotations

import decimal
import struct
import subprocess
import sys
import textwrap
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import affinity, cacheconfig, cluster, ipc, ops, queries, tx
from protocol.binary import TypeCode, decode_value, encode_value, metadata, standard
from protocol.binary.codec import DEFAULT_MAX_DEPTH
from protocol.binary.values import (
    COLLECTION_KINDS,
    BinaryObject,
    Collection,
    CollectionKind,
    Map,
    ObjectArray,
    Typed,
)
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.limits import MAX_DECIMAL_DIGITS, MAX_DECIMAL_MAGNITUDE_BYTES, MAX_NESTING

ROOT = Path(__file__).resolve().parents[2]


# -- nesting: frames built by hand, so unpacking is tested whatever packing allows -------------


def plain_frame(levels: int) -> bytes:
    """``levels`` one-element msgpack arrays around the int 1."""
    return b"\x91" * levels + b"\x01"


def ext_frame(levels: int) -> bytes:
    """``levels`` COLLECTION ext values, each ``[1, [inner]]``, around the int 1."""
    data = b"\x01"
    for _ in range(levels):
        data = msgpack.packb(msgpack.ExtType(ipc.ExtCode.COLLECTION, b"\x92\x01\x91" + data))
    return data


def mixed_frame(levels: int) -> bytes:
    """Plain arrays and COLLECTION ext values taking turns, ``levels`` in all."""
    data = b"\x01"
    for level in range(levels):
        if level % 2:
            data = b"\x91" + data
        else:
            data = msgpack.packb(msgpack.ExtType(ipc.ExtCode.COLLECTION, b"\x92\x01\x91" + data))
    return data


def nested(levels: int, wrap) -> object:  # type: ignore[no-untyped-def]
    value: object = 1
    for _ in range(levels):
        value = wrap(value)
    return value


FRAMES = [plain_frame, ext_frame, mixed_frame]
WRAPPERS = {
    "list": lambda v: [v],
    "tuple": lambda v: (v,),
    "dict": lambda v: {"k": v},
    "collection": lambda v: Collection(1, [v]),
    "map": lambda v: Map(1, [("k", v)]),
    "map key": lambda v: Map(1, [(v, 1)]),
    "object": lambda v: BinaryObject(1, {"f": v}, "T"),
    "object array": lambda v: ObjectArray(-1, [v]),
    "typed": lambda v: Typed(24, v),
}


def test_one_limit_for_every_codec() -> None:
    assert ipc.MAX_NESTING == MAX_NESTING == DEFAULT_MAX_DEPTH == 32


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f.__name__)
def test_unpack_takes_the_limit_and_refuses_one_more(frame) -> None:  # type: ignore[no-untyped-def]
    assert ipc.unpack(frame(MAX_NESTING)) is not None
    with pytest.raises(ipc.NestingTooDeep, match=f"deeper than {MAX_NESTING} levels"):
        ipc.unpack(frame(MAX_NESTING + 1))


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f.__name__)
def test_a_request_argument_gets_the_limit_less_the_envelope(frame) -> None:  # type: ignore[no-untyped-def]
    def request(levels: int) -> bytes:
        head = msgpack.packb([1, 7, "cache_put", 0, {"cache": "c", "key": 1, "value": None}])
        return head[:-1] + frame(levels)  # the value replaces the trailing nil

    req = ipc.unpack_request(request(MAX_NESTING - 2))
    assert req.request_id == 7 and req.args["cache"] == "c"
    with pytest.raises(ipc.NestingTooDeep) as err:
        ipc.unpack_request(request(MAX_NESTING - 1))
    assert isinstance(err.value, ipc.IpcError)  # what the broker answers BAD_REQUEST


@pytest.mark.parametrize("frame", FRAMES, ids=lambda f: f.__name__)
def test_a_reply_payload_gets_the_limit_less_the_envelope(frame) -> None:  # type: ignore[no-untyped-def]
    def reply(levels: int) -> bytes:
        return msgpack.packb([1, 7, 0, None])[:-1] + frame(levels)

    assert ipc.unpack_reply(reply(MAX_NESTING - 1)).request_id == 7
    with pytest.raises(ipc.NestingTooDeep):
        ipc.unpack_reply(reply(MAX_NESTING))


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_pack_takes_what_unpack_takes(wrap) -> None:  # type: ignore[no-untyped-def]
    frame = ipc.pack(nested(MAX_NESTING, wrap))
    assert ipc.pack(ipc.unpack(frame)) == frame  # tuples come back as lists
    with pytest.raises(ipc.NestingTooDeep):
        ipc.pack(nested(MAX_NESTING + 1, wrap))


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_request_and_reply_builders_count_their_envelope(wrap) -> None:  # type: ignore[no-untyped-def]
    ok = nested(MAX_NESTING - 2, wrap)
    frame = ipc.pack_request(1, "cache_put", {"cache": "c", "value": ok})
    assert ipc.unpack_request(frame).args["cache"] == "c"
    with pytest.raises(ipc.NestingTooDeep):
        ipc.pack_request(1, "cache_put", {"cache": "c", "value": [ok]})
    ok = nested(MAX_NESTING - 1, wrap)
    assert ipc.unpack_reply(ipc.pack_reply(1, 0, ok)).request_id == 1
    with pytest.raises(ipc.NestingTooDeep):
        ipc.pack_reply(1, 0, [ok])


def self_referencing() -> dict[str, object]:
    values: dict[str, object] = {}
    a: list[object] = []
    a.append(a)
    values["list"] = a
    d: dict[str, object] = {}
    d["self"] = d
    values["dict"] = d
    c = Collection(1, [])
    c.items.append(c)
    values["collection"] = c
    m = Map(1, [])
    m.items.append((1, m))
    values["map"] = m
    o = BinaryObject(1, {}, "T")
    o.fields["self"] = o
    values["object"] = o
    arr = ObjectArray(-1, [])
    arr.items.append(Typed(23, arr))
    values["typed object array"] = arr
    return values


@pytest.mark.parametrize("value", self_referencing().values(), ids=self_referencing().keys())
def test_a_value_that_contains_itself_is_refused_not_followed(value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ipc.NestingTooDeep):
        ipc.pack(value)
    with pytest.raises(ipc.NestingTooDeep):
        ipc.pack_reply(1, 0, value)
    with pytest.raises(ipc.NestingTooDeep):
        ipc.pack_request(1, "cache_put", {"value": value})


def test_a_deep_key_is_bounded_while_packing_too() -> None:
    """pack_request checks argument values only; its keys are bounded by the ext default."""
    key = nested(10_000, lambda v: Collection(1, [v]))
    with pytest.raises(ipc.NestingTooDeep):
        ipc.pack_request(1, "x", {key: 1})  # type: ignore[dict-item]


def test_a_deep_version_field_is_named_briefly() -> None:
    frame = b"\x95" + b"\x91" * 1000 + b"\x01" + msgpack.packb([5, "op", 0, {}])[1:]
    with pytest.raises(ipc.UnsupportedVersion, match="IPC version <list> is not supported"):
        ipc.unpack_request(frame)


def test_nesting_is_counted_per_call_across_threads() -> None:
    """No shared counter: threads unpacking at and over the limit do not disturb each other."""
    ok, over = ext_frame(MAX_NESTING), mixed_frame(MAX_NESTING + 1)

    def work(i: int) -> bool:
        if i % 2:
            return ipc.unpack(ok) is not None
        try:
            ipc.unpack(over)
        except ipc.NestingTooDeep:
            return True
        return False

    with ThreadPoolExecutor(8) as pool:
        assert all(pool.map(work, range(2000)))


def test_the_binary_codec_has_the_same_limit() -> None:
    value = nested(MAX_NESTING, lambda v: Collection(1, [v]))
    data = encode_value(value)
    assert decode_value(data) == value
    with pytest.raises(LocalProtocolError, match="nested deeper"):
        encode_value(Collection(1, [value]))
    deeper = b"\x18\x01\x00\x00\x00\x01" + data  # one more COLLECTION of one element
    with pytest.raises(RemoteProtocolError, match="nested deeper"):
        decode_value(deeper)


DEEP_SCRIPT = textwrap.dedent("""
    import sys, threading
    import msgpack
    from protocol import affinity, cacheconfig, cluster, ipc, ops, queries, tx
    from protocol.binary import encode_value, decode_value
    from protocol.binary.values import Collection
    from protocol.errors import ProtocolError

    LEVELS = int(sys.argv[1])

    def ext_frame(levels):
        data = b"\\x01"
        for _ in range(levels):
            data = msgpack.packb(msgpack.ExtType(9, b"\\x92\\x01\\x91" + data))
        return data

    def deep_value(levels):
        value = 1
        for _ in range(levels):
            value = Collection(1, [value])
        return value

    def expect(error, call, *args):
        try:
            call(*args)
        except error:
            return
        raise SystemExit(f"{call.__name__} did not raise {error.__name__}")

    def run():
        frame = ext_frame(LEVELS)
        envelope = msgpack.packb([1, 1, "cache_get", 0, {"key": None}])[:-1]
        expect(ipc.NestingTooDeep, ipc.unpack, frame)
        expect(ipc.NestingTooDeep, ipc.unpack_request, envelope + frame)
        expect(ipc.NestingTooDeep, ipc.unpack_reply, msgpack.packb([1, 1, 0, None])[:-1] + frame)
        expect(ipc.NestingTooDeep, ipc.unpack, b"\\x91" * (LEVELS * 10) + b"\\x01")
        value = deep_value(LEVELS)
        expect(ipc.NestingTooDeep, ipc.pack, value)
        expect(ipc.NestingTooDeep, ipc.pack_request, 1, "cache_put", {"value": value})
        expect(ipc.NestingTooDeep, ipc.pack_reply, 1, 0, value)
        expect(ProtocolError, encode_value, value)
        expect(ProtocolError, decode_value, b"\\x18\\x01\\x00\\x00\\x00\\x01" * LEVELS + b"\\x65")
        print("survived", threading.current_thread().name)

    run()
    threading.stack_size(256 * 1024)  # a small thread stack, as some worker threads have
    thread = threading.Thread(target=run, name="small-stack")
    thread.start()
    thread.join()
""")


def test_ten_thousand_levels_never_crash_the_process() -> None:
    """In a subprocess, so that a segfault fails this test instead of killing pytest."""
    result = subprocess.run(
        [sys.executable, "-c", DEEP_SCRIPT, "10000"], cwd=ROOT, capture_output=True, text=True,
        timeout=120, check=False,
    )
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr[-2000:])
    assert result.stdout.split() == ["survived", "MainThread", "survived", "small-stack"]


def test_the_subprocess_check_would_see_a_crash() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"],
        capture_output=True, timeout=60, check=False,
    )
    assert result.returncode != 0


# -- decimals ------------------------------------------------------------------------------------


def digits(n: int, first: str = "9") -> str:
    return first + "".join(str((i * 7 + 3) % 10) for i in range(n - 1))


@pytest.mark.parametrize("text", [
    digits(MAX_DECIMAL_DIGITS),
    "-" + digits(MAX_DECIMAL_DIGITS) + "E-7",
    digits(MAX_DECIMAL_DIGITS, "1") + "E+2147483648",  # scale -2**31
    "-0." + digits(MAX_DECIMAL_DIGITS - 1, "0"),
    "9" * MAX_DECIMAL_DIGITS,
])
def test_a_decimal_at_the_bound_round_trips(text: str) -> None:
    value = decimal.Decimal(text)
    assert decode_value(encode_value(value)) == value
    assert ipc.unpack(ipc.pack(value)) == value
    assert ipc.unpack(ipc.pack(value)).as_tuple() == value.as_tuple()


@pytest.mark.parametrize("value", [
    decimal.Decimal(digits(MAX_DECIMAL_DIGITS + 1)),
    decimal.Decimal("-" + digits(MAX_DECIMAL_DIGITS + 1) + "E-3"),
    decimal.Decimal(digits(1_000_000)),  # issue 10 item 5: froze the loop for 31 s
    10**MAX_DECIMAL_DIGITS,
    -(10**MAX_DECIMAL_DIGITS),
])
def test_a_decimal_over_the_bound_is_refused_when_encoding(value: object) -> None:
    with pytest.raises(LocalProtocolError, match=f"at most {MAX_DECIMAL_DIGITS} digits"):
        encode_value(value, TypeCode.DECIMAL)
    with pytest.raises(LocalProtocolError):
        encode_value([value], TypeCode.DECIMAL_ARRAY)


def test_an_int_at_the_bound_is_a_decimal_of_scale_zero() -> None:
    for value in (10**MAX_DECIMAL_DIGITS - 1, -(10**MAX_DECIMAL_DIGITS - 1), 0, -5):
        assert decode_value(encode_value(value, TypeCode.DECIMAL)) == decimal.Decimal(value)


@pytest.mark.parametrize("text", ["1E+2147483649", "1E-2147483648", "NaN", "-Infinity", "sNaN"])
def test_a_decimal_java_cannot_hold_is_refused(text: str) -> None:
    with pytest.raises(LocalProtocolError):
        encode_value(decimal.Decimal(text))


def decimal_wire(scale: int, magnitude: bytes) -> bytes:
    return b"\x1e" + struct.pack("<ii", scale, len(magnitude)) + magnitude


def test_a_node_decimal_over_the_bound_is_refused_before_conversion() -> None:
    limit = MAX_DECIMAL_MAGNITUDE_BYTES
    top = decimal_wire(3, (10**MAX_DECIMAL_DIGITS - 1).to_bytes(limit, "big"))
    assert decode_value(top) == decimal.Decimal("9" * MAX_DECIMAL_DIGITS + "E-3")
    too_many_digits = decimal_wire(0, b"\x7f" + b"\xff" * (limit - 1))  # ~10**4096.1
    too_many_bytes = decimal_wire(0, b"\x01" * (limit + 1))
    huge = decimal_wire(0, b"\x01" * 1_000_000)
    for data in (too_many_digits, too_many_bytes, huge):
        with pytest.raises(RemoteProtocolError, match=f"{MAX_DECIMAL_DIGITS} digits"):
            decode_value(data)
    array = b"\x1f" + struct.pack("<i", 2) + top + huge  # Decimal[]: the same reader
    with pytest.raises(RemoteProtocolError):
        decode_value(array)


def test_the_ipc_decimal_text_is_bounded_before_parsing() -> None:
    at_bound = decimal.Decimal("-" + digits(MAX_DECIMAL_DIGITS) + "E-2147483648")
    assert ipc.unpack(ipc.pack(at_bound)) == at_bound
    over = msgpack.packb(msgpack.ExtType(ipc.ExtCode.DECIMAL, b"1" * (MAX_DECIMAL_DIGITS + 25)))
    with pytest.raises(ipc.IpcError, match="digits"):
        ipc.unpack(over)
    with pytest.raises(ipc.IpcError, match="digits"):
        ipc.pack(decimal.Decimal(digits(MAX_DECIMAL_DIGITS + 30)))


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**MAX_DECIMAL_DIGITS - 1))
def test_the_fast_conversions_are_exact(value: int) -> None:
    assert standard._digits_to_int(str(value).encode()) == value  # 4096 < CPython's 4300
    assert standard._int_to_decimal(value) == decimal.Decimal(value)
    assert standard._int_to_decimal(value).as_tuple().exponent == 0


@pytest.mark.parametrize("n", [1, 511, 512, 513, 1000, 2047, 2048, 2049, 4095, 4096])
def test_the_fast_conversions_are_exact_at_their_seams(n: int) -> None:
    text = digits(n)
    value = decimal.Decimal(text)
    assert standard._digits_to_int(text.encode()) == int(value)
    assert standard._int_to_decimal(int(value)) == value


# -- request builders: LocalProtocolError or bytes, nothing else ----------------------------------

V170 = (1, 7, 0)
ALL_FEATURES = frozenset(range(20))
NODE = uuid.UUID("8f1c2a3b-4d5e-4f60-8172-93a4b5c6d7e8")


def deep_list(levels: int) -> list[object]:
    outer: list[object] = []
    inner = outer
    for _ in range(levels):
        nxt: list[object] = []
        inner.append(nxt)
        inner = nxt
    return outer


def self_containing() -> Collection:
    c = Collection(1, [])
    c.items.append(c)
    return c


HOSTILE: dict[str, object] = {
    "None": None,
    "-1": -1,
    "0": 0,
    "2**31": 2**31,
    "2**63": 2**63,
    "-2**63-1": -(2**63) - 1,
    "''": "",
    "list": [1, "a"],
    "dict": {"a": 1},
    "float": 1.5,
    "nan": float("nan"),
    "bytes": b"\x00\xff",
    "True": True,
    "deep list": deep_list(5000),
    "deep collection": nested(5000, lambda v: Collection(1, [v])),
    "self-containing": self_containing(),
    "kind 127": Collection(127, [1]),
    "map kind 99": Map(99, [(1, 2)]),
    "typed 77": Typed(77, 1),
    "typed int overflow": Typed(3, 2**40),
    "typed list code": Typed([3], 1),  # type: ignore[arg-type]
    "object": object(),
    "huge decimal": decimal.Decimal("9" * 10_000),
}

# builder -> the arguments of one valid call (positional names follow the signature)
BUILDERS: dict[str, tuple[object, dict[str, object]]] = {}


def builder(qualname: str, /, **kwargs: object) -> None:
    module, func = qualname.rsplit(".", 1)
    BUILDERS[qualname] = (getattr(MODULES[module], func), kwargs)


MODULES = {"ops": ops, "queries": queries, "tx": tx, "cluster": cluster,
           "cacheconfig": cacheconfig, "metadata": metadata, "affinity": affinity}
KV = {"cache_id": 5, "key": "k", "flags": 0, "tx_id": 1, "expiry": (-2, -1, 0), "ctx": None}
for _name in ("get_and_remove", "contains_key", "clear_key", "remove_key", "get"):
    builder(f"ops.cache_{_name}", **KV)
for _name in ("put", "put_if_absent", "get_and_put", "get_and_replace", "get_and_put_if_absent",
              "replace"):
    builder(f"ops.cache_{_name}", **KV, value="v", value_hint=None, key_hint=None)
builder("ops.cache_replace_if_equals", **KV, expected="e", value="v")
builder("ops.cache_remove_if_equals", **KV, expected="e")
builder("ops.cache_local_peek", **KV, peek_modes=[0, 2])
for _name in ("get_all", "contains_keys", "clear_keys", "remove_keys"):
    builder(f"ops.cache_{_name}", cache_id=5, keys=["a", 1], key_hint=None, flags=0, tx_id=None,
            expiry=None)
builder("ops.cache_put_all", cache_id=5, pairs=[("a", 1)], key_hint=None, value_hint=None,
        flags=0, tx_id=None, expiry=(1, 2, 3))
builder("ops.cache_clear", cache_id=5, flags=0, tx_id=None, expiry=None)
builder("ops.cache_remove_all", cache_id=5, flags=0, tx_id=None, expiry=None)
builder("ops.cache_get_size", cache_id=5, peek_modes=[0], flags=0, tx_id=None, expiry=None)
builder("ops.cache_create_with_name", name="c")
builder("ops.cache_get_or_create_with_name", name="c")
builder("ops.cache_get_configuration", cache_id=5, flags=0)
builder("ops.cache_destroy", cache_id=5)
builder("ops.cache_create_with_configuration", config={0: "c", 1: 2}, version=V170, ctx=None)
builder("ops.cache_get_or_create_with_configuration", config={0: "c"}, version=V170, ctx=None)
builder("queries.sql_fields", cache_id=5, query="select 1", schema="PUBLIC", page_size=10,
        max_rows=-1, args=[1, "a"], statement_type=0, distributed_joins=False, local=False,
        replicated_only=False, enforce_join_order=False, collocated=False, lazy=False,
        timeout=0, include_field_names=True, partitions=[1, 2], update_batch_size=1, tx_id=1,
        features=ALL_FEATURES, flags=0, ctx=None)
builder("queries.scan", cache_id=5, page_size=10, partition=-1, local=False, flags=0, tx_id=1,
        features=ALL_FEATURES)
builder("queries.sql", cache_id=5, table_name="T", query="x = ?", args=[1],
        distributed_joins=False, local=False, replicated_only=False, page_size=10, timeout=0,
        flags=0, ctx=None)
builder("queries.continuous_query", cache_id=5, page_size=1, time_interval=0,
        include_expired=False, flags=0)
for _name in ("resource_close", "sql_fields_page", "scan_page", "sql_page"):
    builder(f"queries.{_name}", **{"resource_id" if _name == "resource_close" else "cursor_id": 7})
builder("tx.tx_start", concurrency=1, isolation=2, timeout=0, label="l")
builder("tx.tx_end", tx_id=1, committed=True)
builder("cluster.cluster_change_state", state=1, force=True, features=ALL_FEATURES)
builder("cluster.cluster_change_wal_state", cache_name="c", enable=True)
builder("cluster.cluster_get_wal_state", cache_name="c")
builder("cluster.cluster_group_get_node_ids", top_version=-1,
        filters=[cluster.NodeTypeFilter(True), cluster.AttributeFilter("a", 1)], ctx=None)
builder("cluster.cluster_group_get_node_info", node_ids=[NODE])
builder("cluster.cluster_group_get_node_endpoints", start_top_version=-1, end_top_version=-1)
builder("metadata.binary_type_get", type_id=5)
builder("metadata.binary_type_put", bt=metadata.object_type("T", [("a", 3)]))
builder("metadata.binary_type_name_get", type_id=5, platform=0)
builder("metadata.binary_type_name_put", type_id=5, name="T", platform=0)
builder("affinity.cache_partitions", cache_ids=[1, 2], features=ALL_FEATURES,
        custom_mappings=False)

HOSTILE_CALLS = [
    pytest.param(name, param, bad, id=f"{name}:{param}={label}")
    for name, (_, kwargs) in BUILDERS.items()
    for param in kwargs
    for label, bad in HOSTILE.items()
]


def call(func, kwargs: dict[str, object]) -> object:  # type: ignore[no-untyped-def]
    return func(**kwargs)  # every builder parameter can be given by name


@pytest.mark.parametrize("name", BUILDERS)
def test_every_builder_accepts_its_valid_call(name: str) -> None:
    func, kwargs = BUILDERS[name]
    assert isinstance(call(func, kwargs), bytes)


@pytest.mark.parametrize(("name", "param", "bad"), HOSTILE_CALLS)
def test_builders_raise_only_local_protocol_error(name: str, param: str, bad: object) -> None:
    func, kwargs = BUILDERS[name]
    try:
        body = call(func, {**kwargs, param: bad})
    except LocalProtocolError as exc:
        assert str(exc)
        return
    assert isinstance(body, bytes)


# Values of the right type that a node cannot take: each closes its connection, or would
# be refused by it anyway (issue 10 item 4). name -> (builder, the bad argument).
REFUSED: dict[str, tuple[str, dict[str, object]]] = {
    "sql page size 0": ("queries.sql_fields", {"page_size": 0}),
    "sql page size -1": ("queries.sql_fields", {"page_size": -1}),
    "sql timeout -1": ("queries.sql_fields", {"timeout": -1}),
    "sql timeout over int": ("queries.sql_fields", {"timeout": 2**31}),
    "statement type 3": ("queries.sql_fields", {"statement_type": 3}),
    "partition 65000": ("queries.sql_fields", {"partitions": [65_000]}),
    "negative partition": ("queries.sql_fields", {"partitions": [-1]}),
    "duplicate partitions": ("queries.sql_fields", {"partitions": [1, 1]}),
    "update batch size 0": ("queries.sql_fields", {"update_batch_size": 0}),
    "int flag": ("queries.sql_fields", {"lazy": 1}),
    "scan page size 0": ("queries.scan", {"page_size": 0}),
    "scan partition -2": ("queries.scan", {"partition": -2}),
    "old sql page size 0": ("queries.sql", {"page_size": 0}),
    "old sql timeout -5": ("queries.sql", {"timeout": -5}),
    "continuous page size 0": ("queries.continuous_query", {"page_size": 0}),
    "continuous interval -1": ("queries.continuous_query", {"time_interval": -1}),
    "unknown prefix flag": ("queries.scan", {"flags": 8}),
    "expiry -5": ("ops.cache_put", {"expiry": (-5, -5, -5)}),
    "expiry -3": ("ops.cache_get", {"expiry": (1, -3, 1)}),
    "expiry of two": ("ops.cache_get", {"expiry": (1, 1)}),
    "expiry flag by hand": ("ops.cache_get", {"expiry": None, "flags": 4}),
    "config flags with expiry": ("ops.cache_get_configuration", {"flags": 4}),
    "peek mode 6": ("ops.cache_get_size", {"peek_modes": [6]}),
    "collection kind 127": ("ops.cache_put", {"value": Collection(127, [1])}),
    "collection kind -2": ("ops.cache_put", {"value": Collection(-2, [1])}),
    "map kind 0": ("ops.cache_put", {"value": Map(0, [(1, 2)])}),
    "map kind 3": ("ops.cache_put", {"value": Map(3, [(1, 2)])}),
    "typed 77": ("ops.cache_put", {"value": Typed(77, 1)}),
    "typed class": ("ops.cache_put", {"value": Typed(TypeCode.CLASS, "java.lang.String")}),
    "int overflow": ("ops.cache_put", {"value": Typed(TypeCode.INT, 2**31)}),
    "long overflow": ("ops.cache_put", {"key": 2**63}),
    "tx concurrency 2": ("tx.tx_start", {"concurrency": 2}),
    "tx isolation 3": ("tx.tx_start", {"isolation": 3}),
    "tx timeout -1": ("tx.tx_start", {"timeout": -1}),
    "cluster state 3": ("cluster.cluster_change_state", {"state": 3}),
    "platform 2": ("metadata.binary_type_name_get", {"platform": 2}),
    "cache mode 3": ("ops.cache_create_with_configuration", {"config": {0: "c", 1: 3}}),
    "atomicity 2": ("ops.cache_create_with_configuration", {"config": {0: "c", 2: 2}}),
    "loss policy 5": ("ops.cache_create_with_configuration", {"config": {0: "c", 404: 5}}),
    "key configs 5": ("ops.cache_create_with_configuration", {"config": {0: "x", 401: 5}}),
    "config expiry -5": ("ops.cache_create_with_configuration",
                         {"config": {0: "c", 407: cacheconfig.ExpiryPolicy(-5, -5, -5)}}),
    "index type 3": ("ops.cache_create_with_configuration", {"config": {0: "c", 200: [
        cacheconfig.QueryEntity("K", "V", query_indexes=(cacheconfig.QueryIndex("i", 3),))]}}),
    "property code str": ("ops.cache_create_with_configuration", {"config": {0: "c", "1": 2}}),
    "property code 999": ("ops.cache_create_with_configuration", {"config": {0: "c", 999: 2}}),
}


@pytest.mark.parametrize("name", REFUSED)
def test_values_a_node_cannot_take_are_refused(name: str) -> None:
    qualname, bad = REFUSED[name]
    func, kwargs = BUILDERS[qualname]
    with pytest.raises(LocalProtocolError):
        call(func, {**kwargs, **bad})


def test_the_error_names_the_field() -> None:
    func, kwargs = BUILDERS["queries.sql_fields"]
    with pytest.raises(LocalProtocolError, match="page size"):
        call(func, {**kwargs, "page_size": 0})
    with pytest.raises(LocalProtocolError, match="create TTL"):
        ops.cache_put(1, "k", "v", expiry=(-5, -1, -1))
    with pytest.raises(LocalProtocolError, match="CACHE_KEY_CONFIGURATION"):
        ops.cache_create_with_configuration({0: "x", 401: 5}, version=V170)
    with pytest.raises(LocalProtocolError, match="collection kind"):
        encode_value(Collection(127, []))


def test_a_singleton_list_of_more_than_one_item_is_refused() -> None:
    """Was (1,000,000-input fuzz run): a node read it into a one-element list, failed to parse
    the request ("Element already added to singleton list") and closed the connection."""
    singleton = CollectionKind.SINGLETON_LIST
    with pytest.raises(LocalProtocolError, match="SINGLETON_LIST"):
        encode_value(Collection(singleton, [1, 2]))
    for items in ([], [1]):
        assert decode_value(encode_value(Collection(singleton, items))) == \
            Collection(singleton, items)


@pytest.mark.parametrize("ttl", [-2, -1, 0, 1, 2**63 - 1])
def test_every_ttl_a_node_takes_is_accepted(ttl: int) -> None:
    body = ops.cache_put(1, "k", "v", expiry=(ttl, ttl, ttl))
    assert body[5:29] == struct.pack("<qqq", ttl, ttl, ttl)


@pytest.mark.parametrize("kind", sorted(COLLECTION_KINDS))
def test_every_collection_kind_is_accepted(kind: int) -> None:
    assert decode_value(encode_value(Collection(kind, [1]))) == Collection(kind, [1])


def test_a_refused_message_leaves_no_reference_cycle_behind() -> None:
    """Was: a NestingTooDeep raised from the ext hook was raised again as its own cause: a
    cycle holding its traceback's frames (payloads, Unpackers and their buffers) until the
    cyclic collector ran, which a quiet broker may not do for a long time (fuzz run: 8 MB
    held after the run, freed by gc.collect())."""
    import gc

    frame = b"\x01"
    for _ in range(MAX_NESTING + 8):
        frame = msgpack.packb(msgpack.ExtType(9, b"\x92\x01\x91" + frame + b"\x00" * 1000))
    envelope = msgpack.packb([1, 1, "cache_get", 0, {"key": None}])[:-1]
    bad_ext = msgpack.packb(msgpack.ExtType(9, b"\xc1"))  # malformed payload: a ValueError
    cases = [(ipc.unpack_request, envelope + frame), (ipc.unpack, frame),
             (ipc.unpack_reply, msgpack.packb([1, 1, 0, None])[:-1] + frame),
             (ipc.unpack_request, envelope + bad_ext), (ipc.unpack, b"\xc1")]
    gc.collect()
    gc.disable()
    try:
        for call, data in cases:
            with pytest.raises(ipc.IpcError):
                call(data)
        assert gc.collect() == 0  # nothing unreachable: all of it was freed by refcount
    finally:
        gc.enable()

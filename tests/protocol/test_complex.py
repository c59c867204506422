"""Complex objects (103): hashing and ids, hand-assembled layouts (compact/full footers, 1/2/4-byte
offsets, raw data, unregistered types, handles, wrapped arrays), the writer's rules (field
types from the registry, pending metadata, footers, hash code), UnknownSchema and the
registry, property tests, and the objects captured from a real node (written by us, by
pyignite and by the node's SQL engine)."""

from __future__ import annotations

import contextlib
import hashlib
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.binary import TypeCode, decode_value, encode_value, read_value
from protocol.binary.complex import new_object
from protocol.binary.metadata import object_type, parse_binary_type_get
from protocol.binary.registry import BinaryType, CodecContext, Registry
from protocol.binary.values import BinaryObject, Collection, EnumValue, ObjectArray, Typed
from protocol.errors import LocalProtocolError, ProtocolError, RemoteProtocolError, UnknownSchema
from protocol.hashing import field_id, java_lower, java_string_hash, object_hash, schema_id, type_id
from tests.protocol.type_vectors import (
    context_for,
    deep_same,
    load_type_vector_files,
    tj,
    tj_to_python,
    tj_to_typed,
)

T = TypeCode


# -- references, written out independently of protocol/ ----------------------------------------


def ref_object_hash(data: bytes) -> int:
    h = 1
    for b in data:
        h = (31 * h + (b - 256 if b > 127 else b)) & 0xFFFFFFFF
    return h - 2**32 if h >= 2**31 else h


def ref_schema_id(ids: list[int]) -> int:
    if not ids:
        return 0
    s = 0x811C9DC5
    for fid in ids:
        for b in struct.pack("<i", fid):
            s = ((s ^ b) * 0x01000193) % 2**32
    return s - 2**32 if s >= 2**31 else s


def i32(v: int) -> bytes:
    return struct.pack("<i", v)


def string(s: str) -> bytes:
    data = s.encode()
    return b"\x09" + i32(len(data)) + data


def make_object(type_id_: int, fields: list[tuple[int, bytes]], *, compact: bool,
                width: int | None = None, raw: bytes = b"", class_name: str | None = None,
                schema: int | None = None) -> bytes:
    """A complex object assembled with struct, the way Java's writer lays it out."""
    prefix = string(class_name) if class_name else b""
    body = b""
    offsets = []
    for _, value in fields:
        offsets.append(24 + len(prefix) + len(body))
        body += value
    raw_off = 24 + len(prefix) + len(body)
    body += raw
    n = len(fields)
    if width is None:
        last = offsets[-1] if n else 0
        width = 1 if last < 256 else 2 if last < 65536 else 4
    fmt = {1: "<B", 2: "<H", 4: "<I"}[width]
    footer = b"".join((b"" if compact else i32(fid)) + struct.pack(fmt, off)
                      for (fid, _), off in zip(fields, offsets, strict=True))
    flags = 0x01 | (0x20 if compact else 0)
    if n:
        flags |= 0x02 | {1: 0x08, 2: 0x10, 4: 0}[width]
    if raw:
        flags |= 0x04
    schema_off = 24 + len(prefix) + len(body) if n else (raw_off if raw else 0)
    tail = i32(raw_off) if raw and n else b""
    length = 24 + len(prefix) + len(body) + len(footer) + len(tail)
    sid = schema if schema is not None else ref_schema_id([fid for fid, _ in fields])
    header = struct.pack("<bbhiiiii", 103, 1, flags, 0 if class_name else type_id_,
                         ref_object_hash(body), length, sid, schema_off)
    return header + prefix + body + footer + tail


POINT = object_type("test.Point", [("x", T.INT), ("y", T.INT)])
POINT_SID = next(iter(POINT.schemas))
X, Y = field_id("x"), field_id("y")


def registry_with(*types: BinaryType) -> Registry:
    registry = Registry()
    for bt in types:
        registry.add(bt)
    return registry


def ctx_with(*types: BinaryType, compact: bool = True) -> CodecContext:
    return CodecContext(registry_with(*types), compact_footer=compact)


def point_bytes(compact: bool = True, x: int = 1, y: int = 2) -> bytes:
    return make_object(POINT.type_id, [(X, b"\x03" + i32(x)), (Y, b"\x03" + i32(y))],
                       compact=compact)


# -- ids and hashes ---------------------------------------------------------------------------


def test_type_and_field_ids_lower_case_each_unit() -> None:
    assert type_id("Person") == java_string_hash("person")
    assert field_id("firstName") == java_string_hash("firstname")
    assert field_id("İd") == java_string_hash("id")  # Java's simple mapping, not 'i̇'
    deseret = "\U00010400"  # astral capital: Java lower-cases neither surrogate
    assert java_lower(deseret) == deseret
    assert field_id(deseret) == java_string_hash(deseret)
    assert java_lower("ÀΣ") == "àσ"  # no final-sigma context: one unit at a time


def test_schema_id_is_fnv1a_over_field_ids() -> None:
    assert schema_id([]) == 0
    for ids in ([1], [X, Y], [Y, X], [-1, 2**31 - 1, -(2**31)]):
        assert schema_id(ids) == ref_schema_id(ids)
    assert schema_id([X, Y]) != schema_id([Y, X])


@given(st.binary(max_size=3000))
def test_object_hash_matches_the_byte_loop(data: bytes) -> None:
    assert object_hash(data) == ref_object_hash(data)
    assert object_hash(memoryview(b"xx" + data)[2:]) == ref_object_hash(data)


def test_ids_and_hashes_agree_with_the_node() -> None:
    """Every type id, field id and schema id the node reported, and the header hash of every
    object it built itself, recomputed here."""
    checked = 0
    for _, doc in load_type_vector_files():
        for body in doc["metadata"].values():
            bt = parse_binary_type_get(bytes.fromhex(body))
            assert bt is not None
            if not bt.type_name.startswith("types.Unregistered"):
                assert type_id(bt.type_name) == bt.type_id
            for name, _, fid in bt.fields:
                assert field_id(name) == fid
            for sid, ids in bt.schemas.items():
                assert schema_id(ids) == sid
            checked += 1
        for case in doc["cases"]:
            if case["group"] == "sql":
                data = bytes.fromhex(case["hex"])
                obj = data[5:-4] if data[0] == T.WRAPPED_BINARY else data
                _, _, flags, _, hash_code, _, _, schema_off = struct.unpack_from(
                    "<bbhiiiii", obj)
                assert flags & 0x02
                assert object_hash(obj[24:schema_off]) == hash_code
                checked += 1
    assert checked >= 10


# -- hand-assembled layouts -------------------------------------------------------------------


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "full"])
def test_point(compact: bool) -> None:
    data = point_bytes(compact)
    obj = decode_value(data, ctx=ctx_with(POINT))
    assert obj == BinaryObject(POINT.type_id, {"x": 1, "y": 2}, "test.Point", POINT_SID,
                               ref_object_hash(data[24:34]))
    ctx = ctx_with(POINT, compact=compact)
    assert encode_value(BinaryObject(POINT.type_id, {"x": 1, "y": 2}), ctx=ctx) == data
    assert ctx.take_pending() == []


@pytest.mark.parametrize(("size", "width"), [(255 - 24 - 5, 1), (256 - 24 - 5, 2),
                                              (65535 - 24 - 5, 2), (65536 - 24 - 5, 4)])
@pytest.mark.parametrize("compact", [True, False], ids=["compact", "full"])
def test_offset_width_follows_the_last_field(size: int, width: int, compact: bool) -> None:
    bt = object_type("test.Wide", [("pad", T.BYTE_ARRAY), ("last", T.BYTE)])
    pad = b"\x0c" + i32(size) + bytes(size)
    fields = [(field_id("pad"), pad), (field_id("last"), b"\x01\x07")]
    data = make_object(bt.type_id, fields, compact=compact)
    assert data[2] & 0x18 == {1: 0x08, 2: 0x10, 4: 0}[width]
    ctx = ctx_with(bt, compact=compact)
    obj = decode_value(data, ctx=ctx)
    assert obj.fields == {"pad": bytes(size), "last": 7}  # type: ignore[attr-defined]
    assert encode_value(BinaryObject(bt.type_id, {"pad": bytes(size), "last": 7}), ctx=ctx) == data


def test_wider_offsets_than_needed_are_read() -> None:
    data = make_object(POINT.type_id, [(X, b"\x03" + i32(1)), (Y, b"\x03" + i32(2))],
                       compact=False, width=4)
    assert decode_value(data, ctx=ctx_with(POINT)).fields == {"x": 1, "y": 2}  # type: ignore[attr-defined]


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "full"])
def test_raw_data_with_fields(compact: bool) -> None:
    data = make_object(POINT.type_id, [(X, b"\x03" + i32(1)), (Y, b"\x03" + i32(2))],
                       compact=compact, raw=b"\xde\xad")
    assert struct.unpack_from("<i", data, len(data) - 4)[0] == 34  # trailing raw offset
    ctx = ctx_with(POINT, compact=compact)
    obj = decode_value(data, ctx=ctx)
    assert obj.fields == {"x": 1, "y": 2} and obj.raw == b"\xde\xad"  # type: ignore[attr-defined]
    assert obj.hash_code == ref_object_hash(data[24:36])  # type: ignore[attr-defined]  # raw included
    assert encode_value(BinaryObject(POINT.type_id, {"x": 1, "y": 2}, raw=b"\xde\xad"),
                        ctx=ctx) == data


def test_raw_data_only() -> None:
    data = make_object(POINT.type_id, [], compact=True, raw=b"\x01\x02\x03")
    flags, schema_off = struct.unpack_from("<h", data, 2)[0], struct.unpack_from("<i", data, 20)[0]
    assert flags == 0x01 | 0x04 | 0x20 and schema_off == 24
    obj = decode_value(data)  # no fields: no metadata needed
    assert obj == BinaryObject(POINT.type_id, {}, None, 0, ref_object_hash(b"\x01\x02\x03"),
                               b"\x01\x02\x03")
    assert encode_value(BinaryObject(POINT.type_id, {}, raw=b"\x01\x02\x03"),
                        ctx=ctx_with(POINT)) == data


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "full"])
def test_empty_object(compact: bool) -> None:
    data = make_object(POINT.type_id, [], compact=compact)
    assert len(data) == 24 and struct.unpack_from("<iii", data, 12) == (24, 0, 0)
    assert decode_value(data) == BinaryObject(POINT.type_id, {}, None, 0, 1)
    ctx = ctx_with(POINT, compact=compact)
    assert encode_value(BinaryObject(POINT.type_id, {}), ctx=ctx) == data
    assert ctx.pending == {}


def test_pyignite_style_empty_schema_is_read() -> None:
    """pyignite sets HAS_SCHEMA (and one-byte offsets) with no fields; the node accepts it."""
    data = struct.pack("<bbhiiiii", 103, 1, 0x01 | 0x02 | 0x08 | 0x20, POINT.type_id, 1, 24, 0,
                       24)
    assert decode_value(data) == BinaryObject(POINT.type_id, {}, None, 0, 1)


def test_unregistered_type_carries_its_class_name() -> None:
    name = "test.Unregistered"
    bt = object_type(name, [("value", T.INT)])
    data = make_object(0, [(field_id("value"), b"\x03" + i32(42))], compact=False,
                       class_name=name)
    obj = decode_value(data, ctx=ctx_with(bt))
    assert obj == BinaryObject(type_id(name), {"value": 42}, name, next(iter(bt.schemas)),
                               ref_object_hash(b"\x03" + i32(42)))
    # our writer uses the registered form; the hash is the same (it skips the class name)
    again = encode_value(obj, ctx=ctx_with(bt, compact=False))
    assert struct.unpack_from("<i", again, 8) == struct.unpack_from("<i", data, 8)


def test_nested_objects_and_field_handles() -> None:
    segment = object_type("test.Segment", [("from", T.COMPLEX_OBJECT), ("to", T.COMPLEX_OBJECT)])
    point = point_bytes()
    # field "to" is a HANDLE back to field "from" (24 bytes after the object start)
    handle = b"\x66" + i32(len(point))
    data = make_object(segment.type_id, [(field_id("from"), point), (field_id("to"), handle)],
                       compact=True)
    ctx = ctx_with(POINT, segment)
    obj = decode_value(data, ctx=ctx)
    p = obj.fields["from"]  # type: ignore[attr-defined]
    assert p.fields == {"x": 1, "y": 2} and obj.fields["to"] == p  # type: ignore[attr-defined]
    # the same object inside an Object[], and wrapped (27): offsets relative to the array
    wrapped = b"\x1b" + i32(len(data)) + data + i32(0)
    assert decode_value(wrapped, ctx=ctx) == obj
    in_array = b"\x17" + i32(-1) + i32(2) + data + wrapped
    assert decode_value(in_array, ctx=ctx).items == [obj, obj]  # type: ignore[attr-defined]


def test_wrapped_root_not_at_zero() -> None:
    point = point_bytes()
    inner = string("lead") + point + b"\x66" + i32(len(point))  # a handle after the root
    wrapped = b"\x1b" + i32(len(inner)) + inner + i32(len(string("lead")))
    assert decode_value(wrapped, ctx=ctx_with(POINT)).fields == {"x": 1, "y": 2}  # type: ignore[attr-defined]


def test_handle_cycle_is_refused() -> None:
    node = object_type("test.Node", [("next", T.COMPLEX_OBJECT)])
    data = make_object(node.type_id, [(field_id("next"), b"\x66" + i32(24))], compact=True)
    with pytest.raises(RemoteProtocolError, match="cyclic"):
        decode_value(data, ctx=ctx_with(node))


# -- UnknownSchema and the registry -----------------------------------------------------------


def test_unknown_schema_then_fetch_then_decode() -> None:
    data = point_bytes()
    ctx = CodecContext(Registry())
    with pytest.raises(UnknownSchema) as info:
        decode_value(data, ctx=ctx)
    assert (info.value.type_id, info.value.schema_id) == (POINT.type_id, POINT_SID)
    ctx.registry.add(POINT)  # what the caller does with the BINARY_TYPE_GET answer
    assert decode_value(data, ctx=ctx).fields == {"x": 1, "y": 2}  # type: ignore[attr-defined]
    ctx.registry.reset()
    with pytest.raises(UnknownSchema):
        decode_value(data, ctx=ctx)


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "full"])
def test_unknown_schema_cases(compact: bool) -> None:
    data = point_bytes(compact)
    with pytest.raises(UnknownSchema, match="type id"):
        decode_value(data)  # no context at all
    other_schema = BinaryType(POINT.type_id, "test.Point", fields=[("x", 3, X)],
                              schemas={ref_schema_id([X]): [X]})
    with pytest.raises(UnknownSchema):
        decode_value(data, ctx=ctx_with(other_schema))  # compact: schema; full: field y


def test_inconsistent_metadata_is_a_remote_error() -> None:
    no_names = BinaryType(POINT.type_id, "test.Point", fields=[], schemas={POINT_SID: [X, Y]})
    with pytest.raises(RemoteProtocolError, match="lacks fields"):
        decode_value(point_bytes(), ctx=ctx_with(no_names))
    short = BinaryType(POINT.type_id, "test.Point", fields=POINT.fields, schemas={POINT_SID: [X]})
    with pytest.raises(RemoteProtocolError, match="footer 2"):
        decode_value(point_bytes(), ctx=ctx_with(short))


def test_registry_merges_and_resets() -> None:
    registry = Registry()
    registry.add(object_type("test.Point", [("x", T.INT)]))
    merged = registry.add(POINT)
    assert [f[0] for f in merged.fields] == ["x", "y"]
    assert len(merged.schemas) == 2 and registry.schema(POINT.type_id, POINT_SID) == (X, Y)
    assert POINT.type_id in registry and len(registry) == 1
    assert registry.type_ids() == [POINT.type_id]
    assert registry.get(POINT.type_id) == merged
    assert "1 types, 2 schemas" in repr(registry)
    registry.reset()
    assert len(registry) == 0 and registry.get(POINT.type_id) is None
    assert registry.schema(POINT.type_id, POINT_SID) is None


def test_context_validation() -> None:
    with pytest.raises(LocalProtocolError):
        CodecContext({})  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        CodecContext(Registry(), max_depth=0)


# -- the writer ---------------------------------------------------------------------------------


def test_registry_types_decide_field_types() -> None:
    ctx = ctx_with(POINT)
    data = encode_value(BinaryObject(POINT.type_id, {"x": 1, "y": 2}), ctx=ctx)
    assert data == point_bytes()  # ints written as INT, as registered
    loose = object_type("test.Loose", [("any", T.COMPLEX_OBJECT)])  # "Object": infer
    data = encode_value(BinaryObject(loose.type_id, {"any": 1}), ctx=ctx_with(loose))
    assert data[24] == T.LONG
    data = encode_value(BinaryObject(POINT.type_id, {"x": Typed(T.LONG, 1), "y": 2}), ctx=ctx)
    assert data[24] == T.LONG  # Typed wins over the registry
    with pytest.raises(LocalProtocolError):
        encode_value(BinaryObject(POINT.type_id, {"x": "one", "y": 2}), ctx=ctx)


def test_new_types_and_schemas_are_pending() -> None:
    ctx = CodecContext(Registry())
    obj = new_object("test.Person", {"name": "Ann", "age": Typed(T.INT, 30), "note": None,
                                     "tags": ["a"]})
    encode_value(obj, ctx=ctx)
    encode_value(obj, ctx=ctx)  # the same schema again: recorded once
    (pending,) = ctx.take_pending()
    ids = [field_id(n) for n in ("name", "age", "note", "tags")]
    assert pending == BinaryType(
        type_id("test.Person"), "test.Person",
        fields=[("name", 9, ids[0]), ("age", 3, ids[1]), ("note", 103, ids[2]),
                ("tags", 20, ids[3])],
        schemas={ref_schema_id(ids): ids},
    )
    assert ctx.take_pending() == [] and len(ctx.registry) == 0  # the caller registers
    ctx.registry.add(pending)
    encode_value(obj, ctx=ctx)
    assert ctx.pending == {}
    # a new schema of a known type: only what is new
    encode_value(new_object("test.Person", {"name": "Bo", "email": "b@x"}), ctx=ctx)
    (delta,) = ctx.take_pending()
    assert delta.fields == [("email", 9, field_id("email"))]
    assert list(delta.schemas.values()) == [[field_id("name"), field_id("email")]]


def test_writer_refusals() -> None:
    obj = BinaryObject(POINT.type_id, {"x": 1})
    with pytest.raises(LocalProtocolError, match="ctx"):
        encode_value(obj)
    with pytest.raises(LocalProtocolError, match="type_name"):
        encode_value(obj, ctx=CodecContext(Registry()))  # unknown type, no name
    with pytest.raises(LocalProtocolError, match="type id"):
        encode_value(BinaryObject(0, {}), ctx=ctx_with())
    with pytest.raises(LocalProtocolError, match="field names"):
        encode_value(BinaryObject(5, {1: 1}, "t"), ctx=ctx_with())  # type: ignore[dict-item]
    with pytest.raises(LocalProtocolError, match="raw"):
        encode_value(BinaryObject(5, {}, "t", raw="x"), ctx=ctx_with())  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="BinaryObject"):
        encode_value(5, T.COMPLEX_OBJECT, ctx=ctx_with())


def test_given_hash_code_is_ignored() -> None:
    wrong = BinaryObject(POINT.type_id, {"x": 1, "y": 2}, hash_code=12345)
    assert encode_value(wrong, ctx=ctx_with(POINT)) == point_bytes()


def test_a_failed_nested_write_leaves_the_buffer() -> None:
    from protocol.binary import write_value

    buf = bytearray(b"keep")
    bad = Collection(1, [BinaryObject(POINT.type_id, {"x": 1, "y": object()})])
    with pytest.raises(LocalProtocolError):
        write_value(buf, bad, ctx=ctx_with(POINT))
    assert buf == b"keep"


# -- malformed objects --------------------------------------------------------------------------


def _patched(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


MALFORMED = [
    ("version-2", lambda d: _patched(d, 1, "<b", 2)),
    ("length-too-short", lambda d: _patched(d, 12, "<i", 20)),
    ("length-overruns", lambda d: _patched(d, 12, "<i", len(d) + 1)),
    ("schema-offset-in-header", lambda d: _patched(d, 20, "<i", 10)),
    ("schema-offset-past-end", lambda d: _patched(d, 20, "<i", len(d) + 5)),
    ("footer-misaligned", lambda d: _patched(d, 20, "<i", 33)),
    ("field-offset-in-header", lambda d: _patched(d, len(d) - 2, "<B", 3)),
    ("field-offset-in-footer", lambda d: _patched(d, len(d) - 1, "<B", len(d) - 2)),
    ("field-overruns-footer", lambda d: _patched(d, 29, "<b", T.LONG)),
    ("unregistered-without-name", lambda d: _patched(d, 4, "<i", 0)),
    ("raw-offset-outside", lambda d: _patched(d, 2, "<h", 0x01 | 0x02 | 0x04 | 0x08 | 0x20)),
]


@pytest.mark.parametrize("mutate", [pytest.param(m, id=n) for n, m in MALFORMED])
def test_malformed_objects(mutate: object) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_value(mutate(point_bytes()), ctx=ctx_with(POINT))  # type: ignore[operator]


@pytest.mark.parametrize("compact", [True, False], ids=["compact", "full"])
def test_every_truncation_of_an_object(compact: bool) -> None:
    data = encode_value(new_object("test.All", {"s": "x", "o": point_bytes(),
                                                 "l": Collection(1, [EnumValue(3, 1)])}),
                        ctx=(ctx := ctx_with(POINT, compact=compact)))
    for bt in ctx.take_pending():
        ctx.registry.add(bt)
    decode_value(data, ctx=ctx)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_value(data[:cut], ctx=ctx)
        with pytest.raises(RemoteProtocolError):
            read_value(memoryview(data)[:cut], 0, ctx=ctx)
    with pytest.raises(RemoteProtocolError, match="trailing"):
        decode_value(data + b"\x65", ctx=ctx)


# -- property tests -----------------------------------------------------------------------------

NAMES = st.text(st.characters(min_codepoint=0x41, max_codepoint=0x5A) | st.sampled_from("_xyzİé"),
                min_size=1, max_size=6)
FIELD_TJS = st.one_of(
    st.integers(-(2**31), 2**31 - 1).map(lambda v: tj(T.INT, v)),
    st.integers(-(2**63), 2**63 - 1).map(lambda v: tj(T.LONG, v)),
    st.text(max_size=300, alphabet=st.characters(blacklist_categories=("Cs",))).map(
        lambda v: tj(T.STRING, v)),
    st.just(tj(T.NULL)),
    st.booleans().map(lambda v: tj(T.BOOL, v)),
    st.lists(st.integers(-100, 100), max_size=40).map(lambda v: tj(T.INT_ARRAY, v)),
)


@st.composite
def objects(draw: st.DrawFn, path: str = "gen") -> dict:
    """A random object TJ; nested types are named by their path, so one type never has a
    field of two types (the node would refuse that metadata, and so does our writer)."""
    names = draw(st.lists(NAMES, unique_by=java_lower, max_size=6))
    fields = []
    for name in names:
        if path.count(".") < 2 and draw(st.booleans()) and draw(st.booleans()):
            fields.append([name, draw(objects(f"{path}.{java_lower(name)}"))])
        else:
            fields.append([name, draw(FIELD_TJS)])
    type_name = path
    raw = draw(st.one_of(st.none(), st.binary(max_size=4).map(bytes.hex)))
    return tj(T.COMPLEX_OBJECT, None, type_id=type_id(type_name), type_name=type_name,
              fields=fields, raw=raw)


def _strip(value: object) -> object:
    """Objects without the header-derived parts (hash code, schema id), recursively."""
    if isinstance(value, BinaryObject):
        return (value.type_id, value.type_name, value.raw,
                {k: _strip(v) for k, v in value.fields.items()})
    return value


def _register_all(ctx: CodecContext) -> None:
    for bt in ctx.take_pending():
        ctx.registry.add(bt)


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=200)
@given(objects(), st.booleans())
def test_generated_objects_round_trip(obj: dict, compact: bool) -> None:
    ctx = CodecContext(Registry(), compact_footer=compact)
    value = tj_to_typed(obj)
    data = encode_value(value, ctx=ctx)
    _register_all(ctx)
    decoded = decode_value(data, ctx=ctx)
    expected = tj_to_python(obj)
    assert deep_same(_strip(decoded), _strip(expected))
    _, _, flags, _, hash_code, length, sid, schema_off = struct.unpack_from("<bbhiiiii", data)
    footer = schema_off if flags & 0x02 else length
    assert hash_code == ref_object_hash(data[24:footer])
    assert sid == ref_schema_id([field_id(n) for n, _ in obj["fields"]])
    assert encode_value(value, ctx=ctx) == data  # stable, and nothing new to register
    assert ctx.pending == {}


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=300)
@given(objects(), st.data())
def test_mutated_objects_decode_or_protocol_error(obj: dict, data: st.DataObject) -> None:
    ctx = CodecContext(Registry())
    raw = bytearray(encode_value(tj_to_typed(obj), ctx=ctx))
    _register_all(ctx)
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ProtocolError):
        decode_value(bytes(raw), ctx=ctx)


# -- objects captured from a real node ----------------------------------------------------------

GROUPS = {"objects", "sql", "pyignite", "handles"}


def _vector_cases() -> list[object]:
    out = []
    for filename, doc in load_type_vector_files():
        for case in doc["cases"]:
            if case["group"] in GROUPS:
                out.append(pytest.param(doc, case, id=f"{filename}:{case['name']}"))
    return out


def _cuts(n: int) -> range | list[int]:
    return range(n) if n <= 4096 else sorted({*range(0, n, n // 512), n - 1, n - 4, n - 5})


@pytest.mark.parametrize(("doc", "case"), _vector_cases())
def test_captured_object(doc: dict, case: dict) -> None:
    data = bytes.fromhex(case["hex"])
    settings_ = case["encode"] or {}
    ctx = context_for(doc, compact_footer=settings_.get("compact_footer", True))
    assert deep_same(decode_value(data, ctx=ctx), tj_to_python(case["value"]))
    if case["encode"]:
        source = case.get("encode_value", case["value"])
        target = data[5:-4] if settings_.get("unwrap") else data
        if source["type"] == "WRAPPED_BINARY":
            source = source["value"]
        assert encode_value(tj_to_typed(source), ctx=ctx) == target
        assert ctx.pending == {}  # everything it used was already registered
    for cut in _cuts(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_value(data[:cut], ctx=ctx)
    with pytest.raises(RemoteProtocolError, match="trailing"):
        decode_value(data + b"\x65", ctx=ctx)


def test_captured_objects_cover_the_layouts() -> None:
    flags_seen: set[int] = set()
    groups: set[str] = set()
    for _, doc in load_type_vector_files():
        for case in doc["cases"]:
            data = bytes.fromhex(case["hex"])
            obj = data[5:] if data[0] == T.WRAPPED_BINARY else data
            if obj[0] == T.COMPLEX_OBJECT:
                flags_seen.add(struct.unpack_from("<h", obj, 2)[0])
                groups.add(case["group"])
    wanted = {
        0x2B,  # compact, 1-byte offsets
        0x33,  # compact, 2-byte offsets
        0x23,  # compact, 4-byte offsets
        0x0B, 0x13, 0x03,  # full footers
        0x2F, 0x25,  # raw data with fields / raw data only
        0x21, 0x01,  # empty, compact / full
    }
    assert wanted <= flags_seen, sorted(hex(f) for f in wanted - flags_seen)
    assert {"objects", "sql", "pyignite", "handles"} <= groups


def test_our_key_finds_the_node_row() -> None:
    """The capture encoded each SQL key from metadata alone and read the row with it."""
    found = 0
    for _, doc in load_type_vector_files():
        values = {c["name"]: c["hex"] for c in doc["cases"] if c["group"] == "sql"}
        for exchange in doc["exchanges"]:
            if exchange["name"].startswith("sql-get-by-our-key-"):
                kid = exchange["name"].rsplit("-", 1)[1]
                value = bytes.fromhex(values[f"sql-value-{kid}"])
                if "response_hex" in exchange:
                    assert bytes.fromhex(exchange["response_hex"]) == value
                else:
                    assert exchange["response_sha256"] == hashlib.sha256(value).hexdigest()
                key = bytes.fromhex(values[f"sql-key-{kid}"])
                request = bytes.fromhex(exchange["request_hex"])
                assert request[5:] == key[5:-4]  # cache id + flags, then our key: the node's
                found += 1
    assert found >= 4


def test_object_in_array_from_capture_is_wrapped() -> None:
    ctx = ctx_with(POINT)
    data = encode_value(ObjectArray(-1, [BinaryObject(POINT.type_id, {"x": 1, "y": 2})]),
                        ctx=ctx)
    assert decode_value(data, ctx=ctx).items[0].fields == {"x": 1, "y": 2}  # type: ignore[attr-defined]

"""Binary-type metadata: the BinaryType structure, the 3000-3003 op bodies and parsers, the
BinaryType builders, and the metadata exchanges captured from a real node."""

from __future__ import annotations

import contextlib
import dataclasses
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.binary.metadata import (
    PLATFORM_DOTNET,
    binary_type_get,
    binary_type_name_get,
    binary_type_name_put,
    binary_type_put,
    enum_type,
    object_type,
    parse_binary_type_get,
    parse_binary_type_name_get,
    parse_binary_type_name_put,
    parse_binary_type_put,
    read_binary_type,
    write_binary_type,
)
from protocol.binary.registry import BinaryType
from protocol.errors import LocalProtocolError, RemoteProtocolError
from protocol.hashing import field_id, schema_id, type_id
from protocol.opcodes import OpCode
from tests.protocol.type_vectors import load_type_vector_files


def i32(v: int) -> bytes:
    return struct.pack("<i", v)


def string(s: str | None) -> bytes:
    if s is None:
        return b"\x65"
    data = s.encode()
    return b"\x09" + i32(len(data)) + data


def binary_type_bytes(bt: BinaryType) -> bytes:
    """The BinaryType structure, assembled with struct."""
    out = i32(bt.type_id) + string(bt.type_name) + string(bt.affinity_key_field)
    out += i32(len(bt.fields))
    for name, code, fid in bt.fields:
        out += string(name) + i32(code) + i32(fid)
    out += b"\x01" if bt.is_enum else b"\x00"
    if bt.is_enum:
        out += i32(len(bt.enum_values))
        for literal, ordinal in bt.enum_values:
            out += string(literal) + i32(ordinal)
    out += i32(len(bt.schemas))
    for sid, ids in bt.schemas.items():
        out += i32(sid) + i32(len(ids)) + b"".join(i32(f) for f in ids)
    return out


PERSON = BinaryType(
    type_id=type_id("org.Person"), type_name="org.Person", affinity_key_field="orgId",
    fields=[("name", 9, field_id("name")), ("orgId", 3, field_id("orgId"))],
    schemas={schema_id([field_id("name"), field_id("orgId")]): [field_id("name"),
                                                               field_id("orgId")],
             schema_id([field_id("name")]): [field_id("name")]},
)
COLOR = BinaryType(type_id("org.Color"), "org.Color", is_enum=True,
                   enum_values=[("RED", 0), ("GREEN", 1), ("BLUE", 5)])
EMPTY = BinaryType(5, "x")

TYPES = [pytest.param(PERSON, id="object"), pytest.param(COLOR, id="enum"),
         pytest.param(EMPTY, id="empty")]


@pytest.mark.parametrize("bt", TYPES)
def test_binary_type_structure(bt: BinaryType) -> None:
    wire = binary_type_bytes(bt)
    buf = bytearray(b"\xaa")
    write_binary_type(buf, bt)
    assert bytes(buf) == b"\xaa" + wire
    assert binary_type_put(bt) == wire
    assert read_binary_type(b"junk" + wire + b"more", 4) == (bt, 4 + len(wire))
    assert parse_binary_type_get(b"\x01" + wire) == bt
    for cut in range(len(wire)):  # every prefix of the response, byte by byte
        with pytest.raises(RemoteProtocolError):
            parse_binary_type_get(b"\x01" + wire[:cut])
    with pytest.raises(RemoteProtocolError, match="trailing"):
        parse_binary_type_get(b"\x01" + wire + b"\x00")


def test_missing_type() -> None:
    assert binary_type_get(-7) == i32(-7)
    assert parse_binary_type_get(b"\x00") is None
    with pytest.raises(RemoteProtocolError):
        parse_binary_type_get(b"")
    with pytest.raises(RemoteProtocolError, match="trailing"):
        parse_binary_type_get(b"\x00\x00")


@pytest.mark.parametrize("wire", [
    pytest.param(i32(1) + string(None), id="null-type-name"),
    pytest.param(i32(1) + i32(5), id="type-name-not-a-string"),
    pytest.param(i32(1) + string("x") + string(None) + i32(-1), id="negative-field-count"),
    pytest.param(i32(1) + string("x") + string(None) + i32(10**6) + b"\x00", id="huge-count"),
    pytest.param(i32(1) + string("x") + string(None) + i32(1) + string(None) + i32(3) + i32(1),
                 id="null-field-name"),
    pytest.param(i32(1) + string("x") + string(None) + i32(0) + b"\x00" + i32(1) + i32(7)
                 + i32(-2), id="negative-schema-length"),
])
def test_malformed_binary_types(wire: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        parse_binary_type_get(b"\x01" + wire)


@given(st.binary(max_size=80))
def test_arbitrary_bytes_parse_or_remote_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        parse_binary_type_get(data)


def test_put_is_empty() -> None:
    parse_binary_type_put(b"")
    with pytest.raises(RemoteProtocolError):
        parse_binary_type_put(b"\x00")


def test_bad_types_are_local_errors() -> None:
    with pytest.raises(LocalProtocolError):
        binary_type_put("x")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        binary_type_put(dataclasses.replace(PERSON, type_id=2**31))
    with pytest.raises(LocalProtocolError):
        binary_type_put(dataclasses.replace(PERSON, fields=[("a", 3, 2**40)]))
    with pytest.raises(LocalProtocolError):
        binary_type_get(2**31)


def test_type_names() -> None:
    assert binary_type_name_get(7) == b"\x00" + i32(7)
    assert binary_type_name_get(7, PLATFORM_DOTNET) == b"\x01" + i32(7)
    assert binary_type_name_put(7, "a.B") == b"\x00" + i32(7) + string("a.B")
    assert parse_binary_type_name_get(string("a.B")) == "a.B"
    assert parse_binary_type_name_get(b"\x65") is None
    assert parse_binary_type_name_put(b"\x01") is True
    assert parse_binary_type_name_put(b"\x00") is False
    for bad in (b"", string("a")[:-1], string("a") + b"\x00", i32(3)):
        with pytest.raises(RemoteProtocolError):
            parse_binary_type_name_get(bad)
    with pytest.raises(RemoteProtocolError):
        parse_binary_type_name_put(b"")
    with pytest.raises(LocalProtocolError):
        binary_type_name_put(7, None)  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError):
        binary_type_name_get(7, 300)


def test_builders() -> None:
    bt = object_type("org.Person", [("name", 9), ("orgId", 3)], affinity_key_field="orgId")
    assert bt == dataclasses.replace(PERSON, schemas={schema_id([field_id("name"),
                                                                 field_id("orgId")]):
                                                      [field_id("name"), field_id("orgId")]})
    assert object_type("x", [], type_id=5) == EMPTY
    assert enum_type("org.Color", {"RED": 0, "GREEN": 1, "BLUE": 5}) == COLOR
    assert enum_type("e", ["A", "B"]).enum_values == [("A", 0), ("B", 1)]
    assert PERSON.field_names(schema_id([field_id("name")])) == ["name"]


# -- exchanges captured from a real node -------------------------------------------------------

PARSERS = {
    "BINARY_TYPE_GET": parse_binary_type_get,
    "BINARY_TYPE_PUT": parse_binary_type_put,
    "BINARY_TYPE_NAME_GET": parse_binary_type_name_get,
    "BINARY_TYPE_NAME_PUT": parse_binary_type_name_put,
}


def _exchanges() -> list[object]:
    return [pytest.param(ex, id=f"{name}:{ex['name']}")
            for name, doc in load_type_vector_files() for ex in doc["exchanges"]
            if ex["op"] in PARSERS]


def _as_json(value: object) -> object:
    if isinstance(value, BinaryType):
        out = dataclasses.asdict(value)
        out["schemas"] = {str(k): v for k, v in value.schemas.items()}
        return out
    return value


def _normalise(value: object) -> object:
    """JSON turns tuples into lists; compare in that form."""
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise(v) for v in value]
    return value


@pytest.mark.parametrize("exchange", _exchanges())
def test_captured_exchange(exchange: dict) -> None:
    assert OpCode[exchange["op"]]  # the op names are ours
    if "error" in exchange:  # e.g. the name of an unknown type id: the node answers FAILED
        assert exchange["error"]["status"] != 0
        return
    response = bytes.fromhex(exchange["response_hex"])
    parsed = PARSERS[exchange["op"]](response)  # type: ignore[operator]
    assert _normalise(_as_json(parsed)) == _normalise(exchange["result"])
    if isinstance(parsed, BinaryType):
        assert binary_type_put(parsed) == response[1:]  # our writer, the node's bytes
    for cut in range(len(response)):
        with pytest.raises(RemoteProtocolError):
            PARSERS[exchange["op"]](response[:cut])  # type: ignore[operator]


def test_captured_metadata_parses_and_rewrites() -> None:
    count = 0
    for _, doc in load_type_vector_files():
        for tid, body in doc["metadata"].items():
            data = bytes.fromhex(body)
            bt = parse_binary_type_get(data)
            assert bt is not None and bt.type_id == int(tid)
            assert b"\x01" + binary_type_put(bt) == data
            count += 1
    assert count >= 10

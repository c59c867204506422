"""Value codec: round trips with boundary values, truncation, trailing bytes, bad input."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import LocalProtocolError, RemoteProtocolError
from protocol.binary import TypeCode, decode_value, encode_value, read_value, write_value

T = TypeCode
I64_MIN, I64_MAX = -(2**63), 2**63 - 1
F32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]


def _d(v: float) -> str:
    return struct.pack("<d", v).hex()


def _f(v: float) -> str:
    return struct.pack("<f", v).hex()


# (id, value, hint, exact wire hex, decoded value if it differs from `value`)
ROUND_TRIPS = [
    ("null", None, None, "65", None),
    ("null-with-hint", None, T.INT, "65", None),
    ("bool-true", True, None, "0801", True),
    ("bool-false", False, None, "0800", False),
    ("bool-hint", True, T.BOOL, "0801", True),
    ("byte-min", -128, T.BYTE, "0180", -128),
    ("byte-max", 127, T.BYTE, "017f", 127),
    ("byte-zero", 0, T.BYTE, "0100", 0),
    ("short-min", -(2**15), T.SHORT, "020080", -(2**15)),
    ("short-max", 2**15 - 1, T.SHORT, "02ff7f", 2**15 - 1),
    ("int-min", -(2**31), T.INT, "0300000080", -(2**31)),
    ("int-max", 2**31 - 1, T.INT, "03ffffff7f", 2**31 - 1),
    ("int-minus-one", -1, T.INT, "03ffffffff", -1),
    ("long-auto-zero", 0, None, "040000000000000000", 0),
    ("long-auto-min", I64_MIN, None, "040000000000000080", I64_MIN),
    ("long-auto-max", I64_MAX, None, "04ffffffffffffff7f", I64_MAX),
    ("long-hint", 1, T.LONG, "040100000000000000", 1),
    ("double-auto", 1.5, None, "06" + _d(1.5), 1.5),
    ("double-neg-zero", -0.0, None, "06" + _d(-0.0), -0.0),
    ("double-inf", math.inf, None, "06" + _d(math.inf), math.inf),
    ("double-neg-inf", -math.inf, None, "06" + _d(-math.inf), -math.inf),
    ("double-nan", math.nan, None, "06" + _d(math.nan), math.nan),
    ("double-max", 1.7976931348623157e308, None, "06ffffffffffffef7f", 1.7976931348623157e308),
    ("double-tiny", 5e-324, None, "060100000000000000", 5e-324),
    ("double-from-int-hint", 3, T.DOUBLE, "06" + _d(3.0), 3.0),
    ("float-exact", 1.5, T.FLOAT, "050000c03f", 1.5),
    ("float-rounded", 0.1, T.FLOAT, "05cdcccc3d", struct.unpack("<f", b"\xcd\xcc\xcc\x3d")[0]),
    ("float-max", F32_MAX, T.FLOAT, "05ffff7f7f", F32_MAX),
    ("float-inf", math.inf, T.FLOAT, "05" + _f(math.inf), math.inf),
    ("float-nan", math.nan, T.FLOAT, "05" + _f(math.nan), math.nan),
    ("char-ascii", "a", T.CHAR, "076100", "a"),
    ("char-cyrillic", "Ж", T.CHAR, "071604", "Ж"),
    ("char-max", "\uffff", T.CHAR, "07ffff", "\uffff"),
    ("char-from-int", 0x41, T.CHAR, "074100", "A"),
    ("string-empty", "", None, "0900000000", ""),
    ("string-ascii", "abc", None, "0903000000616263", "abc"),
    ("string-non-ascii", "héllo", None, "090600000068c3a96c6c6f", "héllo"),
    ("string-astral", "😀", None, "0904000000f09f9880", "😀"),
    ("string-nul", "a\x00b", T.STRING, "090300000061" + "0062", "a\x00b"),
    ("bytes-empty", b"", None, "0c00000000", b""),
    ("bytes", b"\x00\xff\x10", None, "0c0300000000ff10", b"\x00\xff\x10"),
    ("bytearray", bytearray(b"\x01"), None, "0c0100000001", b"\x01"),
    ("memoryview", memoryview(b"\x02"), T.BYTE_ARRAY, "0c0100000002", b"\x02"),
]


def same(a: object, b: object) -> bool:
    """Equal, with the same type; NaN equals NaN and the sign of zero matters."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        assert isinstance(b, float)
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


@pytest.mark.parametrize(
    ("value", "hint", "wire", "decoded"),
    [pytest.param(*case[1:], id=case[0]) for case in ROUND_TRIPS],
)
def test_round_trip(value: object, hint: TypeCode | None, wire: str, decoded: object) -> None:
    data = encode_value(value, hint)
    assert data.hex() == wire
    assert same(decode_value(data), decoded)
    assert same(decode_value(memoryview(data)), decoded)
    assert same(decode_value(bytearray(data)), decoded)


@pytest.mark.parametrize("wire", [pytest.param(c[3], id=c[0]) for c in ROUND_TRIPS])
def test_every_truncation_is_a_remote_error(wire: str) -> None:
    # The byte-at-a-time feed for a value decoder: every strict prefix is incomplete.
    data = bytes.fromhex(wire)
    for cut in range(len(data)):
        with pytest.raises(RemoteProtocolError):
            decode_value(data[:cut])
        with pytest.raises(RemoteProtocolError):
            read_value(memoryview(data)[:cut], 0)


@pytest.mark.parametrize("wire", [pytest.param(c[3], id=c[0]) for c in ROUND_TRIPS])
def test_trailing_bytes(wire: str) -> None:
    data = bytes.fromhex(wire)
    with pytest.raises(RemoteProtocolError, match="trailing"):
        decode_value(data + b"\x65")
    # read_value leaves them alone and reports where the value ended, at any offset.
    value, end = read_value(b"junk" + data + b"\x01\x02", 4)
    assert end == 4 + len(data)
    assert same(value, decode_value(data))


def test_write_value_appends() -> None:
    buf = bytearray(b"\xaa")
    write_value(buf, 1, TypeCode.INT)
    write_value(buf, "x")
    assert buf.hex() == "aa" + "0301000000" + "090100000078"


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        pytest.param(2**63, None, id="long-overflow"),
        pytest.param(I64_MIN - 1, None, id="long-underflow"),
        pytest.param(128, T.BYTE, id="byte-overflow"),
        pytest.param(-129, T.BYTE, id="byte-underflow"),
        pytest.param(2**15, T.SHORT, id="short-overflow"),
        pytest.param(2**31, T.INT, id="int-overflow"),
        pytest.param(-(2**31) - 1, T.INT, id="int-underflow"),
        pytest.param(2**63, T.LONG, id="long-hint-overflow"),
        pytest.param(1.5, T.INT, id="float-as-int"),
        pytest.param("1", T.LONG, id="str-as-long"),
        pytest.param(1e39, T.FLOAT, id="float32-overflow"),
        pytest.param(10**400, T.DOUBLE, id="double-overflow"),
        pytest.param("x", T.DOUBLE, id="str-as-double"),
        pytest.param("ab", T.CHAR, id="char-two"),
        pytest.param("", T.CHAR, id="char-empty"),
        pytest.param("😀", T.CHAR, id="char-astral"),
        pytest.param(0x10000, T.CHAR, id="char-int-overflow"),
        pytest.param("yes", T.BOOL, id="str-as-bool"),
        pytest.param(5, T.STRING, id="int-as-string"),
        pytest.param("\ud800", None, id="lone-surrogate"),
        pytest.param("x", T.BYTE_ARRAY, id="str-as-bytes"),
        pytest.param(5, T.NULL, id="value-as-null"),
        pytest.param(1, T.UUID, id="no-writer-yet"),
        pytest.param(1, 77, id="unknown-code"),
        pytest.param(object(), None, id="no-automatic-type"),
        pytest.param({"a": 1}, None, id="dict-refused"),
    ],
)
def test_unencodable_values(value: object, hint: int | None) -> None:
    buf = bytearray(b"keep")
    with pytest.raises(LocalProtocolError):
        write_value(buf, value, hint)
    assert buf == b"keep"  # a failed write leaves the buffer alone


def test_int_subclasses_map_like_int() -> None:
    import enum

    class Colour(enum.IntEnum):
        RED = 3

    assert encode_value(Colour.RED) == encode_value(3)


@pytest.mark.parametrize(
    "wire",
    [
        pytest.param("", id="empty"),
        pytest.param("00", id="type-code-0"),
        pytest.param("20" + "00" * 8, id="class-java-only"),
        pytest.param("fe", id="optimized-marshaller"),
        pytest.param("ff", id="type-code-minus-1"),
        pytest.param("09ffffffff", id="string-negative-length"),
        pytest.param("0905000000616263", id="string-short"),
        pytest.param("0901000000ff", id="string-bad-utf8"),
        pytest.param("0902000000eda080", id="string-surrogate-utf8"),
        pytest.param("0cffffff7f00", id="bytes-huge-length"),
        pytest.param("0c00000080", id="bytes-negative-length"),
    ],
)
def test_invalid_wire_values(wire: str) -> None:
    with pytest.raises(RemoteProtocolError):
        decode_value(bytes.fromhex(wire))


def test_bool_nonzero_is_true() -> None:
    assert decode_value(b"\x08\x02") is True
    assert decode_value(b"\x08\xff") is True


def test_char_lone_surrogate_decodes() -> None:
    assert decode_value(b"\x07\x00\xd8") == "\ud800"
    assert encode_value("\ud800", TypeCode.CHAR) == b"\x07\x00\xd8"


@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_remote_error(data: bytes) -> None:
    with contextlib.suppress(RemoteProtocolError):
        decode_value(data)


@given(st.binary(max_size=64), st.integers(min_value=0, max_value=70))
def test_arbitrary_offsets_decode_or_remote_error(data: bytes, pos: int) -> None:
    try:
        _, end = read_value(memoryview(data), pos)
    except RemoteProtocolError:
        return
    assert pos < end <= len(data)


auto_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=I64_MIN, max_value=I64_MAX),
    st.floats(allow_nan=False),
    st.text(st.characters(blacklist_categories=("Cs",))),
    st.binary(),
)


@given(auto_values)
def test_automatic_round_trip(value: object) -> None:
    assert same(decode_value(encode_value(value)), value)


# pyignite mangles strings containing NUL (ctypes char arrays), so leave those out.
pyignite_values = auto_values.filter(lambda v: not (isinstance(v, str) and "\x00" in v))


@given(pyignite_values)
def test_same_bytes_as_pyignite(value: object) -> None:
    """pyignite 0.6.1 is an independent encoder of the same automatic mapping."""
    pytest.importorskip("pyignite")
    from pyignite.client import Client
    from pyignite.datatypes import AnyDataObject
    from pyignite.stream import BinaryStream

    client = Client()
    with BinaryStream(client) as stream:
        AnyDataObject.from_python(stream, value)
        theirs = stream.getvalue()
    assert encode_value(value) == theirs
    assert same(decode_value(theirs), value)


def _names_type_checkers_see(package: object) -> dict[str, str]:
    """The ``from X import name as name`` lines of a lazy package's TYPE_CHECKING block."""
    import ast
    import inspect

    return {
        alias.asname: f"{'.' * node.level}{node.module or ''}"
        for node in ast.walk(ast.parse(inspect.getsource(package)))  # type: ignore[arg-type]
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if alias.asname
    }


def test_lazy_exports_are_the_names_type_checkers_see():
    import protocol.binary as package

    assert _names_type_checkers_see(package) == package._EXPORTS


def test_the_protocol_packages_lazy_exports_are_the_names_type_checkers_see():
    import protocol as package

    assert _names_type_checkers_see(package) == {
        name: source or "." for name, source in package._EXPORTS.items()}

"""The codec's bounds: nesting depth, decimal digits, and request builders that refuse bad
arguments with LocalProtocolError only (see protocol/limits.py and issue 10)."""

from __future__ import annotations

import decimal
import struct
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import ipc
from protocol.binary import TypeCode, decode_value, encode_value, standard
from protocol.binary.primitives import DEFAULT_MAX_DEPTH
from protocol.binary.values import BinaryObject, Collection, Map, ObjectArray, Typed
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
    from protocol import ipc
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

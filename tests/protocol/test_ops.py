"""Request-body builders and response-body parsers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol import LocalProtocolError, RemoteProtocolError, cache_id, ops
from protocol.binary import TypeCode
from tests.protocol.protocol_helpers import ignite_str

CID = "2a000000"  # cache id 42


def test_get_or_create_with_name() -> None:
    assert ops.cache_get_or_create_with_name("my-cache") == ignite_str("my-cache")
    assert ops.cache_get_or_create_with_name("кэш") == ignite_str("кэш")
    with pytest.raises(LocalProtocolError):
        ops.cache_get_or_create_with_name(None)  # type: ignore[arg-type]
    assert ops.parse_cache_get_or_create_with_name(b"") is None


def test_cache_get_names() -> None:
    assert ops.cache_get_names() == b""
    body = bytes.fromhex("02000000") + ignite_str("a") + ignite_str("SQL_PUBLIC_Ж")
    assert ops.parse_cache_get_names(body) == ["a", "SQL_PUBLIC_Ж"]
    assert ops.parse_cache_get_names(memoryview(body)) == ["a", "SQL_PUBLIC_Ж"]
    assert ops.parse_cache_get_names(bytes(4)) == []


@pytest.mark.parametrize("count", [1, 3, 0x7FFFFFFF])
def test_cache_get_names_reads_every_name_whatever_the_count(count: int) -> None:
    """Ignite counts a live view, then writes the names it iterates: a cache started or
    destroyed in between makes the count one off."""
    body = count.to_bytes(4, "little") + ignite_str("a") + ignite_str("b")
    assert ops.parse_cache_get_names(body) == ["a", "b"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"\x01\x00\x00", id="short-count"),
        pytest.param(bytes.fromhex("ffffffff"), id="negative-count"),
        pytest.param(bytes.fromhex("ffffff7f") + b"\x65", id="huge-count"),
        pytest.param(bytes.fromhex("01000000") + b"\x65", id="null-name"),
        pytest.param(bytes.fromhex("01000000") + b"\x03\x00\x00\x00\x00", id="int-name"),
        pytest.param(bytes.fromhex("01000000") + ignite_str("a") + b"\x00", id="trailing"),
    ],
)
def test_cache_get_names_malformed(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ops.parse_cache_get_names(body)


def test_cache_get() -> None:
    assert ops.cache_get(42, 7).hex() == CID + "00" + "040700000000000000"
    assert ops.cache_get(42, 7, TypeCode.INT).hex() == CID + "00" + "0307000000"
    assert ops.cache_get(-1, "k", flags=ops.FLAG_KEEP_BINARY).hex() == (
        "ffffffff" "01" "09010000006b"
    )
    assert ops.parse_cache_get(b"\x65") is None
    assert ops.parse_cache_get(memoryview(b"\x03\x07\x00\x00\x00")) == 7


def test_cache_put() -> None:
    body = ops.cache_put(42, "k", b"\x00", value_hint=TypeCode.BYTE_ARRAY)
    assert body.hex() == CID + "00" + "09010000006b" + "0c0100000000"
    body = ops.cache_put(42, 1, 2, key_hint=TypeCode.SHORT, value_hint=TypeCode.BYTE)
    assert body.hex() == CID + "00" + "020100" + "0102"
    assert ops.parse_cache_put(b"") is None
    with pytest.raises(RemoteProtocolError):
        ops.parse_cache_put(b"\x00")


def test_prefix_with_transaction_and_expiry() -> None:
    body = ops.cache_get(42, True, tx_id=5, expiry=(-2, -1, 1000))
    assert body.hex() == (
        CID + "06"  # TRANSACTIONAL | WITH_EXPIRY_POLICY
        + "feffffffffffffff" "ffffffffffffffff" "e803000000000000"  # expiry comes first
        + "05000000"  # then the tx id
        + "0801"
    )
    assert ops.cache_put(42, 1, 2, tx_id=1).hex().startswith(CID + "02" + "01000000")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"flags": ops.FLAG_TRANSACTIONAL},
        {"flags": ops.FLAG_WITH_EXPIRY_POLICY},
        {"flags": 300},
        {"tx_id": 2**31},
        {"expiry": (1, 2)},
    ],
)
def test_prefix_misuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(LocalProtocolError):
        ops.cache_get(42, 1, **kwargs)  # type: ignore[arg-type]


def test_cache_id_out_of_range() -> None:
    with pytest.raises(LocalProtocolError):
        ops.cache_get(2**31, 1)


def test_cache_ids_from_names_fit_the_prefix() -> None:
    body = ops.cache_get(cache_id("SQL_PUBLIC_PERSON"), 1)
    assert int.from_bytes(body[:4], "little", signed=True) == cache_id("SQL_PUBLIC_PERSON")


@pytest.mark.parametrize(
    "body",
    [b"", b"\x03\x00", b"\x65\x65", b"\x00"],
    ids=["empty", "truncated", "trailing", "unknown-type"],
)
def test_parse_cache_get_malformed(body: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        ops.parse_cache_get(body)


@given(st.binary(max_size=40))
def test_parsers_fuzz(body: bytes) -> None:
    for parse in (ops.parse_cache_get, ops.parse_cache_get_names, ops.parse_cache_put):
        with contextlib.suppress(RemoteProtocolError):
            parse(body)


def test_the_cache_prefix_size_is_what_write_cache_prefix_writes():
    for expiry in (None, (1, 2, 3)):
        for tx_id in (None, 7):
            buf = bytearray()
            ops.write_cache_prefix(buf, 1, tx_id=tx_id, expiry=expiry)
            assert ops.cache_prefix_size(expiry=expiry is not None,
                                         tx=tx_id is not None) == len(buf)

"""Request-body builders and response-body parsers, one pair per operation.

Builders return the body only; frame it with ``ClientConnection.send_request(op, body)``.
Parsers take ``Response.body`` and raise RemoteProtocolError on malformed bodies. Builders
do not know the negotiated version: the caller must not ask for transactions below
1.5.0 or expiry policies below 1.6.0.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable
from typing import TypeVar

from .binary import TypeCode, decode_value, read_value, write_value
from .binary.primitives import Buffer
from .errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "FLAG_KEEP_BINARY",
    "FLAG_TRANSACTIONAL",
    "FLAG_WITH_EXPIRY_POLICY",
    "cache_get",
    "cache_get_names",
    "cache_get_or_create_with_name",
    "cache_put",
    "parse_cache_get",
    "parse_cache_get_names",
    "parse_cache_get_or_create_with_name",
    "parse_cache_put",
    "parse_empty",
    "write_cache_prefix",
]

# Cache-op prefix flags.
FLAG_KEEP_BINARY = 0x01
FLAG_TRANSACTIONAL = 0x02  # >= 1.5.0, tx id follows
FLAG_WITH_EXPIRY_POLICY = 0x04  # >= 1.6.0, three TTLs follow

_PREFIX = struct.Struct("<ib")  # cache id, flags
_EXPIRY = struct.Struct("<qqq")  # create, update, access TTL in ms (-2 unchanged, -1 eternal)
_I32 = struct.Struct("<i")

Expiry = tuple[int, int, int]
T = TypeVar("T")


def _parser(fn: Callable[[Buffer], T]) -> Callable[[Buffer], T]:
    """Turn struct errors from a body parser into RemoteProtocolError (one boundary)."""

    @functools.wraps(fn)
    def parse(body: Buffer) -> T:
        try:
            return fn(body)
        except struct.error as exc:
            raise RemoteProtocolError(f"{fn.__name__}: truncated body: {exc}") from exc

    return parse


# -- shared pieces ---------------------------------------------------------------------


def write_cache_prefix(
    buf: bytearray,
    cache_id: int,
    flags: int = 0,
    tx_id: int | None = None,
    expiry: Expiry | None = None,
) -> None:
    """Append ``i32 cache_id | i8 flags | [i64 x3 expiry] | [i32 tx_id]``.

    The TRANSACTIONAL and WITH_EXPIRY_POLICY flags follow ``tx_id`` and ``expiry``:
    they are set when those are given; setting them by hand without the value is an error.
    """
    if tx_id is not None:
        flags |= FLAG_TRANSACTIONAL
    elif flags & FLAG_TRANSACTIONAL:
        raise LocalProtocolError("the TRANSACTIONAL flag needs a tx_id")
    if expiry is not None:
        flags |= FLAG_WITH_EXPIRY_POLICY
    elif flags & FLAG_WITH_EXPIRY_POLICY:
        raise LocalProtocolError("the WITH_EXPIRY_POLICY flag needs an expiry")
    try:
        prefix = _PREFIX.pack(cache_id, flags)
        if expiry is not None:
            prefix += _EXPIRY.pack(*expiry)
        if tx_id is not None:
            prefix += _I32.pack(tx_id)
    except (struct.error, TypeError) as exc:
        raise LocalProtocolError(f"invalid cache prefix: {exc}") from exc
    buf += prefix


def parse_empty(body: Buffer) -> None:
    """Parse the body of an operation that returns nothing."""
    if len(body):
        raise RemoteProtocolError(f"expected an empty body, got {len(body)} bytes")


def _read_str(body: Buffer, pos: int) -> tuple[str | None, int]:
    value, pos = read_value(body, pos)
    if value is not None and not isinstance(value, str):
        raise RemoteProtocolError(f"expected a string, got {type(value).__name__}")
    return value, pos


def _read_count(body: Buffer, pos: int, min_item_size: int = 1) -> tuple[int, int]:
    """Read an i32 element count, refusing counts the remaining bytes cannot hold."""
    (n,) = _I32.unpack_from(body, pos)
    pos += 4
    if n < 0 or n * min_item_size > len(body) - pos:
        raise RemoteProtocolError(f"element count {n} does not fit the body")
    return n, pos


# -- caches: create, list ---------------------------------------------------------------


def cache_get_or_create_with_name(name: str) -> bytes:
    """Body of CACHE_GET_OR_CREATE_WITH_NAME (1052): ``str name``."""
    if not isinstance(name, str):
        raise LocalProtocolError(f"cache name must be a str, got {type(name).__name__}")
    buf = bytearray()
    write_value(buf, name, TypeCode.STRING)
    return bytes(buf)


parse_cache_get_or_create_with_name = parse_empty


def cache_get_names() -> bytes:
    """Body of CACHE_GET_NAMES (1050): empty."""
    return b""


@_parser
def parse_cache_get_names(body: Buffer) -> list[str]:
    """``i32 n | n x str`` -> the cache names."""
    n, pos = _read_count(body, 0)
    names = []
    for _ in range(n):
        name, pos = _read_str(body, pos)
        if name is None:
            raise RemoteProtocolError("NULL cache name")
        names.append(name)
    if pos != len(body):
        raise RemoteProtocolError(f"{len(body) - pos} trailing bytes after the cache names")
    return names


# -- key/value ----------------------------------------------------------------------------


def cache_get(
    cache_id: int,
    key: object,
    key_hint: int | None = None,
    flags: int = 0,
    tx_id: int | None = None,
    *,
    expiry: Expiry | None = None,
) -> bytes:
    """Body of CACHE_GET (1000): ``prefix | key``."""
    buf = bytearray()
    write_cache_prefix(buf, cache_id, flags, tx_id, expiry)
    write_value(buf, key, key_hint)
    return bytes(buf)


@_parser
def parse_cache_get(body: Buffer) -> object:
    """``obj`` -> the value (None when the key is absent)."""
    return decode_value(body)


def cache_put(
    cache_id: int,
    key: object,
    value: object,
    key_hint: int | None = None,
    value_hint: int | None = None,
    flags: int = 0,
    tx_id: int | None = None,
    *,
    expiry: Expiry | None = None,
) -> bytes:
    """Body of CACHE_PUT (1001): ``prefix | key | value``."""
    buf = bytearray()
    write_cache_prefix(buf, cache_id, flags, tx_id, expiry)
    write_value(buf, key, key_hint)
    write_value(buf, value, value_hint)
    return bytes(buf)


parse_cache_put = parse_empty

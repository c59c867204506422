"""The pieces every op module builds request bodies and reads response bodies with: the cache
prefix (flags, expiry TTLs, tx id), ``BodyReader``, ``pack`` and the ``write_*`` helpers, the
shared parsers. ops, cacheconfig, queries, cluster and tx build on it; it imports none of them.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from . import _checks as check
from .binary import TypeCode, read_value, write_value
from .binary.codec import Buffer
from .errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from typing import TypeAlias

    from .binary.registry import CodecContext

    Ctx: TypeAlias = CodecContext | None  # the value codec's context (binary-type registry)

# Cache-op prefix flags.
FLAG_KEEP_BINARY = 0x01
FLAG_TRANSACTIONAL = 0x02  # >= 1.5.0, tx id follows
FLAG_WITH_EXPIRY_POLICY = 0x04  # >= 1.6.0, three TTLs follow
_KNOWN_FLAGS = FLAG_KEEP_BINARY | FLAG_TRANSACTIONAL | FLAG_WITH_EXPIRY_POLICY

# TTLs in ms (PlatformExpiryPolicy): -2 unchanged, -1 eternal, 0 expire at once, > 0 ms. Any
# other negative fails the node's request parsing, and the node then drops the connection.
TTL_UNCHANGED = -2
TTL_ETERNAL = -1
_I64_MAX = 2**63 - 1

_PREFIX = struct.Struct("<ib")  # cache id, flags
_EXPIRY = struct.Struct("<qqq")  # create, update, access TTL in ms (-2 unchanged, -1 eternal)
_I8 = struct.Struct("<b")
_I16 = struct.Struct("<h")
_I32 = struct.Struct("<i")
_I64 = struct.Struct("<q")
_UUID = struct.Struct("<QQ")  # most, least significant bits (Java longs, read unsigned)

Expiry = tuple[int, int, int]
"""(create, update, access) TTLs in ms: -2 unchanged, -1 eternal, 0 expire at once."""
_TTL_NAMES = ("create", "update", "access")

# -- value codec seams -----------------------------------------------------------------------


def read_obj(buf: Buffer, pos: int, ctx: Ctx = None) -> tuple[object, int]:
    """``read_value`` with the codec context (the binary-type registry), if any."""
    return read_value(buf, pos, ctx=ctx)


def write_obj(
    buf: bytearray, value: object, hint: int | None = None, ctx: Ctx = None
) -> None:
    """``write_value`` with the codec context, if any."""
    write_value(buf, value, hint, ctx=ctx)


# -- reading ---------------------------------------------------------------------------------


class BodyReader:
    """A cursor over a response body. Every read checks bounds and raises RemoteProtocolError."""

    __slots__ = ("body", "ctx", "pos")

    def __init__(self, body: Buffer, pos: int = 0, ctx: Ctx = None) -> None:
        self.body = body
        self.pos = pos
        self.ctx = ctx

    @property
    def remaining(self) -> int:
        return len(self.body) - self.pos

    def _unpack(self, st: struct.Struct) -> tuple[Any, ...]:
        try:
            fields = st.unpack_from(self.body, self.pos)
        except struct.error:
            raise RemoteProtocolError(
                f"truncated body: {st.size} bytes needed at offset {self.pos}, "
                f"{max(self.remaining, 0)} left"
            ) from None
        self.pos += st.size
        return fields

    def i8(self) -> int:
        return int(self._unpack(_I8)[0])

    def i16(self) -> int:
        return int(self._unpack(_I16)[0])

    def i32(self) -> int:
        return int(self._unpack(_I32)[0])

    def i64(self) -> int:
        return int(self._unpack(_I64)[0])

    def flag(self) -> bool:
        """A one-byte bool; like Java, any non-zero byte is true."""
        return self.i8() != 0

    def raw_uuid(self) -> uuid.UUID:
        """Two i64 (msb, lsb) without a type code."""
        msb, lsb = self._unpack(_UUID)
        return uuid.UUID(int=(msb << 64) | lsb)

    def value(self) -> object:
        """One typed value (``obj``)."""
        value, self.pos = read_obj(self.body, self.pos, self.ctx)
        return value

    def string(self) -> str | None:
        """A typed String or NULL."""
        value = self.value()
        if value is not None and not isinstance(value, str):
            raise RemoteProtocolError(f"expected a string, got {type(value).__name__}")
        return value

    def required_string(self, what: str) -> str:
        value = self.string()
        if value is None:
            raise RemoteProtocolError(f"NULL {what}")
        return value

    def uuid_obj(self) -> uuid.UUID | None:
        """A typed UUID (code 10) or NULL, read here so it does not depend on the codec."""
        code = self.i8()
        if code == TypeCode.NULL:
            return None
        if code != TypeCode.UUID:
            raise RemoteProtocolError(f"expected a UUID, got type code {code}")
        return self.raw_uuid()

    def count(self, min_item_size: int = 1) -> int:
        """An i32 element count, refusing counts the remaining bytes cannot hold."""
        n = self.i32()
        if n < 0 or n * min_item_size > self.remaining:
            raise RemoteProtocolError(f"element count {n} does not fit the body")
        return n

    def finish(self, what: str = "the body") -> None:
        """Refuse trailing bytes."""
        if self.pos != len(self.body):
            raise RemoteProtocolError(f"{len(self.body) - self.pos} trailing bytes after {what}")


# -- writing ---------------------------------------------------------------------------------


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
    if type(flags) is not int or not 0 <= flags <= _KNOWN_FLAGS:
        flags = check.integer(flags, "flags", 0, _KNOWN_FLAGS)
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
    except (struct.error, TypeError):
        check.i32(cache_id, "cache id")  # raises the LocalProtocolError naming it
        raise
    if expiry is not None:
        prefix += _EXPIRY.pack(*check_expiry(expiry))
    if tx_id is not None:
        prefix += _I32.pack(check.i32(tx_id, "tx id"))
    buf += prefix


def cache_prefix_size(*, expiry: bool = False, tx: bool = False) -> int:
    """Bytes of the prefix ``write_cache_prefix`` writes: where a keyed op's key starts."""
    return _PREFIX.size + (_EXPIRY.size if expiry else 0) + (_I32.size if tx else 0)


def check_expiry(expiry: object) -> Expiry:
    """(create, update, access) TTLs a node accepts: each -2, -1, 0 or a positive ms count."""
    if type(expiry) is tuple and len(expiry) == 3:  # the usual: three plain ints in range
        create, update, access = expiry
        if (type(create) is int and type(update) is int and type(access) is int
                and TTL_UNCHANGED <= create <= _I64_MAX and TTL_UNCHANGED <= update <= _I64_MAX
                and TTL_UNCHANGED <= access <= _I64_MAX):
            return expiry
    ttls = check.items(expiry, "expiry")
    if len(ttls) != 3:
        raise LocalProtocolError(f"expiry must be 3 TTLs (create, update, access), got {len(ttls)}")
    create, update, access = (
        check.integer(ttl, f"{name} TTL", TTL_UNCHANGED, check.I64[1])
        for name, ttl in zip(_TTL_NAMES, ttls, strict=True)
    )
    return create, update, access


def pack(st: struct.Struct, *values: object) -> bytes:
    """``st.pack(*values)``, with encoding failures as LocalProtocolError."""
    try:
        return st.pack(*values)
    except (struct.error, TypeError, OverflowError) as exc:
        shown = ", ".join(check.describe(value) for value in values)
        raise LocalProtocolError(f"cannot encode ({shown}): {exc}") from exc


def write_objects(
    buf: bytearray, values: Iterable[object], hint: int | None = None, ctx: Ctx = None
) -> None:
    """Append ``i32 n | n x obj`` (a bare counted list, no collection type code)."""
    items = check.items(values, "values")
    buf += pack(_I32, len(items))
    for item in items:
        write_value(buf, item, hint, ctx=ctx)


def write_string(buf: bytearray, value: str | None, what: str = "string") -> None:
    """Append a typed String (or NULL for None)."""
    write_value(buf, check.optional_str(value, what), TypeCode.STRING)


def write_raw_uuid(buf: bytearray, value: uuid.UUID) -> None:
    """Append ``i64 msb | i64 lsb`` without a type code."""
    if not isinstance(value, uuid.UUID):
        raise LocalProtocolError(f"expected a uuid.UUID, got {check.describe(value)}")
    buf += _UUID.pack(value.int >> 64, value.int & 0xFFFFFFFFFFFFFFFF)


# -- shared parsers --------------------------------------------------------------------------


def parse_empty(body: Buffer) -> None:
    """Parse the body of an operation that returns nothing."""
    if len(body):
        raise RemoteProtocolError(f"expected an empty body, got {len(body)} bytes")


def parse_bool(body: Buffer) -> bool:
    """``bool`` -> the flag (any non-zero byte is true, as in Java)."""
    reader = BodyReader(body)
    result = reader.flag()
    reader.finish("the bool")
    return result


def parse_i64(body: Buffer) -> int:
    """``i64`` -> the number."""
    reader = BodyReader(body)
    result = reader.i64()
    reader.finish("the long")
    return result


def parse_value(body: Buffer, ctx: Ctx = None) -> object:
    """``obj`` -> the value (None for NULL, e.g. an absent key)."""
    value, end = read_value(body, 0, ctx=ctx)
    if end != len(body):
        raise RemoteProtocolError(f"{len(body) - end} trailing bytes after the value")
    return value

"""Codecs for the standard scalar types: UUID, Date, Timestamp, Time, Decimal, Enum, BinaryEnum.

Decoders return uuid.UUID, decimal.Decimal and the value classes (Date, Timestamp, Time,
EnumValue), never datetime: Ignite's dates are plain millisecond counts and a datetime
could not hold every one of them (nor a Timestamp's nanoseconds). ``as_datetime`` and
``as_timedelta`` convert when wanted.

Encoders also take the natural Python types, following pyignite's automatic mapping:
uuid.UUID -> UUID, decimal.Decimal -> Decimal, datetime.datetime and datetime.date ->
Date, datetime.timedelta -> Time (plus datetime.time -> Time, which pyignite lacks).
Naive datetimes are taken as UTC (pyignite uses the local time zone; a codec without a
clock or time zone cannot), and sub-millisecond parts are floored, never rounded.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import struct
import uuid
from functools import lru_cache

from ..errors import LocalProtocolError, RemoteProtocolError
from ..hashing import type_id as _type_id
from ..limits import MAX_DECIMAL_DIGITS, MAX_DECIMAL_MAGNITUDE_BYTES
from ._engine import Buffer, LeafCodecs, NestedCodecs, PythonTypes, Reader, Writer
from .primitives import read_length
from .typecodes import TypeCode
from .values import Date, EnumValue, Time, Timestamp

__all__ = [
    "LEAF",
    "NESTED",
    "PYTHON_TYPES",
    "as_datetime",
    "as_timedelta",
    "date_ms",
    "decimal_parts",
    "read_class_name",
    "time_ms",
    "timestamp_parts",
]

_UUID = struct.Struct("<qq")  # msb, lsb as Java longs
_UUID_W = struct.Struct("<bQQ")
_I64 = struct.Struct("<q")
_I32 = struct.Struct("<i")
_CODE_I64 = struct.Struct("<bq")
_TIMESTAMP = struct.Struct("<qi")
_TIMESTAMP_W = struct.Struct("<bqi")
_DECIMAL_HEAD = struct.Struct("<ii")
_DECIMAL_HEAD_W = struct.Struct("<bii")
_ENUM = struct.Struct("<ii")
_ENUM_W = struct.Struct("<bii")

_MASK64 = (1 << 64) - 1
_I32_MIN, _I32_MAX = -(2**31), 2**31 - 1
_EPOCH_UTC = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_EPOCH_NAIVE = _dt.datetime(1970, 1, 1)
_MS = _dt.timedelta(milliseconds=1)
_US = _dt.timedelta(microseconds=1)
_STRING = TypeCode.STRING.value


# -- conversions ------------------------------------------------------------------------


def _epoch_us(value: _dt.date) -> int:
    """Microseconds since the epoch; naive datetimes are UTC, dates are UTC midnight."""
    if isinstance(value, _dt.datetime):
        epoch = _EPOCH_NAIVE if value.tzinfo is None else _EPOCH_UTC
        return (value - epoch) // _US
    return (value - _EPOCH_NAIVE.date()).days * 86_400_000_000


def date_ms(value: object) -> int:
    """A Date value (Date, datetime, date, or an int of ms) as epoch milliseconds."""
    if type(value) is Date:
        return value.epoch_ms
    if isinstance(value, _dt.date):
        return _epoch_us(value) // 1000
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise LocalProtocolError(f"a DATE must be a Date, datetime or date, got {type(value).__name__}")


def timestamp_parts(value: object) -> tuple[int, int]:
    """A Timestamp value (Timestamp, datetime, date, int ms) as (epoch ms, nanos in that ms)."""
    if type(value) is Timestamp:
        if not 0 <= value.nanos <= 999_999:
            raise LocalProtocolError(f"Timestamp nanos must be 0..999999, got {value.nanos}")
        return value.epoch_ms, value.nanos
    if isinstance(value, _dt.date):
        us = _epoch_us(value)
        return us // 1000, (us % 1000) * 1000
    if isinstance(value, Date):
        return value.epoch_ms, 0
    if isinstance(value, int) and not isinstance(value, bool):
        return value, 0
    raise LocalProtocolError(
        f"a TIMESTAMP must be a Timestamp, datetime or date, got {type(value).__name__}"
    )


def time_ms(value: object) -> int:
    """A Time value (Time, timedelta, datetime.time, int ms) as milliseconds since midnight."""
    if type(value) is Time:
        return value.ms
    if isinstance(value, _dt.timedelta):
        return value // _MS
    if isinstance(value, _dt.time):
        return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + (
            value.microsecond // 1000
        )
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise LocalProtocolError(f"a TIME must be a Time or timedelta, got {type(value).__name__}")


def as_datetime(value: Date | Timestamp) -> _dt.datetime:
    """An aware UTC datetime for a Date or Timestamp (microseconds floored; OverflowError
    outside datetime's years 1..9999)."""
    us = value.epoch_ms * 1000
    if isinstance(value, Timestamp):
        us += value.nanos // 1000
    return _EPOCH_UTC + _dt.timedelta(microseconds=us)


def as_timedelta(value: Time) -> _dt.timedelta:
    """The timedelta since midnight of a Time."""
    return _dt.timedelta(milliseconds=value.ms)


def decimal_parts(value: object) -> tuple[int, bytes]:
    """(scale, magnitude bytes) as Java's writer produces them for a BigDecimal.

    The magnitude is ``BigInteger.toByteArray()`` of the absolute unscaled value (big
    endian, minimal, with room for a sign bit); a negative value sets the top bit of the
    first byte. The exponent is kept as given: Decimal('1.50') has scale 2, like
    ``new BigDecimal("1.50")``. Zero is never negative in Java. At most MAX_DECIMAL_DIGITS
    digits, and a scale that fits Java's int.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        if not -_DECIMAL_BOUND < value < _DECIMAL_BOUND:  # no decimal conversion at all
            raise LocalProtocolError(f"a DECIMAL has at most {MAX_DECIMAL_DIGITS} digits")
        return 0, _magnitude(abs(value), value < 0)
    if not isinstance(value, decimal.Decimal):
        raise LocalProtocolError(f"a DECIMAL must be a Decimal, got {type(value).__name__}")
    if not value.is_finite():
        raise LocalProtocolError(f"a DECIMAL must be finite, got {value}")
    sign, digits, exponent = value.as_tuple()
    if len(digits) > MAX_DECIMAL_DIGITS:
        raise LocalProtocolError(
            f"a DECIMAL has at most {MAX_DECIMAL_DIGITS} digits, got {len(digits)}"
        )
    scale = -int(exponent)
    if not _I32_MIN <= scale <= _I32_MAX:
        raise LocalProtocolError(f"a DECIMAL's scale must fit a Java int, got {scale}")
    unscaled = _digits_to_int(bytes(digits).translate(_DIGIT_TO_ASCII))
    return scale, _magnitude(unscaled, bool(sign))


def _magnitude(unscaled: int, negative: bool) -> bytes:
    magnitude = bytearray(unscaled.to_bytes(unscaled.bit_length() // 8 + 1, "big"))
    if negative and unscaled:
        magnitude[0] |= 0x80
    return bytes(magnitude)


# CPython converts between a long int and decimal digits in quadratic time (int(str),
# str(int), int(Decimal), Decimal(int)). Splitting in halves joined by one multiplication
# (Karatsuba in both int and libmpdec) makes it ~O(n^1.6): ~0.1 ms at MAX_DECIMAL_DIGITS.
_SPLIT_DIGITS = 512  # int() of fewer digits is fast
_SPLIT_BITS = 2048  # so is Decimal() of a smaller int
_DECIMAL_BOUND = 10**MAX_DECIMAL_DIGITS
_DIGIT_TO_ASCII = bytes.maketrans(bytes(range(10)), b"0123456789")
# Exact arithmetic on integers up to the bound; a result that needed rounding would raise.
_EXACT = decimal.Context(
    prec=2 * MAX_DECIMAL_DIGITS + 16, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN,
    traps=[decimal.Inexact, decimal.Rounded, decimal.InvalidOperation, decimal.Overflow],
)


@lru_cache(maxsize=64)
def _pow10(n: int) -> int:
    power: int = 10**n  # n >= 0: typeshed types int ** int as Any (a negative n makes a float)
    return power


@lru_cache(maxsize=64)
def _pow2(n: int) -> decimal.Decimal:
    return _EXACT.power(decimal.Decimal(2), n)


def _digits_to_int(digits: bytes) -> int:
    """``int(digits)`` (ASCII decimal digits) without the quadratic cost."""
    n = len(digits)
    if n <= _SPLIT_DIGITS:
        return int(digits)
    low = n // 2
    return _digits_to_int(digits[:-low]) * _pow10(low) + _digits_to_int(digits[-low:])


def _int_to_decimal(value: int) -> decimal.Decimal:
    """``decimal.Decimal(value)`` of a non-negative int without the quadratic cost."""
    bits = value.bit_length()
    if bits <= _SPLIT_BITS:
        return decimal.Decimal(value)
    half = bits // 2
    high = _int_to_decimal(value >> half)
    low = _int_to_decimal(value & ((1 << half) - 1))
    return _EXACT.fma(high, _pow2(half), low)


def read_class_name(buf: Buffer, pos: int) -> tuple[str, int]:
    """The class-name String (type code 9) that follows a type id of 0."""
    if buf[pos] != _STRING:
        raise RemoteProtocolError(f"expected a class name string at offset {pos}")
    n, start = read_length(buf, pos + 1)
    end = start + n
    return str(buf[start:end], "utf-8"), end


def read_type_id(buf: Buffer, pos: int) -> tuple[int, str | None, int]:
    """An i32 type id; for 0, the class name that follows and the id it maps to."""
    (tid,) = _I32.unpack_from(buf, pos)
    pos += 4
    if tid != 0:
        return tid, None, pos
    name, pos = read_class_name(buf, pos)
    return _type_id(name), name, pos


# -- readers ---------------------------------------------------------------------------


def _read_uuid(buf: Buffer, pos: int) -> tuple[object, int]:
    msb, lsb = _UUID.unpack_from(buf, pos)
    return uuid.UUID(int=((msb & _MASK64) << 64) | (lsb & _MASK64)), pos + 16


def _read_date(buf: Buffer, pos: int) -> tuple[object, int]:
    return Date(_I64.unpack_from(buf, pos)[0]), pos + 8


def _read_timestamp(buf: Buffer, pos: int) -> tuple[object, int]:
    ms, nanos = _TIMESTAMP.unpack_from(buf, pos)
    return Timestamp(ms, nanos), pos + 12


def _read_time(buf: Buffer, pos: int) -> tuple[object, int]:
    return Time(_I64.unpack_from(buf, pos)[0]), pos + 8


def _read_decimal(buf: Buffer, pos: int) -> tuple[object, int]:
    scale, n = _DECIMAL_HEAD.unpack_from(buf, pos)
    start = pos + 8
    end = start + n
    if n <= 0 or end > len(buf):  # Java cannot read an empty magnitude either
        raise RemoteProtocolError(f"decimal magnitude length {n} at offset {pos + 4}")
    if n > MAX_DECIMAL_MAGNITUDE_BYTES:  # checked before any conversion
        raise RemoteProtocolError(
            f"decimal magnitude of {n} bytes at offset {pos + 4}: more than "
            f"{MAX_DECIMAL_DIGITS} digits"
        )
    first = buf[start]
    magnitude = int.from_bytes(bytes((first & 0x7F,)) + bytes(buf[start + 1 : end]), "big")
    coefficient = _int_to_decimal(magnitude)
    if coefficient.adjusted() >= MAX_DECIMAL_DIGITS:
        raise RemoteProtocolError(
            f"decimal at offset {pos} has more than {MAX_DECIMAL_DIGITS} digits"
        )
    value = _EXACT.scaleb(coefficient, -scale)  # exact: the coefficient, exponent -scale
    return (value.copy_negate() if first & 0x80 and magnitude else value), end


def _enum_reader(binary: bool) -> Reader:
    def read(buf: Buffer, pos: int) -> tuple[object, int]:
        (tid,) = _I32.unpack_from(buf, pos)
        if tid == 0:
            tid, _, pos = read_type_id(buf, pos)
        else:
            pos += 4
        (ordinal,) = _I32.unpack_from(buf, pos)
        return EnumValue(tid, ordinal, binary), pos + 4

    read.__name__ = "_read_binary_enum" if binary else "_read_enum"
    return read


# -- writers ---------------------------------------------------------------------------


def _write_uuid(buf: bytearray, value: object) -> None:
    if not isinstance(value, uuid.UUID):
        raise LocalProtocolError(f"a UUID must be a uuid.UUID, got {type(value).__name__}")
    n = value.int
    buf += _UUID_W.pack(TypeCode.UUID, n >> 64, n & _MASK64)


def _write_date(buf: bytearray, value: object) -> None:
    buf += _CODE_I64.pack(TypeCode.DATE, date_ms(value))


def _write_timestamp(buf: bytearray, value: object) -> None:
    buf += _TIMESTAMP_W.pack(TypeCode.TIMESTAMP, *timestamp_parts(value))


def _write_time(buf: bytearray, value: object) -> None:
    buf += _CODE_I64.pack(TypeCode.TIME, time_ms(value))


def _write_decimal(buf: bytearray, value: object) -> None:
    scale, magnitude = decimal_parts(value)
    buf += _DECIMAL_HEAD_W.pack(TypeCode.DECIMAL, scale, len(magnitude))
    buf += magnitude


def enum_parts(value: object) -> tuple[int, int]:
    """(type id, ordinal) of an EnumValue or a pyignite-style (type id, ordinal) tuple."""
    if isinstance(value, EnumValue):
        tid, ordinal = value.type_id, value.ordinal
    elif isinstance(value, tuple) and len(value) == 2:
        tid, ordinal = value
    else:
        raise LocalProtocolError(f"an ENUM must be an EnumValue, got {type(value).__name__}")
    if tid == 0:
        raise LocalProtocolError("an enum with type id 0 would need a class name")
    return tid, ordinal


def _enum_writer(code: TypeCode) -> Writer:
    def write(buf: bytearray, value: object) -> None:
        buf += _ENUM_W.pack(code, *enum_parts(value))

    write.__name__ = f"_write_{code.name.lower()}"
    return write


def _enum_code(value: object) -> int:
    return TypeCode.BINARY_ENUM if value.binary else TypeCode.ENUM  # type: ignore[attr-defined]


# -- the codecs, in one ordered place --------------------------------------------------------

LEAF: LeafCodecs = (
    (TypeCode.UUID, _read_uuid, _write_uuid),
    (TypeCode.DATE, _read_date, _write_date),
    (TypeCode.TIMESTAMP, _read_timestamp, _write_timestamp),
    (TypeCode.TIME, _read_time, _write_time),
    (TypeCode.DECIMAL, _read_decimal, _write_decimal),
    (TypeCode.ENUM, _enum_reader(False), _enum_writer(TypeCode.ENUM)),
    (TypeCode.BINARY_ENUM, _enum_reader(True), _enum_writer(TypeCode.BINARY_ENUM)),
)
NESTED: NestedCodecs = ()

PYTHON_TYPES: PythonTypes = (
    (uuid.UUID, TypeCode.UUID),
    (decimal.Decimal, TypeCode.DECIMAL),
    (_dt.datetime, TypeCode.DATE),  # before date: datetime is a date
    (_dt.date, TypeCode.DATE),
    (_dt.timedelta, TypeCode.TIME),
    (_dt.time, TypeCode.TIME),
    (Date, TypeCode.DATE),
    (Timestamp, TypeCode.TIMESTAMP),
    (Time, TypeCode.TIME),
    (EnumValue, _enum_code),
)

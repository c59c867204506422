"""The Java ``hashCode()`` behind pyignite's ``<hint>.hashcode(value)`` helpers, computed by
protocol.affinity (the routing code the broker uses), loaded on first use: it pulls in the
codec."""

from __future__ import annotations

from ..exceptions import ParameterError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def java_hash(value: Any, type_code: int) -> int:
    """What Ignite computes for ``value`` stored with ``type_code`` (a key's hash)."""
    from protocol.affinity import UnroutableKeyError, key_hash

    try:
        return key_hash(value, type_code)
    except UnroutableKeyError as exc:
        raise ParameterError(f"no Java hash code for {value!r}: {exc}") from exc


def long_hash(value: int) -> int:
    """``Long.hashCode``: what java.util.Date, Timestamp and Time hash their milliseconds to."""
    from protocol.binary.typecodes import TypeCode

    return java_hash(value, TypeCode.LONG)


def datetime_ms(value: Any) -> int:
    """Milliseconds since the epoch as pyignite counts them (a naive datetime is local time)."""
    return int(value.timestamp() * 1000)


def object_hash(obj: Any) -> int:
    """The header hash Ignite stores for a complex object: the hash of its field bytes.

    Fields are encoded with their schema hints by protocol's codec, exactly as they go to the
    node; a field value the codec does not take as it is (pyignite's tuples for Timestamp,
    datetimes, collections ...) raises ParameterError.
    """
    import protocol.binary.primitives  # noqa: F401  (registers the codec before the registry)
    from protocol.affinity import UnroutableKeyError, key_hash
    from protocol.binary.registry import CodecContext, Registry

    try:
        return key_hash(_as_protocol(obj), ctx=CodecContext(Registry()))
    except UnroutableKeyError as exc:
        raise ParameterError(f"cannot compute the hash code of {obj!r}: {exc}") from exc


def _as_protocol(obj: Any) -> Any:
    from protocol.binary.values import BinaryObject, Typed

    fields = {}
    for name, hint in obj._schema.items():
        value = getattr(obj, name, None)
        if value is None:
            fields[name] = None
        elif hasattr(type(value), "_schema"):
            fields[name] = _as_protocol(value)
        else:
            fields[name] = Typed(hint.type_code[0], value)
    return BinaryObject(type(obj).type_id, fields, type(obj).type_name)

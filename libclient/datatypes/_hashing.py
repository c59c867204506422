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
    """The header hash Ignite stores for a complex object: the hash of its field bytes, encoded
    with their schema hints exactly as they go to the node (libclient.wire's values, written
    by protocol's codec)."""
    from protocol.affinity import UnroutableKeyError, key_hash
    from protocol.binary.registry import CodecContext, Registry

    from ..binary import Registry as ClassRegistry
    from ..wire import Codec

    try:
        value = Codec(ClassRegistry()).encode(obj)
        return key_hash(value, ctx=CodecContext(Registry()))
    except (UnroutableKeyError, TypeError) as exc:
        raise ParameterError(f"cannot compute the hash code of {obj!r}: {exc}") from exc

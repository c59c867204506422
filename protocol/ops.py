"""Request-body builders and response-body parsers for the cache key/value and cache-management ops.

Builders return the body only; frame it with ``ClientConnection.send_request(op, body)``.
Parsers take ``Response.body`` (bytes or memoryview) and raise RemoteProtocolError on
malformed bodies, including **trailing bytes**: every parser here consumes its body exactly.
Builders raise LocalProtocolError for arguments that cannot be encoded.

Builders do not know the negotiated version: the caller must not ask for transactions
below 1.5.0 or expiry policies below 1.6.0. Key/value builders share one signature shape,
``cache_<op>(cache_id, <args>, *, key_hint=None, value_hint=None, flags=0, tx_id=None,
expiry=None, ctx=None)``; ``cache_get``/``cache_put`` keep their older positional hints.
``ctx`` is handed to the value codec (the binary-type registry for complex objects) and may
be None while only built-in types are involved.

``BodyReader`` (reading) and ``pack`` / ``write_*`` (writing), shared with the other op
modules, live in ``protocol._body`` and are re-exported here.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final

from . import _checks as check
from ._body import (
    _I32,
    _PREFIX,
    FLAG_KEEP_BINARY,
    FLAG_TRANSACTIONAL,
    FLAG_WITH_EXPIRY_POLICY,
    TTL_ETERNAL,
    TTL_UNCHANGED,
    BodyReader,
    Expiry,
    cache_prefix_size,
    check_expiry,
    pack,
    parse_bool,
    parse_empty,
    parse_i64,
    parse_value,
    read_obj,
    write_cache_prefix,
    write_obj,
    write_objects,
    write_raw_uuid,
    write_string,
)
from .binary import TypeCode, read_value, write_value
from .binary.codec import Buffer
from .cacheconfig import build_cache_config, parse_cache_config
from .errors import LocalProtocolError, RemoteProtocolError

if TYPE_CHECKING:
    from ._body import Ctx as Ctx

__all__ = [
    "FLAG_KEEP_BINARY",
    "FLAG_TRANSACTIONAL",
    "FLAG_WITH_EXPIRY_POLICY",
    "PEEK_MODES",
    "TTL_ETERNAL",
    "TTL_UNCHANGED",
    "BodyReader",
    "Expiry",
    "PeekMode",
    "cache_clear",
    "cache_clear_key",
    "cache_clear_keys",
    "cache_contains_key",
    "cache_contains_keys",
    "cache_create_with_configuration",
    "cache_create_with_name",
    "cache_destroy",
    "cache_get",
    "cache_get_all",
    "cache_get_and_put",
    "cache_get_and_put_if_absent",
    "cache_get_and_remove",
    "cache_get_and_replace",
    "cache_get_configuration",
    "cache_get_names",
    "cache_get_or_create_with_configuration",
    "cache_get_or_create_with_name",
    "cache_get_size",
    "cache_local_peek",
    "cache_prefix_size",
    "cache_put",
    "cache_put_all",
    "cache_put_if_absent",
    "cache_remove_all",
    "cache_remove_if_equals",
    "cache_remove_key",
    "cache_remove_keys",
    "cache_replace",
    "cache_replace_if_equals",
    "check_expiry",
    "pack",
    "parse_bool",
    "parse_cache_clear",
    "parse_cache_clear_key",
    "parse_cache_clear_keys",
    "parse_cache_contains_key",
    "parse_cache_contains_keys",
    "parse_cache_create_with_configuration",
    "parse_cache_create_with_name",
    "parse_cache_destroy",
    "parse_cache_get",
    "parse_cache_get_all",
    "parse_cache_get_and_put",
    "parse_cache_get_and_put_if_absent",
    "parse_cache_get_and_remove",
    "parse_cache_get_and_replace",
    "parse_cache_get_configuration",
    "parse_cache_get_names",
    "parse_cache_get_or_create_with_configuration",
    "parse_cache_get_or_create_with_name",
    "parse_cache_get_size",
    "parse_cache_local_peek",
    "parse_cache_put",
    "parse_cache_put_all",
    "parse_cache_put_if_absent",
    "parse_cache_remove_all",
    "parse_cache_remove_if_equals",
    "parse_cache_remove_key",
    "parse_cache_remove_keys",
    "parse_cache_replace",
    "parse_cache_replace_if_equals",
    "parse_empty",
    "parse_i64",
    "parse_value",
    "read_obj",
    "write_cache_prefix",
    "write_obj",
    "write_objects",
    "write_raw_uuid",
    "write_string",
]

class PeekMode:
    """CachePeekMode ordinals for CACHE_GET_SIZE / CACHE_LOCAL_PEEK (pyignite's PeekModes)."""

    ALL: Final = 0
    NEAR: Final = 1
    PRIMARY: Final = 2
    BACKUP: Final = 3
    ONHEAP: Final = 4
    OFFHEAP: Final = 5


PEEK_MODES = frozenset(range(PeekMode.ALL, PeekMode.OFFHEAP + 1))
"""The CachePeekMode ordinals a node reads."""



def _keyed(cache_id: int, flags: int, tx_id: int | None, expiry: Expiry | None) -> bytearray:
    if tx_id is None and expiry is None and flags == 0 and type(flags) is int:  # the usual
        try:
            return bytearray(_PREFIX.pack(cache_id, 0))
        except (struct.error, TypeError):
            check.i32(cache_id, "cache id")  # raises the LocalProtocolError naming it
    buf = bytearray()
    write_cache_prefix(buf, cache_id, flags, tx_id, expiry)
    return buf


def _peek_modes(buf: bytearray, modes: Iterable[int]) -> None:
    items = [check.one_of(m, PEEK_MODES, "peek mode") for m in check.items(modes, "peek_modes")]
    buf += pack(_I32, len(items)) + bytes(items)


# -- caches: create, list, configuration, destroy ----------------------------------------------


def cache_get_names() -> bytes:
    """Body of CACHE_GET_NAMES (1050): empty."""
    return b""


def parse_cache_get_names(body: Buffer) -> list[str]:
    """``i32 n | n x str`` -> the cache names.  Ignite 2.17 writes n from a live view of its
    caches, then the names it iterates from that view: a cache started or destroyed in between
    makes them disagree (a fuzz run met it), so n is only checked for sign and every name the
    body holds is read."""
    reader = BodyReader(body)
    if reader.i32() < 0:
        raise RemoteProtocolError("negative cache name count")
    names = []
    while reader.remaining:
        names.append(reader.required_string("cache name"))
    return names


def cache_create_with_name(name: str) -> bytes:
    """Body of CACHE_CREATE_WITH_NAME (1051): ``str name``; status 1001 if it exists."""
    return _cache_name_body(name)


def cache_get_or_create_with_name(name: str) -> bytes:
    """Body of CACHE_GET_OR_CREATE_WITH_NAME (1052): ``str name``."""
    return _cache_name_body(name)


def _cache_name_body(name: str) -> bytes:
    buf = bytearray()
    write_value(buf, check.required_str(name, "cache name"), TypeCode.STRING)
    return bytes(buf)


parse_cache_create_with_name = parse_empty
parse_cache_get_or_create_with_name = parse_empty


def cache_create_with_configuration(
    config: Mapping[int, Any], *, version: tuple[int, int, int], ctx: Ctx = None
) -> bytes:
    """Body of CACHE_CREATE_WITH_CONFIGURATION (1053); see ``cacheconfig.build_cache_config``.

    Status 1001 if the cache exists.
    """
    return build_cache_config(config, version=version, ctx=ctx)


def cache_get_or_create_with_configuration(
    config: Mapping[int, Any], *, version: tuple[int, int, int], ctx: Ctx = None
) -> bytes:
    """Body of CACHE_GET_OR_CREATE_WITH_CONFIGURATION (1054): same layout as 1053."""
    return cache_create_with_configuration(config, version=version, ctx=ctx)


parse_cache_create_with_configuration = parse_empty
parse_cache_get_or_create_with_configuration = parse_empty


def cache_get_configuration(cache_id: int, *, flags: int = 0) -> bytes:
    """Body of CACHE_GET_CONFIGURATION (1055): ``i32 cache_id | i8 flags`` (no tx, no expiry:
    those flags would make the node read fields that are not there)."""
    return pack(_PREFIX, cache_id, check.one_of(flags, (0, FLAG_KEEP_BINARY), "flags"))


def parse_cache_get_configuration(
    body: Buffer, *, version: tuple[int, int, int], ctx: Ctx = None
) -> dict[int, Any]:
    """The 1055 configuration struct -> a dict keyed by property code (cacheconfig.Prop)."""
    return parse_cache_config(body, version=version, ctx=ctx)


def cache_destroy(cache_id: int) -> bytes:
    """Body of CACHE_DESTROY (1056): ``i32 cache_id`` (no flags)."""
    return pack(_I32, cache_id)


parse_cache_destroy = parse_empty


# -- key/value: single key -------------------------------------------------------------------


def cache_get(
    cache_id: int,
    key: object,
    key_hint: int | None = None,
    flags: int = 0,
    tx_id: int | None = None,
    *,
    expiry: Expiry | None = None,
    ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_GET (1000): ``prefix | key``."""
    buf = _keyed(cache_id, flags, tx_id, expiry)
    write_value(buf, key, key_hint, ctx=ctx)
    return bytes(buf)


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
    ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_PUT (1001): ``prefix | key | value``."""
    buf = _keyed(cache_id, flags, tx_id, expiry)
    write_value(buf, key, key_hint, ctx=ctx)
    write_value(buf, value, value_hint, ctx=ctx)
    return bytes(buf)


def _key_body(
    cache_id: int, key: object, key_hint: int | None, flags: int, tx_id: int | None,
    expiry: Expiry | None, ctx: Ctx,
) -> bytearray:
    buf = _keyed(cache_id, flags, tx_id, expiry)
    write_obj(buf, key, key_hint, ctx)
    return buf


def _key_value_body(
    cache_id: int, key: object, value: object, key_hint: int | None, value_hint: int | None,
    flags: int, tx_id: int | None, expiry: Expiry | None, ctx: Ctx,
) -> bytes:
    buf = _key_body(cache_id, key, key_hint, flags, tx_id, expiry, ctx)
    write_obj(buf, value, value_hint, ctx)
    return bytes(buf)


def cache_put_if_absent(
    cache_id: int, key: object, value: object, *, key_hint: int | None = None,
    value_hint: int | None = None, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_PUT_IF_ABSENT (1002): ``prefix | key | value`` -> bool."""
    return _key_value_body(cache_id, key, value, key_hint, value_hint, flags, tx_id, expiry, ctx)


def cache_get_and_put(
    cache_id: int, key: object, value: object, *, key_hint: int | None = None,
    value_hint: int | None = None, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_GET_AND_PUT (1005): ``prefix | key | value`` -> old value."""
    return _key_value_body(cache_id, key, value, key_hint, value_hint, flags, tx_id, expiry, ctx)


def cache_get_and_replace(
    cache_id: int, key: object, value: object, *, key_hint: int | None = None,
    value_hint: int | None = None, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_GET_AND_REPLACE (1006): ``prefix | key | value`` -> old value."""
    return _key_value_body(cache_id, key, value, key_hint, value_hint, flags, tx_id, expiry, ctx)


def cache_get_and_put_if_absent(
    cache_id: int, key: object, value: object, *, key_hint: int | None = None,
    value_hint: int | None = None, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_GET_AND_PUT_IF_ABSENT (1008): ``prefix | key | value`` -> current value."""
    return _key_value_body(cache_id, key, value, key_hint, value_hint, flags, tx_id, expiry, ctx)


def cache_replace(
    cache_id: int, key: object, value: object, *, key_hint: int | None = None,
    value_hint: int | None = None, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_REPLACE (1009): ``prefix | key | value`` -> bool."""
    return _key_value_body(cache_id, key, value, key_hint, value_hint, flags, tx_id, expiry, ctx)


def cache_replace_if_equals(
    cache_id: int, key: object, expected: object, value: object, *,
    key_hint: int | None = None, value_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_REPLACE_IF_EQUALS (1010): ``prefix | key | expected | new`` -> bool.

    ``value_hint`` applies to both the expected and the new value.
    """
    buf = _key_body(cache_id, key, key_hint, flags, tx_id, expiry, ctx)
    write_obj(buf, expected, value_hint, ctx)
    write_obj(buf, value, value_hint, ctx)
    return bytes(buf)


def cache_get_and_remove(
    cache_id: int, key: object, *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_GET_AND_REMOVE (1007): ``prefix | key`` -> old value."""
    return bytes(_key_body(cache_id, key, key_hint, flags, tx_id, expiry, ctx))


def cache_contains_key(
    cache_id: int, key: object, *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_CONTAINS_KEY (1011): ``prefix | key`` -> bool."""
    return bytes(_key_body(cache_id, key, key_hint, flags, tx_id, expiry, ctx))


def cache_clear_key(
    cache_id: int, key: object, *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_CLEAR_KEY (1014): ``prefix | key`` -> nothing."""
    return bytes(_key_body(cache_id, key, key_hint, flags, tx_id, expiry, ctx))


def cache_remove_key(
    cache_id: int, key: object, *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_REMOVE_KEY (1016): ``prefix | key`` -> bool."""
    return bytes(_key_body(cache_id, key, key_hint, flags, tx_id, expiry, ctx))


def cache_remove_if_equals(
    cache_id: int, key: object, expected: object, *, key_hint: int | None = None,
    value_hint: int | None = None, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_REMOVE_IF_EQUALS (1017): ``prefix | key | expected`` -> bool."""
    return _key_value_body(
        cache_id, key, expected, key_hint, value_hint, flags, tx_id, expiry, ctx
    )


def cache_local_peek(
    cache_id: int, key: object, peek_modes: Iterable[int] = (), *,
    key_hint: int | None = None, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_LOCAL_PEEK (1021): ``prefix | key | i32 n | n x i8 mode`` -> value.

    Ignite 2.17 reads only the key and always peeks with ALL; the modes are sent anyway,
    as pyignite does, and the server ignores them.
    """
    buf = _key_body(cache_id, key, key_hint, flags, tx_id, expiry, ctx)
    _peek_modes(buf, peek_modes)
    return bytes(buf)


# -- key/value: several keys, whole cache ------------------------------------------------------


def _keys_body(
    cache_id: int, keys: Iterable[object], key_hint: int | None, flags: int,
    tx_id: int | None, expiry: Expiry | None, ctx: Ctx,
) -> bytes:
    buf = _keyed(cache_id, flags, tx_id, expiry)
    write_objects(buf, keys, key_hint, ctx)
    return bytes(buf)


def cache_get_all(
    cache_id: int, keys: Iterable[object], *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_GET_ALL (1003): ``prefix | i32 n | n x key`` -> found (key, value) pairs."""
    return _keys_body(cache_id, keys, key_hint, flags, tx_id, expiry, ctx)


def cache_contains_keys(
    cache_id: int, keys: Iterable[object], *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_CONTAINS_KEYS (1012): ``prefix | i32 n | n x key`` -> bool (all present)."""
    return _keys_body(cache_id, keys, key_hint, flags, tx_id, expiry, ctx)


def cache_clear_keys(
    cache_id: int, keys: Iterable[object], *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_CLEAR_KEYS (1015): ``prefix | i32 n | n x key`` -> nothing."""
    return _keys_body(cache_id, keys, key_hint, flags, tx_id, expiry, ctx)


def cache_remove_keys(
    cache_id: int, keys: Iterable[object], *, key_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_REMOVE_KEYS (1018): ``prefix | i32 n | n x key`` -> nothing."""
    return _keys_body(cache_id, keys, key_hint, flags, tx_id, expiry, ctx)


def cache_put_all(
    cache_id: int, pairs: Mapping[Any, Any] | Iterable[tuple[Any, Any]], *,
    key_hint: int | None = None, value_hint: int | None = None, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None, ctx: Ctx = None,
) -> bytes:
    """Body of CACHE_PUT_ALL (1004): ``prefix | i32 n | n x (key, value)`` -> nothing.

    ``pairs`` is a mapping or an iterable of (key, value) pairs (keys that are not
    hashable in Python, such as lists, need the pair form).
    """
    items = _pairs(pairs)
    buf = _keyed(cache_id, flags, tx_id, expiry)
    buf += pack(_I32, len(items))
    for key, value in items:
        write_value(buf, key, key_hint, ctx=ctx)
        write_value(buf, value, value_hint, ctx=ctx)
    return bytes(buf)


def _pairs(pairs: Mapping[Any, Any] | Iterable[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    if isinstance(pairs, Mapping):
        return list(pairs.items())
    items = check.items(pairs, "pairs")
    for item in items:
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise LocalProtocolError(f"expected a (key, value) pair, got {check.describe(item)}")
    return [(k, v) for k, v in items]


def cache_clear(
    cache_id: int, *, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None,
) -> bytes:
    """Body of CACHE_CLEAR (1013): ``prefix`` -> nothing."""
    return bytes(_keyed(cache_id, flags, tx_id, expiry))


def cache_remove_all(
    cache_id: int, *, flags: int = 0, tx_id: int | None = None,
    expiry: Expiry | None = None,
) -> bytes:
    """Body of CACHE_REMOVE_ALL (1019): ``prefix`` -> nothing."""
    return bytes(_keyed(cache_id, flags, tx_id, expiry))


def cache_get_size(
    cache_id: int, peek_modes: Iterable[int] = (), *, flags: int = 0,
    tx_id: int | None = None, expiry: Expiry | None = None,
) -> bytes:
    """Body of CACHE_GET_SIZE (1020): ``prefix | i32 n | n x i8 peek mode`` -> i64.

    No modes means the server default (ALL).
    """
    buf = _keyed(cache_id, flags, tx_id, expiry)
    _peek_modes(buf, peek_modes)
    return bytes(buf)


# -- key/value parsers -------------------------------------------------------------------------


def parse_cache_get(body: Buffer, ctx: Ctx = None) -> object:
    """``obj`` -> the value (None when the key is absent)."""
    return parse_value(body, ctx)


def parse_cache_get_all(body: Buffer, ctx: Ctx = None) -> list[tuple[object, object]]:
    """``i32 n | n x (key, value)`` -> the pairs found, in the server's order."""
    reader = BodyReader(body, ctx=ctx)
    n = reader.count(min_item_size=2)
    pos = reader.pos
    pairs = []
    for _ in range(n):
        key, pos = read_value(body, pos, ctx=ctx)
        value, pos = read_value(body, pos, ctx=ctx)
        pairs.append((key, value))
    reader.pos = pos
    reader.finish("the entries")
    return pairs


parse_cache_put = parse_empty
parse_cache_put_all = parse_empty
parse_cache_clear = parse_empty
parse_cache_clear_key = parse_empty
parse_cache_clear_keys = parse_empty
parse_cache_remove_keys = parse_empty
parse_cache_remove_all = parse_empty

parse_cache_put_if_absent = parse_bool
parse_cache_replace = parse_bool
parse_cache_replace_if_equals = parse_bool
parse_cache_contains_key = parse_bool
parse_cache_contains_keys = parse_bool
parse_cache_remove_key = parse_bool
parse_cache_remove_if_equals = parse_bool

parse_cache_get_and_put = parse_value
parse_cache_get_and_replace = parse_value
parse_cache_get_and_remove = parse_value
parse_cache_get_and_put_if_absent = parse_value
parse_cache_local_peek = parse_value

parse_cache_get_size = parse_i64

"""Key-value cache operations: one table row per IPC op, all served by one generic handler."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol import OpCode, ops
from protocol.binary.codec import encode_value
from protocol.ipc import Request

from . import bounds
from .calls import ReplyFn
from .context import Context, Handler, simple_call
from .lookups import arg
from .workers import Worker


@dataclass(frozen=True, slots=True)
class KeyValueOp:
    code: OpCode
    build: Callable[..., bytes]
    parse: Callable[..., Any]
    params: tuple[str, ...]  # IPC arguments passed after the cache id, in order
    idempotent: bool
    takes_values: bool = True  # the builder encodes values (and takes ctx)
    returns_values: bool = False  # the parser decodes values (and takes ctx)


_VALUE, _BOOL, _NONE = ops.parse_value, ops.parse_bool, ops.parse_empty

# fmt: off
KEY_VALUE_OPS: dict[str, KeyValueOp] = {
    "cache_get": KeyValueOp(OpCode.CACHE_GET, ops.cache_get, _VALUE, ("key",), True,
                            returns_values=True),
    "cache_put": KeyValueOp(OpCode.CACHE_PUT, ops.cache_put, _NONE, ("key", "value"), False),
    "cache_get_all": KeyValueOp(OpCode.CACHE_GET_ALL, ops.cache_get_all,
                                ops.parse_cache_get_all, ("keys",), True, returns_values=True),
    "cache_put_all": KeyValueOp(OpCode.CACHE_PUT_ALL, ops.cache_put_all, _NONE, ("pairs",),
                                False),
    "cache_replace": KeyValueOp(OpCode.CACHE_REPLACE, ops.cache_replace, _BOOL,
                                ("key", "value"), False),
    "cache_contains_key": KeyValueOp(OpCode.CACHE_CONTAINS_KEY, ops.cache_contains_key, _BOOL,
                                     ("key",), True),
    "cache_contains_keys": KeyValueOp(OpCode.CACHE_CONTAINS_KEYS, ops.cache_contains_keys,
                                      _BOOL, ("keys",), True),
    "cache_get_and_put": KeyValueOp(OpCode.CACHE_GET_AND_PUT, ops.cache_get_and_put, _VALUE,
                                    ("key", "value"), False, returns_values=True),
    "cache_get_and_put_if_absent": KeyValueOp(
        OpCode.CACHE_GET_AND_PUT_IF_ABSENT, ops.cache_get_and_put_if_absent, _VALUE,
        ("key", "value"), False, returns_values=True),
    "cache_put_if_absent": KeyValueOp(OpCode.CACHE_PUT_IF_ABSENT, ops.cache_put_if_absent,
                                      _BOOL, ("key", "value"), False),
    "cache_get_and_remove": KeyValueOp(OpCode.CACHE_GET_AND_REMOVE, ops.cache_get_and_remove,
                                       _VALUE, ("key",), False, returns_values=True),
    "cache_get_and_replace": KeyValueOp(OpCode.CACHE_GET_AND_REPLACE,
                                        ops.cache_get_and_replace, _VALUE, ("key", "value"),
                                        False, returns_values=True),
    "cache_remove_key": KeyValueOp(OpCode.CACHE_REMOVE_KEY, ops.cache_remove_key, _BOOL,
                                   ("key",), False),
    "cache_remove_keys": KeyValueOp(OpCode.CACHE_REMOVE_KEYS, ops.cache_remove_keys, _NONE,
                                    ("keys",), False),
    "cache_remove_all": KeyValueOp(OpCode.CACHE_REMOVE_ALL, ops.cache_remove_all, _NONE, (),
                                   False, takes_values=False),
    "cache_remove_if_equals": KeyValueOp(OpCode.CACHE_REMOVE_IF_EQUALS,
                                         ops.cache_remove_if_equals, _BOOL, ("key", "sample"),
                                         False),
    "cache_replace_if_equals": KeyValueOp(OpCode.CACHE_REPLACE_IF_EQUALS,
                                          ops.cache_replace_if_equals, _BOOL,
                                          ("key", "sample", "value"), False),
    "cache_clear": KeyValueOp(OpCode.CACHE_CLEAR, ops.cache_clear, _NONE, (), False,
                              takes_values=False),
    "cache_clear_key": KeyValueOp(OpCode.CACHE_CLEAR_KEY, ops.cache_clear_key, _NONE, ("key",),
                                  False),
    "cache_clear_keys": KeyValueOp(OpCode.CACHE_CLEAR_KEYS, ops.cache_clear_keys, _NONE,
                                   ("keys",), False),
    "cache_get_size": KeyValueOp(OpCode.CACHE_GET_SIZE, ops.cache_get_size, ops.parse_i64,
                                 ("peek_modes",), True, takes_values=False),
}
# fmt: on

_LISTS = {"keys", "pairs", "peek_modes"}
_MISSING = object()
#: CachePeekMode ordinals, from the protocol's PeekMode.
_KEY_AFTER_PREFIX = ops.cache_prefix_size()
_KEY_AFTER_EXPIRY = ops.cache_prefix_size(expiry=True)
_PEEK_MODES = frozenset(v for k, v in vars(ops.PeekMode).items() if k.isupper())


def _take(args: dict[str, Any], params: tuple[tuple[str, type], ...],
          limits: Any) -> list[Any]:
    """The values of ``params`` (name, kind) from a request's args, checked like ``arg``;
    lists within their bounds (broker/bounds.py)."""
    values = []
    for name, kind in params:
        value = args.get(name, _MISSING)
        if value is _MISSING or (kind is list and type(value) is not list):
            value = arg(args, name, kind)  # the BadRequest, or a list subclass
        if kind is list:
            bounds.count(value, name, limits)
            if name == "peek_modes":
                bounds.members(value, name, _PEEK_MODES)
        values.append(value)
    return values


def _empty_bytes_guard(params: tuple[str, ...]) -> Callable[[Any, list[Any]], None] | None:
    """For a write that stores values: bounds.stored_entry for each entry whose value is an
    empty byte array (rare: the key is encoded only then), positions found once per op."""
    if "pairs" in params:
        pairs_at = params.index("pairs")

        def each_pair(codec: Any, values: list[Any]) -> None:
            for item in values[pairs_at]:
                if (isinstance(item, list | tuple) and len(item) == 2
                        and bounds.is_empty_bytes(item[1])):
                    _refuse_big_key(codec, item[0])

        return each_pair
    if "value" in params:
        key_at, value_at = params.index("key"), params.index("value")

        def one_entry(codec: Any, values: list[Any]) -> None:
            if bounds.is_empty_bytes(values[value_at]):
                _refuse_big_key(codec, values[key_at])

        return one_entry
    return None


def _refuse_big_key(codec: Any, key: Any) -> None:
    encoded, _ = codec.encode(encode_value, key)
    bounds.stored_entry(len(encoded))


def _handler(spec: KeyValueOp) -> Handler:
    params = tuple((p, list if p in _LISTS else object) for p in spec.params)
    build, code, idempotent = spec.build, spec.code, spec.idempotent
    keyed = spec.params[:1] == ("key",)
    guard_empty_bytes = _empty_bytes_guard(spec.params)

    def handle(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
        args = request.args
        cid = context.cache_id(args)
        changes = context.cache_lifecycle
        if changes.changing and changes.hold(
                cid, lambda: context.run(worker, request, reply), context.deadline(request),
                reply):
            return  # the cache is starting or stopping: after that (cachechanges.py)
        values = _take(args, params, context.limits)
        if guard_empty_bytes is not None:
            guard_empty_bytes(context.codec, values)
        tx = None if args.get("tx") is None else context.transaction(worker, args)
        expiry = None if args.get("expiry") is None else bounds.expiry(args["expiry"])
        codec = context.codec
        pending = None  # the binary types the values need registered first
        if tx is None and expiry is None:  # the common case: no options to pass
            if spec.takes_values:
                body, pending = codec.encode(build, cid, *values)
            else:
                body = build(cid, *values)
        else:
            options: dict[str, Any] = {"expiry": expiry}
            if tx is not None:
                options["tx_id"] = tx.tx_id
            if spec.takes_values:
                body, pending = codec.encode(build, cid, *values, **options)
            else:
                body = build(cid, *values, **options)
        parse = context.with_codec(spec.parse) if spec.returns_values else spec.parse
        # Key ops go to the key's primary node (the key follows the cache prefix); inside a
        # transaction, to the tx's connection.
        key_pos = -1
        if keyed and tx is None:
            key_pos = _KEY_AFTER_EXPIRY if expiry is not None else _KEY_AFTER_PREFIX
        simple_call(context, request, reply, code, body, parse, idempotent=idempotent,
                    pinned=tx.conn if tx else None, route_cache=cid, key_pos=key_pos,
                    pending_types=pending)

    return handle


HANDLERS = {name: _handler(spec) for name, spec in KEY_VALUE_OPS.items()}

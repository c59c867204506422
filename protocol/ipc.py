"""The msgpack message schema spoken between worker stubs and the broker (see docs/ipc.md).

This module is the single source of truth for the IPC envelope: version, status codes, error
kinds, ext type codes and the default endpoint.  It is pure: it packs and unpacks Python values
and never touches a socket.  msgpack is the only foreign library here, and its exceptions are
translated into :class:`IpcError` at this one boundary.
"""

from __future__ import annotations

import decimal
import enum
import uuid
from collections.abc import Callable, Mapping
from itertools import chain, compress
from operator import not_
from typing import Any, NamedTuple

import msgpack

from .binary.values import (
    BinaryObject,
    Collection,
    Date,
    EnumValue,
    Map,
    ObjectArray,
    Time,
    Timestamp,
    Typed,
)
from .limits import MAX_DECIMAL_DIGITS, MAX_NESTING
from .opcodes import OpCode

IPC_VERSION = 1
#: Largest request frame the broker accepts by default (bytes).
DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
DEFAULT_SOCKET_NAME = "broker.sock"
ENV_ENDPOINT = "IGNITE_BROKER"
#: The stub's label (``hello`` argument ``label``), when the Client is given none.
ENV_LABEL = "IGNITE_BROKER_LABEL"
#: A worker label: what the broker's metrics aggregate by, so short and plain.
MAX_LABEL_CHARS = 64
_LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-/@")
# A DECIMAL ext's text: the digits, a sign, a point, and at most 6 leading zeros ("0.000000")
# or an exponent ("E-" and up to 19 digits).
_MAX_DECIMAL_TEXT = MAX_DECIMAL_DIGITS + 24


#: Bytes of the session prefix a stub puts before each ZeroMQ routing id (docs/ipc.md,
#: "Liveness, sessions and ownership"): the sockets of one stub share its transactions.
SESSION_BYTES = 16


#: Every op the broker serves: its IPC name -> the Ignite op code it sends, which a stub reports
#: in its query events as pyignite does (None: answered by the broker itself, or several codes).
OPS: dict[str, int | None] = {
    "hello": None, "ping": None, "node_for": None, "cursor_next": None,
    "cache_get": OpCode.CACHE_GET, "cache_put": OpCode.CACHE_PUT,
    "cache_put_if_absent": OpCode.CACHE_PUT_IF_ABSENT, "cache_get_all": OpCode.CACHE_GET_ALL,
    "cache_put_all": OpCode.CACHE_PUT_ALL, "cache_get_and_put": OpCode.CACHE_GET_AND_PUT,
    "cache_get_and_replace": OpCode.CACHE_GET_AND_REPLACE,
    "cache_get_and_remove": OpCode.CACHE_GET_AND_REMOVE,
    "cache_get_and_put_if_absent": OpCode.CACHE_GET_AND_PUT_IF_ABSENT,
    "cache_replace": OpCode.CACHE_REPLACE,
    "cache_replace_if_equals": OpCode.CACHE_REPLACE_IF_EQUALS,
    "cache_contains_key": OpCode.CACHE_CONTAINS_KEY,
    "cache_contains_keys": OpCode.CACHE_CONTAINS_KEYS, "cache_clear": OpCode.CACHE_CLEAR,
    "cache_clear_key": OpCode.CACHE_CLEAR_KEY, "cache_clear_keys": OpCode.CACHE_CLEAR_KEYS,
    "cache_remove_key": OpCode.CACHE_REMOVE_KEY,
    "cache_remove_if_equals": OpCode.CACHE_REMOVE_IF_EQUALS,
    "cache_remove_keys": OpCode.CACHE_REMOVE_KEYS, "cache_remove_all": OpCode.CACHE_REMOVE_ALL,
    "cache_get_size": OpCode.CACHE_GET_SIZE, "cache_names": OpCode.CACHE_GET_NAMES,
    "cache_create": OpCode.CACHE_CREATE_WITH_NAME,
    "cache_get_or_create": OpCode.CACHE_GET_OR_CREATE_WITH_NAME,
    "cache_config": OpCode.CACHE_GET_CONFIGURATION, "cache_destroy": OpCode.CACHE_DESTROY,
    "scan": OpCode.QUERY_SCAN, "select_row": OpCode.QUERY_SQL, "sql": OpCode.QUERY_SQL_FIELDS,
    "cursor_close": OpCode.RESOURCE_CLOSE, "binary_type_get": OpCode.BINARY_TYPE_GET,
    "binary_type_put": OpCode.BINARY_TYPE_PUT, "tx_start": OpCode.TX_START,
    "tx_end": OpCode.TX_END, "cluster_get_state": OpCode.CLUSTER_GET_STATE,
    "cluster_set_state": OpCode.CLUSTER_CHANGE_STATE,
    "cluster_wal": OpCode.CLUSTER_GET_WAL_STATE,
    # one server query per cache and options, shared by every subscriber (broker/continuous.py)
    "cq_subscribe": None, "cq_unsubscribe": None,
}


class Status(enum.IntEnum):
    """Reply status: 0 is success, everything else names who failed and why."""

    OK = 0
    BAD_REQUEST = 1  # malformed envelope, wrong argument shapes, value cannot be encoded
    UNKNOWN_OP = 2
    UNSUPPORTED_VERSION = 3
    SERVER_ERROR = 4  # the Ignite node answered with an error status (see error["server_status"])
    OVERLOADED = 5  # admission control refused the request; nothing reached the cluster
    CLUSTER_UNAVAILABLE = 6  # no node could take the request (see error["maybe_applied"])
    DEADLINE_EXCEEDED = 7
    INTERNAL = 8  # a broker bug; the broker logged it and stays up
    TOO_LARGE = 9  # the request frame exceeded the broker's limit
    # The broker is stopping and did not process this request, nor will it: nothing of it
    # reached a node.  Send it again (a read or a write) to the next broker, on a new socket.
    NOT_PROCESSED = 10
    # unix:// only, request id 0: the last message of a stopping broker on this connection.
    # Every request sent on it that has no reply before this message was not processed (as
    # NOT_PROCESSED); the broker reads nothing more and closes it (HTTP/2's GOAWAY).
    GOING_AWAY = 11
    # Request id 0, not a reply: a continuous-query subscription's events (or its "missed" or
    # "ended" notice) pushed to the worker that subscribed; see EVENT_* below and docs/ipc.md.
    EVENT = 12


class ExtCode(enum.IntEnum):
    """msgpack ext type codes used for values that msgpack has no native type for."""

    TYPED = 1  # payload: msgpack [ignite_type_code, value]; an explicit pyignite-style type hint
    UUID = 2  # payload: the 16 RFC-4122 bytes
    DECIMAL = 3  # payload: str(decimal) as ASCII
    TIMESTAMP = 4  # payload: msgpack [epoch_ms, nanos_within_ms]
    DATE = 5  # payload: msgpack [epoch_ms]
    TIME = 6  # payload: msgpack [ms_since_midnight]
    ENUM = 7  # payload: msgpack [type_id, ordinal]
    OBJECT = 8  # payload: msgpack [type_name, type_id, {field: value}]
    COLLECTION = 9  # payload: msgpack [kind, [items]]
    MAP = 10  # payload: msgpack [kind, [[key, value], ...]]
    OBJECT_ARRAY = 11  # payload: msgpack [type_id, [items]]


class IpcError(Exception):
    """A frame that is not a valid IPC message."""


class NestingTooDeep(IpcError):
    """A message nests containers deeper than MAX_NESTING levels (BAD_REQUEST)."""

    def __init__(self, limit: int = MAX_NESTING) -> None:
        super().__init__(
            f"values nested deeper than {limit} levels (arrays, maps and ext values inside "
            "one another, the envelope included; protocol.limits.MAX_NESTING)"
        )
        self.limit = limit


def label_problem(label: object) -> str | None:
    """Why ``label`` cannot be a worker label, or None: 1 to MAX_LABEL_CHARS characters of
    ``A-Z a-z 0-9 _ . : - / @`` (e.g. ``celery:send_email``)."""
    if not isinstance(label, str):
        return f"a label is a string, not {type(label).__name__}"
    if not 0 < len(label) <= MAX_LABEL_CHARS:
        return f"a label has 1 to {MAX_LABEL_CHARS} characters, not {len(label)}"
    if not _LABEL_CHARS.issuperset(label):
        return "a label may hold only letters, digits and _ . : - / @"
    return None


class Request(NamedTuple):
    """One decoded request (a NamedTuple: immutable, and built at C speed per message)."""

    request_id: int
    op: str
    deadline_ms: int  # absolute, milliseconds since the Unix epoch; 0 means "no deadline"
    args: dict[str, Any]


class Reply(NamedTuple):
    """One decoded reply."""

    request_id: int
    status: int
    payload: Any  # the result when status == OK, else an error map (see error_payload)


#: The request id of a GOING_AWAY message (it answers no one request).
GOING_AWAY_REQUEST_ID = 0
#: ... and of an EVENT message.
EVENT_REQUEST_ID = 0

# The keys of an EVENT message's payload: ``{"sub": handle, "events": [[key, old_value,
# value, event_type], ...]}``, or instead of "events" one of "missed" (a reason: the broker
# re-established the subscription's query after losing it, events in between may be lost)
# and "ended" (an error map: the subscription is over, nothing more comes for it).
EVENT_SUB = "sub"
EVENT_EVENTS = "events"
EVENT_MISSED = "missed"
EVENT_ENDED = "ended"

#: The request id of a refusal of a frame the broker could not read the id of (TOO_LARGE,
#: BAD_REQUEST of an unreadable envelope, ZeroMQ OVERLOADED by the memory budget).
UNNAMED_REFUSAL_REQUEST_ID = 0
#: The key of a TOO_LARGE error map holding the broker's limit (bytes): the request(s) it
#: refuses are the stub's in-flight frames longer than that.
TOO_LARGE_LIMIT = "limit"
#: The key of such a refusal's error map holding the refused frame's length (bytes): a stub
#: with one in-flight frame of that length knows it is the one refused.
REFUSED_SIZE = "size"


def error_payload(
    kind: str,
    message: str,
    *,
    server_status: int | None = None,
    maybe_applied: bool | None = None,
) -> dict[str, Any]:
    """The error map carried in a non-OK reply."""
    return {
        "kind": kind,
        "message": message,
        "server_status": server_status,
        "maybe_applied": maybe_applied,
    }


def not_processed_payload() -> dict[str, Any]:
    """The error map of NOT_PROCESSED and GOING_AWAY (an older stub shows its message)."""
    return error_payload("not_processed", "the broker is stopping and did not process this "
                         "request: send it again to the next broker", maybe_applied=False)


# -- values -----------------------------------------------------------------------------------

# Each value class -> (ext code, its fields as a msgpack list); and back.
_TO_EXT: dict[type, tuple[int, Callable[[Any], list[Any]]]] = {
    Typed: (ExtCode.TYPED, lambda v: [v.type_code, v.value]),
    Timestamp: (ExtCode.TIMESTAMP, lambda v: [v.epoch_ms, v.nanos]),
    Date: (ExtCode.DATE, lambda v: [v.epoch_ms]),
    Time: (ExtCode.TIME, lambda v: [v.ms]),
    EnumValue: (ExtCode.ENUM, lambda v: [v.type_id, v.ordinal]),
    BinaryObject: (ExtCode.OBJECT, lambda v: [v.type_name, v.type_id, v.fields]),
    Collection: (ExtCode.COLLECTION, lambda v: [v.kind, v.items]),
    Map: (ExtCode.MAP, lambda v: [v.kind, [list(pair) for pair in v.items]]),
    ObjectArray: (ExtCode.OBJECT_ARRAY, lambda v: [v.type_id, v.items]),
}
_FROM_EXT: dict[int, Callable[[list[Any]], Any]] = {
    ExtCode.TYPED: lambda f: Typed(f[0], f[1]),
    ExtCode.TIMESTAMP: lambda f: Timestamp(f[0], f[1]),
    ExtCode.DATE: lambda f: Date(f[0]),
    ExtCode.TIME: lambda f: Time(f[0]),
    ExtCode.ENUM: lambda f: EnumValue(f[0], f[1]),
    ExtCode.OBJECT: lambda f: BinaryObject(f[1], dict(f[2]), type_name=f[0]),
    ExtCode.COLLECTION: lambda f: Collection(f[0], list(f[1])),
    ExtCode.MAP: lambda f: Map(f[0], [(k, v) for k, v in f[1]]),
    ExtCode.OBJECT_ARRAY: lambda f: ObjectArray(f[0], list(f[1])),
}


def _default_at(depth: int, texts: str | None = None) -> Callable[[Any], Any]:
    """msgpack's ``default`` for values ``depth`` ext levels deep.

    An ext value's payload is packed by a nested ``msgpack.packb`` with the next level's
    function, so packing recurses once per ext level: bounded here whatever the callers
    checked (a Collection that contains itself ends as NestingTooDeep, not a crash).
    """

    def default(value: Any) -> Any:
        to_ext = _TO_EXT.get(type(value))
        if to_ext is not None:
            if depth > MAX_NESTING:
                raise NestingTooDeep()
            code, fields = to_ext
            defaults = _DEFAULTS if texts is None else _LENIENT_DEFAULTS
            inner = _packb(fields(value), default=defaults[depth + 1], use_bin_type=True,
                           unicode_errors=texts)
            return msgpack.ExtType(code, inner)
        if isinstance(value, uuid.UUID):
            return msgpack.ExtType(ExtCode.UUID, value.bytes)
        if isinstance(value, decimal.Decimal):
            return msgpack.ExtType(ExtCode.DECIMAL, _decimal_text(value).encode("ascii"))
        if isinstance(value, tuple):
            return list(value)
        raise TypeError(f"cannot send a value of type {type(value).__name__} to the broker")

    return default


def _decimal_text(value: decimal.Decimal) -> str:
    text = str(value)
    if len(text) > _MAX_DECIMAL_TEXT:
        raise ValueError(f"a DECIMAL has more than {MAX_DECIMAL_DIGITS} digits")
    return text


def _decimal_from(data: bytes) -> decimal.Decimal:
    # Parsing is linear, but bounding the text here keeps every later conversion cheap.
    if len(data) > _MAX_DECIMAL_TEXT:
        raise ValueError(f"a DECIMAL has more than {MAX_DECIMAL_DIGITS} digits")
    return decimal.Decimal(data.decode("ascii"))


def _ext_hook_at(depth: int, texts: str | None = None) -> Callable[[int, bytes], Any]:
    """The ext hook for an ext value ``depth`` ext levels deep.

    Each level unpacks its payload with the next level's hook, so unpacking recurses once
    per ext level: the depth is refused here, *before* recursing. Beyond _FAST_EXT_LEVELS
    the payload goes through an Unpacker, whose state is on the heap: ``msgpack.unpackb``
    keeps ~40 KB of it on the C stack, too much for 32 levels in a small thread stack.
    """
    unpack_payload = _unpackb if depth <= _FAST_EXT_LEVELS else _unpack_payload_on_heap

    def ext_hook(code: int, data: bytes) -> Any:
        if code == ExtCode.UUID:
            return uuid.UUID(bytes=data)
        if code == ExtCode.DECIMAL:
            return _decimal_from(data)
        from_ext = _FROM_EXT.get(code)
        if from_ext is None:
            raise ValueError(f"unknown ext type {code}")
        if depth > MAX_NESTING:
            raise NestingTooDeep()
        hooks = _EXT_HOOKS if texts is None else _LENIENT_EXT_HOOKS
        fields = unpack_payload(data, raw=False, strict_map_key=False,
                                ext_hook=hooks[depth + 1], unicode_errors=texts)
        if not isinstance(fields, list):
            raise ValueError(f"ext type {code} must hold an array")
        return from_ext(fields)

    return ext_hook


def _unpack_payload_on_heap(data: bytes, **options: Any) -> Any:
    """``msgpack.unpackb(data, **options)`` with its state on the heap, not the C stack."""
    unpacker = msgpack.Unpacker(max_buffer_size=max(len(data), 1), **options)
    unpacker.feed(data)
    value = unpacker.unpack()
    if unpacker.tell() != len(data):
        raise ValueError(f"{len(data) - unpacker.tell()} bytes after an ext value's payload")
    return value


_FAST_EXT_LEVELS = 4  # the ext levels real values use, at ~40 KB of C stack each
_packb: Callable[..., bytes] = msgpack.packb
_unpackb = msgpack.unpackb
_DEFAULTS = [_default_at(depth) for depth in range(MAX_NESTING + 2)]
_EXT_HOOKS = [_ext_hook_at(depth) for depth in range(MAX_NESTING + 2)]
_DEFAULT = _DEFAULTS[1]  # for the top level
_EXT_HOOK = _EXT_HOOKS[1]
# Replies carry texts with lone UTF-16 surrogates, as a node gives them (a CHAR is one UTF-16
# unit, whatever a Java client stored): packed as msgpack's "surrogatepass" UTF-8, only when the
# strict packing refuses them, so ordinary replies pay nothing. Requests stay strict UTF-8.
_SURROGATES = "surrogatepass"
_LENIENT_DEFAULTS = [_default_at(depth, _SURROGATES) for depth in range(MAX_NESTING + 2)]
_LENIENT_EXT_HOOKS = [_ext_hook_at(depth, _SURROGATES) for depth in range(MAX_NESTING + 2)]
_new_tuple = tuple.__new__


def pack(obj: Any) -> bytes:
    """Serialize one message; raises IpcError for values msgpack cannot carry, and
    NestingTooDeep (an IpcError) for values nested deeper than MAX_NESTING levels."""
    check_nesting(obj)
    return _pack_checked(obj)


def _pack_checked(obj: Any) -> bytes:
    # Only after the nesting check: _default recurses once per ext level, as unpacking does.
    try:
        return _packb(obj, default=_DEFAULT, use_bin_type=True)
    except (TypeError, ValueError, OverflowError) as exc:
        raise IpcError(str(exc)) from exc


def unpack(data: bytes) -> Any:
    """Deserialize one frame; any msgpack failure becomes IpcError, nesting deeper than
    MAX_NESTING levels NestingTooDeep (an IpcError)."""
    try:
        obj = _unpackb(data, raw=False, strict_map_key=False, ext_hook=_EXT_HOOK)
    except Exception as exc:
        raise _unpack_error(exc) from _cause(exc)
    check_nesting(obj)
    return obj


def _cause(exc: Exception) -> Exception | None:
    """What _unpack_error(exc) is raised from: ``exc``, unless it is that error itself (an
    exception that is its own cause is a reference cycle, kept with its traceback's frames,
    the message's bytes among them, until the cyclic collector runs)."""
    return None if isinstance(exc, IpcError) else exc


def _unpack_error(exc: Exception) -> IpcError:
    """The IpcError for whatever msgpack.unpackb raised (ext values are bounded by MAX_NESTING
    levels in the hook; plain nesting is the caller's to check)."""
    if isinstance(exc, IpcError):
        return exc
    if isinstance(exc, msgpack.StackError):  # plain arrays deeper than msgpack's 1024 levels
        return NestingTooDeep()
    # msgpack raises several unrelated classes, some outside its root
    return IpcError(f"malformed msgpack: {exc}")


# -- nesting ----------------------------------------------------------------------------------

# Values that hold nothing a message could nest (exact types; subclasses take the slow path).
_SCALARS = frozenset({
    type(None), bool, int, float, str, bytes, bytearray, memoryview, uuid.UUID, decimal.Decimal,
})
_STR = frozenset({str})
_SEQUENCES = frozenset({list, tuple})
_DICT = {dict}
_is_scalar = _SCALARS.__contains__


def _body(part: Any) -> tuple[Any, ...]:
    """The values inside a part an ext value's payload is built of (its items list, its
    field map): they sit one level below the ext value, like a container's items."""
    if isinstance(part, (list, tuple)):
        return (part,)
    if isinstance(part, dict):
        return (part.keys(), part.values())
    return ((part,),)


def _map_body(items: Any) -> tuple[Any, ...]:
    flat: list[Any] = []
    for pair in items if isinstance(items, (list, tuple)) else (items,):
        if isinstance(pair, (list, tuple)):
            flat.extend(pair)
        else:
            flat.append(pair)
    return (flat,)


# type -> the groups of values one level below a value of that type
_INSIDE: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    list: lambda v: (v,),
    tuple: lambda v: (v,),
    dict: lambda v: (v.keys(), v.values()),
    Typed: lambda v: ((v.type_code, v.value),),
    Timestamp: lambda v: ((v.epoch_ms, v.nanos),),
    Date: lambda v: ((v.epoch_ms,),),
    Time: lambda v: ((v.ms,),),
    EnumValue: lambda v: ((v.type_id, v.ordinal),),
    BinaryObject: lambda v: ((v.type_name, v.type_id), *_body(v.fields)),
    Collection: lambda v: ((v.kind,), *_body(v.items)),
    Map: lambda v: ((v.kind,), *_map_body(v.items)),
    ObjectArray: lambda v: ((v.type_id,), *_body(v.items)),
}


def _inside(value: Any) -> tuple[Any, ...] | None:
    """What a value of a type not in _SCALARS/_INSIDE nests: msgpack packs subclasses of
    list, tuple and dict as arrays and maps; anything else is a scalar or cannot be sent."""
    if isinstance(value, (list, tuple)):
        return (value,)
    if isinstance(value, dict):
        return (value.keys(), value.values())
    return None


def _check_group(values: Any, room: int) -> None:
    """Refuse ``values`` if any nests containers more than ``room`` levels deep.

    Breadth first, a level at a time, so that lists of scalars, of lists and of maps (keys,
    pairs, rows) are scanned by C iterators: a few tens of ns per element.
    """
    while True:
        if type(values) is not list:
            values = list(values)
        kinds = set(map(type, values))
        if kinds <= _SCALARS:
            return
        if room <= 0:
            raise NestingTooDeep()
        room -= 1
        if not kinds.isdisjoint(_SCALARS):
            values = list(compress(values, map(not_, map(_is_scalar, map(type, values)))))
        values = _next_level(values, kinds - _SCALARS)


def _next_level(containers: list[Any], kinds: set[type]) -> list[Any]:
    """Everything one level below ``containers`` (values of the types ``kinds``)."""
    if kinds <= _SEQUENCES:
        return list(chain.from_iterable(containers))
    if kinds == _DICT:
        keys = chain.from_iterable(containers)
        return [*keys, *chain.from_iterable(map(dict.values, containers))]
    out: list[Any] = []
    for value in containers:
        inside = _INSIDE.get(type(value))
        groups = inside(value) if inside is not None else _inside(value)
        for group in groups or ():
            out.extend(group)
    return out


def check_nesting(value: Any, limit: int = MAX_NESTING) -> None:
    """Raise NestingTooDeep if ``value`` nests more than ``limit`` levels (see MAX_NESTING).

    Linear in the number of containers, recursion bounded by ``limit`` (so a value that
    contains itself is refused, not followed); thread-safe.
    """
    _check_group((value,), limit)


# -- envelope ---------------------------------------------------------------------------------


# The envelopes' own levels: a request's array and args map, a reply's array.
_ARGS_ROOM = MAX_NESTING - 2
_PAYLOAD_ROOM = MAX_NESTING - 1


def pack_request(request_id: int, op: str, args: Mapping[str, Any], deadline_ms: int = 0) -> bytes:
    args = dict(args)
    for value in args.values():  # keys are strs; others are bounded by _default_at only
        if type(value) not in _SCALARS:
            _check_group((value,), _ARGS_ROOM)
    return _pack_checked([IPC_VERSION, request_id, op, deadline_ms, args])


def unpack_request(frame: bytes) -> Request:
    """Validate the request envelope; raise IpcError with a message fit for the worker."""
    try:  # inlined: this is the broker's hot path
        msg = _unpackb(frame, raw=False, strict_map_key=False, ext_hook=_EXT_HOOK)
    except Exception as exc:
        raise _unpack_error(exc) from _cause(exc)
    if not isinstance(msg, list) or len(msg) != 5:
        raise IpcError("a request must be a 5-element array [version, id, op, deadline_ms, args]")
    version, request_id, op, deadline_ms, args = msg
    # Each check tries the exact types msgpack produces first (cheap), then the full rule.
    if version != IPC_VERSION:
        raise UnsupportedVersion(version, request_id if _is_uint(request_id) else 0)
    if not (type(request_id) is int and request_id >= 0) and not _is_uint(request_id):
        raise IpcError("request id must be a non-negative integer")
    if not isinstance(op, str):
        raise IpcError("op must be a string")
    if not (type(deadline_ms) is int and deadline_ms >= 0) and not _is_uint(deadline_ms):
        raise IpcError("deadline_ms must be a non-negative integer")
    if not isinstance(args, dict):
        raise IpcError("args must be a map with string keys")
    for key, value in args.items():  # msgpack makes exact types: no subclasses to expect
        if type(key) is not str:
            raise IpcError("args must be a map with string keys")
        if type(value) not in _SCALARS:  # the rest of the envelope is scalars, checked
            _check_group((value,), _ARGS_ROOM)
    return _new_tuple(Request, msg[1:])  # Request(request_id, op, ...) at C speed


class UnsupportedVersion(IpcError):
    def __init__(self, version: Any, request_id: int) -> None:
        super().__init__(
            f"IPC version {_brief(version)} is not supported; this broker speaks {IPC_VERSION}")
        self.request_id = request_id


def _brief(value: Any) -> str:
    """A short description of an unchecked value (never a deep or long repr)."""
    if type(value) in _SCALARS:
        text = repr(value)
        return text if len(text) <= 40 else text[:37] + "..."
    return f"<{type(value).__name__}>"


def pack_reply(request_id: int, status: int, payload: Any) -> bytes:
    """Serialize one reply; raises IpcError for values msgpack cannot carry (NestingTooDeep
    for a payload nested deeper than MAX_NESTING - 1 levels).

    A fresh packer each time (``pack``): reusing one msgpack.Packer was ~0.6 us cheaper per
    reply, yet made every sequential round trip through the broker ~50-70 us slower."""
    if type(payload) not in _SCALARS:
        _check_group((payload,), _PAYLOAD_ROOM)
    msg = [IPC_VERSION, request_id, int(status), payload]
    try:
        return _packb(msg, default=_DEFAULT, use_bin_type=True)
    except UnicodeEncodeError:
        pass
    except (TypeError, ValueError, OverflowError) as exc:
        raise IpcError(str(exc)) from exc
    try:
        return _packb(msg, default=_LENIENT_DEFAULTS[1], use_bin_type=True,
                      unicode_errors=_SURROGATES)
    except (TypeError, ValueError, OverflowError) as exc:
        raise IpcError(str(exc)) from exc


def unpack_reply(frame: bytes) -> Reply:
    try:
        msg = _unpackb(frame, raw=False, strict_map_key=False, ext_hook=_LENIENT_EXT_HOOKS[1],
                       unicode_errors=_SURROGATES)
    except Exception as exc:
        raise _unpack_error(exc) from _cause(exc)
    if not isinstance(msg, list) or len(msg) != 4 or msg[0] != IPC_VERSION:
        raise IpcError("a reply must be a 4-element array [version, id, status, payload]")
    _, request_id, status, payload = msg
    if not _is_uint(request_id) or not isinstance(status, int):
        raise IpcError("reply id and status must be integers")
    if type(payload) not in _SCALARS:
        _check_group((payload,), _PAYLOAD_ROOM)
    return Reply(request_id, status, payload)


def _is_uint(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


# -- endpoint ---------------------------------------------------------------------------------


def default_runtime_dir(environ: Mapping[str, str], uid: int) -> str:
    """Where the broker puts its socket by default: /run/ignite-broker for root (systemd's
    RuntimeDirectory), else $XDG_RUNTIME_DIR/ignite-broker, else /tmp/ignite-broker-<uid>."""
    if "RUNTIME_DIRECTORY" in environ:  # set by systemd from RuntimeDirectory=
        return environ["RUNTIME_DIRECTORY"].split(":")[0]
    if uid == 0:
        return "/run/ignite-broker"
    if environ.get("XDG_RUNTIME_DIR"):
        return environ["XDG_RUNTIME_DIR"] + "/ignite-broker"
    return f"/tmp/ignite-broker-{uid}"


def default_endpoint(environ: Mapping[str, str], uid: int) -> str:
    """The endpoint a stub uses when none is given: $IGNITE_BROKER, else the default socket."""
    if environ.get(ENV_ENDPOINT):
        return environ[ENV_ENDPOINT]
    return f"ipc://{default_runtime_dir(environ, uid)}/{DEFAULT_SOCKET_NAME}"


def now_ms(clock: Callable[[], float]) -> int:
    """Milliseconds since the epoch from a caller-supplied clock (this module reads no clock)."""
    return int(clock() * 1000)


__all__ = [
    "DEFAULT_MAX_REQUEST_BYTES",
    "ENV_ENDPOINT",
    "GOING_AWAY_REQUEST_ID",
    "IPC_VERSION",
    "MAX_NESTING",
    "REFUSED_SIZE",
    "TOO_LARGE_LIMIT",
    "UNNAMED_REFUSAL_REQUEST_ID",
    "ExtCode",
    "IpcError",
    "NestingTooDeep",
    "Reply",
    "Request",
    "Status",
    "Typed",
    "UnsupportedVersion",
    "check_nesting",
    "default_endpoint",
    "default_runtime_dir",
    "error_payload",
    "not_processed_payload",
    "now_ms",
    "pack",
    "pack_reply",
    "pack_request",
    "unpack",
    "unpack_reply",
    "unpack_request",
]

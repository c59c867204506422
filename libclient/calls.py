"""Request specs and their drivers: the one place where sync and async share code.

Every API method that talks to the broker is written once, as a generator (a *spec*) that
yields ``Call`` objects and receives each call's result (or has its exception thrown in)::

    def get(self, key, key_hint=None):
        raw = yield Call("cache_get", {...}, idempotent=True)
        return (yield from self._client._decode(raw))

``run_sync`` drives a spec with a blocking transport, ``run_async`` with an asyncio one;
``bind_sync``/``bind_async`` turn a class's specs into pyignite-shaped methods (the async ones
take pyignite's extra ``timeout`` argument).  No method body exists twice.
"""

from __future__ import annotations

import functools

from .exceptions import CacheError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Generator
    from typing import Any

    Spec = Generator["Call", Any, Any]
_CO_GENERATOR = 0x20


class Call:
    """One broker request: op, args, whether a resend is harmless, and error mapping.

    ``error`` is the class raised for SERVER_ERROR replies (pyignite's ``status_to_exception``
    class for the method); ``hold`` pins the call to the socket that owns a cursor or a
    transaction; ``op_code`` overrides the pyignite op code reported in query events.
    """

    __slots__ = ("args", "error", "hold", "idempotent", "op", "op_code")

    def __init__(self, op: str, args: dict[str, Any] | None = None, *, idempotent: bool = False,
                 error: type[Exception] = CacheError, hold: Any = None,
                 op_code: int | None = None) -> None:
        self.op = op
        self.args = args if args is not None else {}
        self.idempotent = idempotent
        self.error = error
        self.hold = hold
        self.op_code = op_code

    def __repr__(self) -> str:
        return f"<Call {self.op} {sorted(self.args)}>"


def run_sync(spec: Spec, execute: Callable[[Call], Any]) -> Any:
    """Run a spec to completion, performing each call it yields with ``execute``."""
    try:
        call = next(spec)
        while True:
            try:
                result = execute(call)
            except Exception as exc:
                call = spec.throw(exc)
            else:
                call = spec.send(result)
    except StopIteration as stop:
        return stop.value


async def run_async(spec: Spec, execute: Callable[[Call], Awaitable[Any]]) -> Any:
    """``run_sync`` for asyncio: the same specs, awaited calls."""
    try:
        call = next(spec)
        while True:
            try:
                result = await execute(call)
            except Exception as exc:
                call = spec.throw(exc)
            else:
                call = spec.send(result)
    except StopIteration as stop:
        return stop.value


def shared(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a spec (or a plain method) as part of the public API of both flavours."""
    fn._libclient_shared = True  # type: ignore[attr-defined]
    return fn


def _is_spec(fn: Callable[..., Any]) -> bool:
    return bool(fn.__code__.co_flags & _CO_GENERATOR)


def _shared_members(specs: type) -> dict[str, Callable[..., Any]]:
    members: dict[str, Callable[..., Any]] = {}
    for klass in reversed(specs.__mro__):
        for name, fn in vars(klass).items():
            if getattr(fn, "_libclient_shared", False):
                members[name] = fn
    return members


def bind_sync(cls: type) -> type:
    """Give ``cls`` a blocking method for every shared spec it inherits (``self._run``)."""
    for name, fn in _shared_members(cls).items():
        if name in vars(cls):
            continue
        if _is_spec(fn):
            setattr(cls, name, _sync_method(fn))
        else:
            setattr(cls, name, fn)
    return cls


def _sync_method(fn: Callable[..., Spec]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._run(fn(self, *args, **kwargs))

    return method


def bind_async(cls: type) -> type:
    """Give ``cls`` a coroutine method for every shared spec (``self._arun``), each taking
    pyignite's trailing ``timeout`` (seconds, 0 = the client default)."""
    import inspect

    for name, fn in _shared_members(cls).items():
        if name in vars(cls):
            continue
        method = _async_method(fn) if _is_spec(fn) else _async_plain(fn)
        sig = inspect.signature(fn)
        params = list(sig.parameters.values())
        if "timeout" not in sig.parameters:
            params.append(inspect.Parameter("timeout", inspect.Parameter.KEYWORD_ONLY,
                                            default=0))
        method.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        setattr(cls, name, method)
    return cls


def _split_timeout(fn: Callable[..., Any], args: tuple[Any, ...],
                   kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], float]:
    timeout = kwargs.pop("timeout", 0)
    positional = fn.__code__.co_argcount - 1
    if len(args) > positional:  # pyignite's aio methods take timeout as a trailing positional
        timeout, args = args[positional], args[:positional]
    return args, timeout or 0


def _async_method(fn: Callable[..., Spec]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        args, timeout = _split_timeout(fn, args, kwargs)
        return await self._arun(fn(self, *args, **kwargs), timeout)

    return method


def _async_plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def method(self: Any, *args: Any, **kwargs: Any) -> Any:
        args, _ = _split_timeout(fn, args, kwargs)
        return fn(self, *args, **kwargs)

    return method


# pyignite's names of the op codes (queries.op_codes), for query events.
OP_NAMES: dict[int, str] = {
    0: "OP_RESOURCE_CLOSE", 1000: "OP_CACHE_GET", 1001: "OP_CACHE_PUT",
    1002: "OP_CACHE_PUT_IF_ABSENT", 1003: "OP_CACHE_GET_ALL", 1004: "OP_CACHE_PUT_ALL",
    1005: "OP_CACHE_GET_AND_PUT", 1006: "OP_CACHE_GET_AND_REPLACE",
    1007: "OP_CACHE_GET_AND_REMOVE", 1008: "OP_CACHE_GET_AND_PUT_IF_ABSENT",
    1009: "OP_CACHE_REPLACE", 1010: "OP_CACHE_REPLACE_IF_EQUALS", 1011: "OP_CACHE_CONTAINS_KEY",
    1012: "OP_CACHE_CONTAINS_KEYS", 1013: "OP_CACHE_CLEAR", 1014: "OP_CACHE_CLEAR_KEY",
    1015: "OP_CACHE_CLEAR_KEYS", 1016: "OP_CACHE_REMOVE_KEY", 1017: "OP_CACHE_REMOVE_IF_EQUALS",
    1018: "OP_CACHE_REMOVE_KEYS", 1019: "OP_CACHE_REMOVE_ALL", 1020: "OP_CACHE_GET_SIZE",
    1050: "OP_CACHE_GET_NAMES", 1051: "OP_CACHE_CREATE_WITH_NAME",
    1052: "OP_CACHE_GET_OR_CREATE_WITH_NAME", 1053: "OP_CACHE_CREATE_WITH_CONFIGURATION",
    1054: "OP_CACHE_GET_OR_CREATE_WITH_CONFIGURATION", 1055: "OP_CACHE_GET_CONFIGURATION",
    1056: "OP_CACHE_DESTROY", 2000: "OP_QUERY_SCAN", 2001: "OP_QUERY_SCAN_CURSOR_GET_PAGE",
    2002: "OP_QUERY_SQL", 2003: "OP_QUERY_SQL_CURSOR_GET_PAGE", 2004: "OP_QUERY_SQL_FIELDS",
    2005: "OP_QUERY_SQL_FIELDS_CURSOR_GET_PAGE", 3002: "OP_GET_BINARY_TYPE",
    3003: "OP_PUT_BINARY_TYPE", 4000: "OP_TX_START", 4001: "OP_TX_END",
    5000: "OP_CLUSTER_GET_STATE", 5001: "OP_CLUSTER_CHANGE_STATE",
    5002: "OP_CLUSTER_CHANGE_WAL_STATE", 5003: "OP_CLUSTER_GET_WAL_STATE",
}


def op_code_of(call: Call) -> int | None:
    """The pyignite op code a call reports in query events (None: no event, e.g. ``ping``)."""
    if call.op_code is not None:
        return call.op_code
    from .envelope import ipc  # protocol.ipc.OPS: the one table of IPC ops and their codes

    code: int | None = ipc().OPS.get(call.op)
    return code

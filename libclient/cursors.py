"""Query cursors: pyignite's ScanCursor, SqlCursor, SqlFieldsCursor and their asyncio twins,
over one core that owns the paging (open, next page, close) as specs.

A cursor with more pages pins the socket it was opened on (the broker ties cursors to it) and
keeps the heartbeat going until it is exhausted or closed.  A half-read cursor that is dropped
without ``close()`` has its close sent with the socket's next traffic (pyignite leaks those).

Opened inside a transaction, a cursor's query joins it (its ``tx``) when the broker's nodes
negotiated thin-client feature bit 18 (TX_AWARE_QUERIES); otherwise it runs outside the
transaction, as in pyignite (which has no bit 18).
"""

from __future__ import annotations

import weakref

from protocol.features import Feature

from .calls import Call
from .exceptions import CacheError, ParameterError, SQLError
from .transaction import current_tx

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator
    from typing import Any

__all__ = ["AioScanCursor", "AioSqlFieldsCursor", "ScanCursor", "SqlCursor", "SqlFieldsCursor"]

_NEED_PAGE = object()
_END = object()


def _abandon(hold: Any, cursor_id: int) -> None:
    try:
        hold.defer("cursor_close", {"cursor": cursor_id})
    finally:
        hold.release()


def _attribute(name: str, doc: str) -> property:
    slot = "_" + name
    return property(lambda self: getattr(self, slot, None),
                    lambda self, value: setattr(self, slot, value), doc=doc)


class _CursorCore:
    """Paging state and specs, with no I/O of its own."""

    _op: str
    _error: type[Exception] = CacheError
    _page_op_code: int = 0
    _idempotent = True
    _uninitialized = "Using uninitialized cursor, initialize it using async with expression."

    def __init__(self, client: Any, args: dict[str, Any], query_args: Any = None) -> None:
        self.client = client
        self._args = args
        self._query_args = query_args
        self.cursor_id = None
        self.more = False
        self.data = None
        self.connection = None
        self.cache_info = args.get("cache")
        self._hold: Any = None
        self._finalizer: Any = None
        self._opened = False
        self._closed_id: int | None = None  # the id of a cursor closed with pages unread

    # pyignite's cursor attributes are properties; the same here.
    client = _attribute("client", "Apache Ignite client.")
    connection = _attribute("connection", "The channel (socket) the cursor lives on.")
    cursor_id = _attribute("cursor_id", "Cursor id (None once the whole result was read).")
    more = _attribute("more", "Whether cursor has more values.")
    data = _attribute("data", "Current fetched data.")
    cache_info = _attribute("cache_info", "The cache the cursor reads (its name).")

    def _open(self) -> Generator[Call, Any, None]:
        args = dict(self._args)
        if "query" in args and not isinstance(args["query"], str):
            raise ParameterError(f"the query must be a str, got {type(args['query']).__name__}")
        if self._query_args is not None or "query" in args:
            args["args"] = yield from self.client._encode_many(_arg_list(self._query_args))
        tx_id = _joined_tx(self.client)
        if tx_id is not None:
            args["tx"] = tx_id
        hold = self.client._hold()
        try:
            raw = yield Call(self._op, args, idempotent=self._idempotent, error=self._error,
                             hold=hold)
            rows = yield from self.client._decode(raw.get("rows") or [])
        except BaseException:
            hold.release()
            raise
        self._opened = True
        self.connection = hold.channel
        self.cursor_id = raw.get("cursor")
        self._accept_first(raw, rows)
        if self.more and self.cursor_id is not None:
            self._hold = hold
            self._finalizer = weakref.finalize(self, _abandon, hold, self.cursor_id)
        else:
            hold.release()

    def _accept_first(self, raw: dict[str, Any], rows: list[Any]) -> None:
        self._accept(raw, rows)

    def _accept(self, raw: dict[str, Any], rows: list[Any]) -> None:
        self.more = bool(raw.get("more"))
        self.data = iter(self._shape(rows))

    def _shape(self, rows: list[Any]) -> Any:
        return [tuple(row) for row in rows]

    def _next_page(self) -> Generator[Call, Any, None]:
        if self._closed_id is not None:
            # pyignite asks the node, which no longer has it: the same error, at the same call
            raise self._error(f"Failed to find resource with id: {self._closed_id} "
                              "(the cursor was closed)")
        try:
            raw = yield Call("cursor_next", {"cursor": self.cursor_id}, error=self._error,
                             hold=self._hold, op_code=self._page_op_code)
        except ParameterError as exc:  # the broker no longer has it (e.g. after a restart)
            self.more = False
            self._release()
            raise self._error(str(exc)) from exc
        rows = yield from self.client._decode(raw.get("rows") or [])
        self._accept(raw, rows)
        if not self.more:
            self._release()

    def _close(self) -> Generator[Call, Any, None]:
        """Free the cursor in the broker.  As in pyignite, the rows already fetched can still
        be read, ``more`` stays as it was, and reading past them raises the cursor's error."""
        if self._hold is None:
            return
        try:
            if self.cursor_id is not None and self.more:
                self._closed_id = self.cursor_id
                yield Call("cursor_close", {"cursor": self.cursor_id}, error=self._error,
                           hold=self._hold)
        finally:
            self._release()

    def _release(self) -> None:
        if self._finalizer is not None:
            self._finalizer.detach()
            self._finalizer = None
        if self._hold is not None:
            self._hold.release()
            self._hold = None

    def _step(self) -> Any:
        """The next row, or _NEED_PAGE / _END."""
        if self.data is None:
            return _END
        try:
            return next(self.data)
        except StopIteration:
            return _NEED_PAGE if self.more else _END


class _ScanCore(_CursorCore):
    _op = "scan"
    _page_op_code = 2001


class _SqlCore(_CursorCore):
    _op = "select_row"
    _error = SQLError
    _page_op_code = 2003


class _SqlFieldsCore(_CursorCore):
    _op = "sql"
    _error = SQLError
    _page_op_code = 2005
    _uninitialized = ("Attempting to use uninitialized aio cursor, please await on it or use "
                      "with expression.")

    def __init__(self, client: Any, args: dict[str, Any], query_args: Any = None) -> None:
        super().__init__(client, args, query_args)
        self._field_names: list[str] | None = None
        self._idempotent = args.get("statement_type") == 1 or _reads_only(args["query"])

    def _accept_first(self, raw: dict[str, Any], rows: list[Any]) -> None:
        fields = raw.get("fields")
        if self._args.get("include_field_names") and fields:
            self._field_names = list(fields)
        self._accept(raw, rows)

    def _shape(self, rows: list[Any]) -> Any:
        return [list(row) for row in rows]

    def _step(self) -> Any:
        if self.data is not None and self._field_names:
            names, self._field_names = self._field_names, None
            return names
        return super()._step()


def _joined_tx(client: Any) -> int | None:
    """The handle of the transaction a query opened now joins: the current one, when the
    broker's nodes run queries inside transactions (feature bit 18); else None."""
    tx = current_tx(client)
    if tx is None:
        return None
    features = (client.broker_info or {}).get("features") or ()
    return tx.tx_id if Feature.TX_AWARE_QUERIES in features else None


def _arg_list(query_args: Any) -> list[Any]:
    """Query arguments as pyignite sends them: None is none, anything without a length is one
    argument, anything with one is a sequence of arguments (a str too: one per character)."""
    if query_args is None:
        return []
    try:
        len(query_args)
    except TypeError:
        return [query_args]
    return list(query_args)


def _reads_only(query: str) -> bool:
    if not isinstance(query, str):
        return False  # refused when the cursor opens
    head = query.lstrip().split(None, 1)[0].upper() if query.strip() else ""
    return head in ("SELECT", "WITH", "EXPLAIN", "SHOW")


# -- blocking cursors -----------------------------------------------------------------------


class _SyncCursor(_CursorCore):
    def __init__(self, client: Any, args: dict[str, Any], query_args: Any = None) -> None:
        super().__init__(client, args, query_args)
        client._run(self._open())

    def __iter__(self) -> _SyncCursor:
        return self

    def __next__(self) -> Any:
        while True:
            item = self._step()
            if item is _NEED_PAGE:
                self.client._run(self._next_page())
            elif item is _END:
                raise StopIteration
            else:
                return item

    def close(self) -> None:
        self.client._run(self._close())

    def __enter__(self) -> _SyncCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ScanCursor(_SyncCursor, _ScanCore):
    """Scan query cursor: (key, value) pairs."""


class SqlCursor(_SyncCursor, _SqlCore):
    """SQL query cursor (``Cache.select_row``): (key, value) pairs."""


class SqlFieldsCursor(_SyncCursor, _SqlFieldsCore):
    """SQL fields query cursor: rows as lists, the field names first when asked for."""


# -- asyncio cursors ------------------------------------------------------------------------


class _AioCursor(_CursorCore):
    def __await__(self) -> Any:
        return self.__aenter__().__await__()

    async def __aenter__(self) -> _AioCursor:
        if not self._opened:
            await self.client._arun(self._open())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> _AioCursor:
        return self

    async def __anext__(self) -> Any:
        if not self._opened:
            raise self._error(self._uninitialized)
        while True:
            item = self._step()
            if item is _NEED_PAGE:
                await self.client._arun(self._next_page())
            elif item is _END:
                raise StopAsyncIteration
            else:
                return item

    async def close(self) -> None:
        await self.client._arun(self._close())


class AioScanCursor(_AioCursor, _ScanCore):
    """Asynchronous scan query cursor: [key, value] pairs (lists, as pyignite's)."""

    def _shape(self, rows: list[Any]) -> Any:
        return [list(row) for row in rows]


class AioSqlFieldsCursor(_AioCursor, _SqlFieldsCore):
    """Asynchronous SQL fields query cursor."""

"""Transactions and cursors: started on one node connection, pinned to it, owned by the worker
that opened them (the janitor releases them when that worker goes away)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol import OpCode, Response, queries, tx
from protocol.binary.registry import BinaryType
from protocol.ipc import Request, Status

from .dispatch import Call, Dispatcher, ReplyFn, arg, error_of
from .errors import BadRequest, BrokerError
from .nodeconn import NodeConnection
from .workers import Cursor, Transaction, Worker


def _pinned_call(dispatcher: Dispatcher, request: Request, reply: ReplyFn, conn: NodeConnection,
                 op: OpCode, body: bytes, on_result: Callable[[Response], Any],
                 pending_types: list[BinaryType] | None = None) -> None:
    """One request on ``conn``; ``on_result`` returns the reply payload."""

    def ok(response: Response) -> None:
        reply(Status.OK, on_result(response))

    def failed(exc: BrokerError) -> None:
        reply(exc.status, error_of(exc))

    dispatcher.call(Call(op, body, False, dispatcher.deadline(request), ok, failed, pinned=conn,
                         pending_types=pending_types))


def _query_connection(dispatcher: Dispatcher, worker: Worker,
                      args: dict[str, Any]) -> tuple[NodeConnection, int | None]:
    transaction = dispatcher.transaction(worker, args)
    if transaction is not None:
        return transaction.conn, transaction.tx_id
    return dispatcher.pool.pick(), None


# -- transactions -----------------------------------------------------------------------------


def _tx_start(dispatcher: Dispatcher, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    label = arg(args, "label", (str, type(None)), None)
    body = tx.tx_start(arg(args, "concurrency", int, tx.TxConcurrency.PESSIMISTIC),
                       arg(args, "isolation", int, tx.TxIsolation.REPEATABLE_READ),
                       arg(args, "timeout", int, 0), label)
    conn = dispatcher.pool.pick()

    def started(response: Response) -> int:
        handle = dispatcher.workers.new_handle()
        worker.transactions[handle] = Transaction(handle, conn, tx.parse_tx_start(response.body),
                                                  label)
        return handle

    _pinned_call(dispatcher, request, reply, conn, OpCode.TX_START, body, started)


def _tx_end(dispatcher: Dispatcher, worker: Worker, request: Request, reply: ReplyFn) -> None:
    transaction = dispatcher.transaction(worker, request.args)
    if transaction is None:
        raise BadRequest("tx_end needs the 'tx' argument")
    commit = arg(request.args, "commit", bool)
    # Whatever the node answers, the transaction is over (a failed commit rolls back).
    del worker.transactions[transaction.handle]
    _pinned_call(dispatcher, request, reply, transaction.conn, OpCode.TX_END,
                 tx.tx_end(transaction.tx_id, commit), lambda response: None)


# -- queries ----------------------------------------------------------------------------------


def _register(dispatcher: Dispatcher, worker: Worker, conn: NodeConnection, cursor_id: int,
              more: bool, kind: str, column_count: int = 0) -> int | None:
    if not more:
        return None  # the server already closed it
    handle = dispatcher.workers.new_handle()
    worker.cursors[handle] = Cursor(handle, conn, cursor_id, kind, column_count)
    return handle


def _cache_id_or_zero(dispatcher: Dispatcher, args: dict[str, Any]) -> int:
    return dispatcher.cache_id(args) if args.get("cache") is not None else 0


def _sql(dispatcher: Dispatcher, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    conn, tx_id = _query_connection(dispatcher, worker, args)
    names = arg(args, "include_field_names", bool, False)
    body = queries.sql_fields(
        _cache_id_or_zero(dispatcher, args), arg(args, "query", str),
        schema=arg(args, "schema", (str, type(None)), None),
        page_size=arg(args, "page_size", int, 1024), max_rows=arg(args, "max_rows", int, -1),
        args=arg(args, "args", list, []), statement_type=arg(args, "statement_type", int, 0),
        distributed_joins=arg(args, "distributed_joins", bool, False),
        local=arg(args, "local", bool, False),
        replicated_only=arg(args, "replicated_only", bool, False),
        enforce_join_order=arg(args, "enforce_join_order", bool, False),
        collocated=arg(args, "collocated", bool, False), lazy=arg(args, "lazy", bool, False),
        timeout=arg(args, "timeout", int, 0), include_field_names=names,
        tx_id=tx_id, features=conn.features, ctx=dispatcher.codec,
    )
    pending = dispatcher.codec.take_pending()

    def first_page(response: Response) -> dict[str, Any]:
        page = queries.parse_sql_fields(response.body, names, ctx=dispatcher.codec)
        handle = _register(dispatcher, worker, conn, page.cursor_id, page.more, "sql",
                           page.column_count)
        fields = list(page.field_names) if names else None
        return {"cursor": handle, "fields": fields, "rows": page.rows, "more": page.more}

    _pinned_call(dispatcher, request, reply, conn, OpCode.QUERY_SQL_FIELDS, body, first_page,
                 pending)


def _entries_first_page(dispatcher: Dispatcher, worker: Worker, conn: NodeConnection,
                        kind: str) -> Callable[[Response], dict[str, Any]]:
    def first_page(response: Response) -> dict[str, Any]:
        page = queries.parse_scan(response.body, ctx=dispatcher.codec)
        handle = _register(dispatcher, worker, conn, page.cursor_id, page.more, kind)
        return {"cursor": handle, "rows": [list(p) for p in page.pairs], "more": page.more}

    return first_page


def _scan(dispatcher: Dispatcher, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    conn, tx_id = _query_connection(dispatcher, worker, args)
    partitions = arg(args, "partitions", int, -1)
    body = queries.scan(dispatcher.cache_id(args), page_size=arg(args, "page_size", int, 1024),
                        partition=partitions, local=arg(args, "local", bool, False),
                        tx_id=tx_id, features=conn.features)
    _pinned_call(dispatcher, request, reply, conn, OpCode.QUERY_SCAN, body,
                 _entries_first_page(dispatcher, worker, conn, "scan"))


def _select_row(dispatcher: Dispatcher, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    conn = dispatcher.pool.pick()
    body = queries.sql(
        dispatcher.cache_id(args), arg(args, "table", str), arg(args, "query", str),
        args=arg(args, "args", list, []),
        distributed_joins=arg(args, "distributed_joins", bool, False),
        local=arg(args, "local", bool, False),
        replicated_only=arg(args, "replicated_only", bool, False),
        page_size=arg(args, "page_size", int, 1024), timeout=arg(args, "timeout", int, 0),
        ctx=dispatcher.codec)
    _pinned_call(dispatcher, request, reply, conn, OpCode.QUERY_SQL, body,
                 _entries_first_page(dispatcher, worker, conn, "sql_row"),
                 dispatcher.codec.take_pending())


# -- cursors ----------------------------------------------------------------------------------

_PAGE_OPS = {
    "sql": (OpCode.QUERY_SQL_FIELDS_CURSOR_GET_PAGE, queries.sql_fields_page),
    "scan": (OpCode.QUERY_SCAN_CURSOR_GET_PAGE, queries.scan_page),
    "sql_row": (OpCode.QUERY_SQL_CURSOR_GET_PAGE, queries.sql_page),
}


def _cursor(worker: Worker, args: dict[str, Any]) -> Cursor:
    handle = arg(args, "cursor", int)
    cursor = worker.cursors.get(handle)
    if cursor is None:
        raise BadRequest(f"cursor {handle} is not open on this worker (exhausted or closed)")
    return cursor


def _parse_page(dispatcher: Dispatcher, cursor: Cursor,
                body: Any) -> tuple[list[list[Any]], bool]:
    if cursor.kind == "sql":
        return queries.parse_sql_fields_page(body, cursor.column_count, ctx=dispatcher.codec)
    pairs, more = queries.parse_scan_page(body, ctx=dispatcher.codec)
    return [list(p) for p in pairs], more


def _cursor_next(dispatcher: Dispatcher, worker: Worker, request: Request,
                 reply: ReplyFn) -> None:
    cursor = _cursor(worker, request.args)
    op, build = _PAGE_OPS[cursor.kind]

    def page(response: Response) -> dict[str, Any]:
        rows, more = _parse_page(dispatcher, cursor, response.body)
        if not more:
            worker.cursors.pop(cursor.handle, None)
        return {"rows": rows, "more": more}

    _pinned_call(dispatcher, request, reply, cursor.conn, op, build(cursor.cursor_id), page)


def _cursor_close(dispatcher: Dispatcher, worker: Worker, request: Request,
                  reply: ReplyFn) -> None:
    handle = arg(request.args, "cursor", int)
    cursor = worker.cursors.pop(handle, None)
    if cursor is None or not cursor.conn.is_open:
        reply(Status.OK, None)  # already exhausted, closed, or gone with its connection
        return
    _pinned_call(dispatcher, request, reply, cursor.conn, OpCode.RESOURCE_CLOSE,
                 queries.resource_close(cursor.cursor_id), lambda response: None)


HANDLERS = {
    "tx_start": _tx_start,
    "tx_end": _tx_end,
    "sql": _sql,
    "scan": _scan,
    "select_row": _select_row,
    "cursor_next": _cursor_next,
    "cursor_close": _cursor_close,
}

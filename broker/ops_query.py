"""Transactions and cursors: started on one node connection, pinned to it, owned by the worker
that opened them (the janitor releases them when that worker goes away)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from protocol import OpCode, Response, queries, tx
from protocol.binary.registry import BinaryType
from protocol.ipc import Request, Status

from . import bounds, sqlhead
from .calls import Call, ReplyFn
from .context import Context, Handler
from .errors import BadRequest, BrokerError, Overloaded, error_of
from .lookups import arg, ended_with_an_earlier_run
from .nodeconn import NodeConnection
from .ops_admin import in_turn
from .workers import Cursor, Pinned, Transaction, Worker


def _pinned_call(context: Context, request: Request, reply: ReplyFn, conn: NodeConnection,
                 op: OpCode, body: bytes, on_result: Callable[[Response], Any],
                 pending_types: list[BinaryType] | None = None,
                 release: Callable[[], None] | None = None) -> None:
    """One request on ``conn``; ``on_result`` returns the reply payload.  ``release`` un-counts
    the transaction or cursor the request opens when it fails (on_result calls it on success)."""

    def ok(response: Response) -> None:
        reply(Status.OK, on_result(response))

    def failed(exc: BrokerError) -> None:
        if release is not None:
            release()
        reply(exc.status, error_of(exc))

    context.call(Call(op, body, False, context.deadline(request), ok, failed, pinned=conn,
                         pending_types=pending_types))


# -- per-worker caps and per-connection limits -------------------------------------------------

# (what, the worker's cap, Ignite's per-connection limit): names of Limits fields / settings
_TRANSACTIONS = ("transactions", "max_transactions_per_worker",
                 "node_max_active_tx_per_connection")
_CURSORS = ("cursors", "max_cursors_per_worker", "node_max_open_cursors_per_connection")


def _room(limit: int) -> int:
    """How many a node connection may hold before the next goes to another: 90% of Ignite's
    limit, the rest absorbing ends and closes the node has not processed yet."""
    return max(1, limit - max(1, limit // 10))


def _connection_for(context: Context, table: Pinned[Any], kind: tuple[str, str, str],
                    conn: NodeConnection | None = None) -> NodeConnection:
    """A connection to open one more transaction or cursor on (``conn`` when the request is
    pinned to one), within the worker's cap and below Ignite's per-connection limit."""
    what, cap_name, node_name = kind
    limits = context.limits
    cap = getattr(limits, cap_name)
    if table.count >= cap and (not table.drop_lost() or table.count >= cap):
        raise Overloaded(f"this worker holds {table.count} open {what}, its limit "
                         f"(limits.{cap_name} = {cap}): end or close some first")
    node_limit = getattr(limits, node_name)
    room = _room(node_limit)
    if conn is None:
        chosen = context.pool.pick_below(table.held, room)
    else:
        chosen = conn if table.held.get(conn, 0) < room else None
    if chosen is None:
        where = "the transaction's node connection holds" if conn else (
            "every node connection holds")
        then = "retry when some are closed"
        if conn is None and context.pool.add_connections():
            then = "another connection to each node is being opened: retry shortly"
        raise Overloaded(f"{where} {room} open {what} for the broker's workers, near Ignite's "
                         f"limit of {node_limit} per connection (limits.{node_name}); {then}")
    return chosen


def _query_connection(context: Context, worker: Worker,
                      args: dict[str, Any]) -> tuple[NodeConnection, int | None]:
    """The connection a query's cursor opens on: its transaction's, or one with room."""
    transaction = context.transaction(worker, args)
    pinned = transaction.conn if transaction is not None else None
    conn = _connection_for(context, worker.cursors, _CURSORS, pinned)
    return conn, transaction.tx_id if transaction is not None else None


# -- transactions -----------------------------------------------------------------------------


def _tx_start(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    label = bounds.optional_text(arg(args, "label", (str, type(None)), None), "label")
    body = tx.tx_start(
        bounds.member(args, "concurrency", tx.TxConcurrency, tx.TxConcurrency.PESSIMISTIC),
        bounds.member(args, "isolation", tx.TxIsolation, tx.TxIsolation.REPEATABLE_READ),
        bounds.number(args, "timeout", 0, context.limits, "tx.timeout"), label)
    conn = _connection_for(context, worker.transactions, _TRANSACTIONS)
    release = worker.transactions.reserve(conn)

    def started(response: Response) -> int:
        tx_id = tx.parse_tx_start(response.body)
        release()
        handle = context.workers.new_handle()
        worker.transactions[handle] = Transaction(handle, conn, tx_id, label)
        return handle

    _pinned_call(context, request, reply, conn, OpCode.TX_START, body, started,
                 release=release)


def _tx_end(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    transaction = context.transaction(worker, request.args)
    if transaction is None:
        raise BadRequest("tx_end needs the 'tx' argument")
    commit = arg(request.args, "commit", bool)
    # Whatever the node answers, the transaction is over (a failed commit rolls back).
    del worker.transactions[transaction.handle]
    _pinned_call(context, request, reply, transaction.conn, OpCode.TX_END,
                 tx.tx_end(transaction.tx_id, commit), lambda response: None)


# -- queries ----------------------------------------------------------------------------------


def _register(context: Context, worker: Worker, conn: NodeConnection, cursor_id: int,
              more: bool, kind: str, column_count: int = 0) -> int | None:
    if not more:
        return None  # the server already closed it
    handle = context.workers.new_handle()
    worker.cursors[handle] = Cursor(handle, conn, cursor_id, kind, column_count)
    return handle


def _cache_id_or_zero(context: Context, args: dict[str, Any]) -> int:
    return context.cache_id(args) if args.get("cache") is not None else 0


def _query_args(context: Context, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments sql and select_row share, bounded (page size clamped)."""
    limits = context.limits
    return {
        "args": bounds.count(arg(args, "args", list, []), "args", limits),
        "page_size": bounds.number(args, "page_size", 1024, limits),
        "timeout": bounds.number(args, "timeout", 0, limits, "query.timeout"),
        "distributed_joins": arg(args, "distributed_joins", bool, False),
        "local": arg(args, "local", bool, False),
        "replicated_only": arg(args, "replicated_only", bool, False),
    }


def _sql(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    names = arg(args, "include_field_names", bool, False)
    query = bounds.text(arg(args, "query", str), "query", "query")
    schema = bounds.optional_text(arg(args, "schema", (str, type(None)), None), "schema")
    options = _query_args(context, args)
    bounds.sql_write(query, options["args"])
    cache = _cache_id_or_zero(context, args)
    conn, tx_id = _query_connection(context, worker, args)
    body, pending = context.codec.encode(
        queries.sql_fields, cache, query, schema=schema,
        max_rows=bounds.number(args, "max_rows", -1, context.limits),
        statement_type=bounds.member(args, "statement_type", queries.StatementType,
                                     queries.StatementType.ANY),
        enforce_join_order=arg(args, "enforce_join_order", bool, False),
        collocated=arg(args, "collocated", bool, False), lazy=arg(args, "lazy", bool, False),
        include_field_names=names, tx_id=tx_id, features=conn.features, **options,
    )

    def send(done: ReplyFn) -> None:
        release = worker.cursors.reserve(conn)

        def first_page(response: Response) -> dict[str, Any]:
            page = queries.parse_sql_fields(response.body, names, ctx=context.codec)
            release()
            handle = _register(context, worker, conn, page.cursor_id, page.more, "sql",
                               page.column_count)
            fields = list(page.field_names) if names else None
            return {"cursor": handle, "fields": fields, "rows": page.rows, "more": page.more}

        _pinned_call(context, request, done, conn, OpCode.QUERY_SQL_FIELDS, body, first_page,
                     pending, release)

    if sqlhead.starts_or_stops_a_cache(query):  # a partition map exchange: paced and in turn
        in_turn(context, worker, request, None, _answering_refusals(send), reply)
    else:
        send(reply)


def _answering_refusals(send: Callable[[ReplyFn], None]) -> Callable[[ReplyFn], None]:
    """``send``, run later (its turn): a refusal it raises is its answer."""

    def later(done: ReplyFn) -> None:
        try:
            send(done)
        except BrokerError as exc:
            done(exc.status, error_of(exc))

    return later


def _entries_first_page(context: Context, worker: Worker, conn: NodeConnection,
                        kind: str) -> tuple[Callable[[Response], dict[str, Any]],
                                            Callable[[], None]]:
    release = worker.cursors.reserve(conn)

    def first_page(response: Response) -> dict[str, Any]:
        page = queries.parse_scan(response.body, ctx=context.codec)
        release()
        handle = _register(context, worker, conn, page.cursor_id, page.more, kind)
        return {"cursor": handle, "rows": [list(p) for p in page.pairs], "more": page.more}

    return first_page, release


def _scan(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    limits = context.limits
    cache = context.cache_id(args)
    page_size = bounds.number(args, "page_size", 1024, limits)
    partition = bounds.number(args, "partitions", -1, limits)
    local = arg(args, "local", bool, False)
    conn, tx_id = _query_connection(context, worker, args)
    body = queries.scan(cache, page_size=page_size, partition=partition, local=local,
                        tx_id=tx_id, features=conn.features)
    first_page, release = _entries_first_page(context, worker, conn, "scan")
    _pinned_call(context, request, reply, conn, OpCode.QUERY_SCAN, body, first_page,
                 release=release)


def _select_row(context: Context, worker: Worker, request: Request, reply: ReplyFn) -> None:
    args = request.args
    table = bounds.text(arg(args, "table", str), "table")
    query = bounds.text(arg(args, "query", str), "query", "query")
    options = _query_args(context, args)
    cache = context.cache_id(args)
    conn, tx_id = _query_connection(context, worker, args)
    body, pending = context.codec.encode(queries.sql, cache, table, query, tx_id=tx_id,
                                         features=conn.features, **options)
    first_page, release = _entries_first_page(context, worker, conn, "sql_row")
    _pinned_call(context, request, reply, conn, OpCode.QUERY_SQL, body, first_page, pending,
                 release)


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
        ended_with_an_earlier_run("cursor", handle, "open it again")
        raise BadRequest(f"cursor {handle} is not open on this worker (exhausted or closed)")
    return cursor


def _parse_page(context: Context, cursor: Cursor,
                body: Any) -> tuple[list[list[Any]], bool]:
    if cursor.kind == "sql":
        return queries.parse_sql_fields_page(body, cursor.column_count, ctx=context.codec)
    pairs, more = queries.parse_scan_page(body, ctx=context.codec)
    return [list(p) for p in pairs], more


def _cursor_next(context: Context, worker: Worker, request: Request,
                 reply: ReplyFn) -> None:
    cursor = _cursor(worker, request.args)
    op, build = _PAGE_OPS[cursor.kind]

    def page(response: Response) -> dict[str, Any]:
        rows, more = _parse_page(context, cursor, response.body)
        if not more:
            worker.cursors.pop(cursor.handle, None)
        return {"rows": rows, "more": more}

    _pinned_call(context, request, reply, cursor.conn, op, build(cursor.cursor_id), page)


def _cursor_close(context: Context, worker: Worker, request: Request,
                  reply: ReplyFn) -> None:
    handle = arg(request.args, "cursor", int)
    cursor = worker.cursors.pop(handle, None)
    if cursor is None or not cursor.conn.is_open:
        reply(Status.OK, None)  # already exhausted, closed, or gone with its connection
        return
    _pinned_call(context, request, reply, cursor.conn, OpCode.RESOURCE_CLOSE,
                 queries.resource_close(cursor.cursor_id), lambda response: None)


HANDLERS: dict[str, Handler] = {
    "tx_start": _tx_start,
    "tx_end": _tx_end,
    "sql": _sql,
    "scan": _scan,
    "select_row": _select_row,
    "cursor_next": _cursor_next,
    "cursor_close": _cursor_close,
}

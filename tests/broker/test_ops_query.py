"""Query handlers over a fake node (no JVM), answered with captured pages: a scan's first page
opens a cursor owned by the worker, the next pages come from its connection, closing it
frees the server's cursor; SQL fields with column names."""

from __future__ import annotations

import json

from broker.limits import Limits
from protocol import OpCode
from protocol.ipc import Status
from tests.broker.fakenode import VECTORS, Harness, run

_QUERIES = {e["name"]: bytes.fromhex(e["response_hex"])
            for c in json.loads((VECTORS / "ops_queries.json").read_text())["connections"]
            if c["name"] == "queries-no-bit7"
            for e in c["exchanges"] if e.get("response_hex")}


def _answers(h: Harness, *pairs: tuple[OpCode, str]) -> None:
    for op, name in pairs:
        h.nodes[0].overrides[op] = lambda body, name=name: _QUERIES[name]


@run
async def test_a_scan_opens_a_cursor_pages_through_it_and_closes_it():
    h = await Harness(1).start()
    _answers(h, (OpCode.QUERY_SCAN, "scan"), (OpCode.QUERY_SCAN_CURSOR_GET_PAGE, "scan-page-2"))
    status, page = await h.call("scan", {"cache": "scan-cache", "page_size": 2})
    assert status == Status.OK, page
    assert page["rows"] == [[0, "v0"], [1, "v1"]] and page["more"] is True
    worker = h.workers._workers[b"w1"]
    assert len(worker.cursors) == 1
    handle = next(iter(worker.cursors))
    status, more = await h.call("cursor_next", {"cursor": handle})
    assert status == Status.OK, more
    assert (await h.call("cursor_close", {"cursor": handle}))[0] == Status.OK
    assert not worker.cursors and h.nodes[0].ops()[-1] == OpCode.RESOURCE_CLOSE
    assert (await h.call("cursor_next", {"cursor": handle}))[0] == Status.BAD_REQUEST
    await h.close()


@run
async def test_sql_fields_gives_rows_and_column_names():
    h = await Harness(1).start()
    _answers(h, (OpCode.QUERY_SQL_FIELDS, "select-page-1"))
    status, page = await h.call("sql", {"query": "SELECT * FROM OPS_T", "cache": "ops",
                                        "include_field_names": True, "page_size": 2})
    assert status == Status.OK, page
    assert page["fields"] == ["ID", "NAME", "V"] and page["rows"][1] == [1, "n1", 0.5]
    assert page["more"] and page["cursor"] in h.workers._workers[b"w1"].cursors
    assert h.nodes[0].ops()[-1] == OpCode.QUERY_SQL_FIELDS
    await h.close()


@run
async def test_create_and_drop_table_pass_the_gate_of_cache_starts_and_stops():
    """Each is a cache start or stop, a partition map exchange holding the whole cluster: a
    worker churning them through sql is paced like one calling cache_create (it bypassed
    every cache-change bound before); other statements and other workers go on."""
    h = await Harness(1, limits=Limits(cache_changes_per_second=0.001,
                                       cache_changes_burst=2)).start()
    _answers(h, (OpCode.QUERY_SQL_FIELDS, "select-page-1"))

    async def sql(query: str, worker: bytes = b"a") -> int:
        status, _ = await h.call("sql", {"query": query, "include_field_names": True},
                                 worker=worker)
        return status

    churn = ["CREATE TABLE t1 (id INT PRIMARY KEY)", "drop table t1",
             "/* again */ Create\n  TABLE t2 (id INT PRIMARY KEY)"]
    assert [await sql(q) for q in churn] == [Status.OK, Status.OK, Status.OVERLOADED]
    assert await sql("SELECT * FROM OPS_T") == Status.OK
    assert await sql("CREATE INDEX i ON OPS_T (V)") == Status.OK  # no cache starts
    assert await sql("DROP TABLE t1", worker=b"b") == Status.OK
    assert h.nodes[0].ops().count(OpCode.QUERY_SQL_FIELDS) == 5
    assert h.dispatcher.cache_lifecycle.refused == 1
    await h.close()


@run
async def test_handles_of_an_earlier_broker_run_are_told_apart_from_ones_never_given():
    """A ZeroMQ stub's socket reconnects to the next broker by itself and sends its open
    transaction's or cursor's handle there: CLUSTER_UNAVAILABLE of kind ended_with_broker
    (the stub raises BrokerUnavailable, nothing applied), never another transaction's."""
    from broker import workers

    h = await Harness(1).start()
    other_run = workers.RUN % ((1 << workers._RUN_BITS) - 1) + 1  # any mark but this run's
    earlier = (other_run << workers._SERIAL_BITS) + 1
    for op, args in (("cache_put", {"cache": "c", "key": 1, "value": 1, "tx": earlier}),
                     ("tx_end", {"tx": earlier, "commit": True}),
                     ("cursor_next", {"cursor": earlier})):
        status, error = await h.call(op, args)
        assert status == Status.CLUSTER_UNAVAILABLE, (op, error)
        assert error["kind"] == "ended_with_broker" and error["maybe_applied"] is False
        assert "earlier run of the broker" in error["message"]
    for never in (1, 12345, 1 << 60):  # not a handle any run gives: the worker's mistake
        status, error = await h.call("tx_end", {"tx": never, "commit": True})
        assert status == Status.BAD_REQUEST and "not open on this worker" in error["message"]
    status, handle = await h.call("tx_start", {})
    assert status == Status.OK and handle >> workers._SERIAL_BITS == workers.RUN
    assert not h.nodes[0].ops() or OpCode.CACHE_PUT not in h.nodes[0].ops()
    await h.close()

"""Query handlers over a fake node (no JVM), answered with captured pages: a scan's first page
opens a cursor owned by the worker, the next pages come from its connection, closing it
frees the server's cursor; SQL fields with column names."""

from __future__ import annotations

import json

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

"""sql() refuses a query that is not a str at the call pyignite fails at (sync: the call,
async: the await), before anything is sent; a query argument without a length is one."""

from __future__ import annotations

import asyncio

import pytest

import libclient
from libclient.cursors import _arg_list
from libclient.exceptions import ParameterError


@pytest.mark.parametrize("query", [None, 5, b"SELECT 1"])
def test_sync_sql_refuses_a_non_str_query_at_the_call(query):
    with pytest.raises(ParameterError, match="the query must be a str"):
        libclient.Client(broker="ipc:///nonexistent").sql(query)


def test_async_sql_refuses_it_when_awaited():
    client = libclient.AioClient(broker="ipc:///nonexistent")
    cursor = client.sql(None)  # nothing happens yet, as in pyignite

    async def open_it():
        await cursor

    with pytest.raises(ParameterError, match="the query must be a str"):
        asyncio.run(open_it())


@pytest.mark.parametrize("given, sent", [
    (None, []), (5, [5]), ([1, 2], [1, 2]), ((1,), [1]), ("ab", ["a", "b"]), ({3: 4}, [3]),
])
def test_query_arguments_as_pyignite_sends_them(given, sent):
    assert _arg_list(given) == sent

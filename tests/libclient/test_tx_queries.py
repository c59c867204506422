"""Queries opened in a transaction carry its handle (``tx``) only when the broker's hello listed
feature bit 18 (TX_AWARE_QUERIES); otherwise they run outside it, as in pyignite. Over ipc://
and unix:// (the ``endpoint`` fixture), sync and asyncio, against the fake broker."""

from __future__ import annotations

import asyncio

import pytest

from libclient import AioClient, Client
from protocol.features import Feature


def _query_args(fake, op: str) -> list[dict]:
    return [args for _, name, args in fake.requests if name == op]


@pytest.mark.parametrize("features", [[2, 3, Feature.TX_AWARE_QUERIES], [2, 3], None])
def test_sql_and_scan_carry_the_tx_only_with_bit_18(fake, features):
    fake.hello_extra["features"] = features
    aware = features is not None and Feature.TX_AWARE_QUERIES in features
    with Client(broker=fake.endpoint, timeout=5) as client:
        client.connect()
        cache = client.get_or_create_cache("c")
        cache.put(1, "one")
        list(client.sql("SELECT 2"))
        with client.tx_start() as tx:
            list(client.sql("SELECT 2"))
            list(cache.scan())
            tx.commit()
        list(cache.scan())
    handle = next(iter(_query_args(fake, "tx_end")))["tx"]
    sql, scans = _query_args(fake, "sql"), _query_args(fake, "scan")
    assert [q.get("tx") for q in sql] == [None, handle if aware else None]
    assert [q.get("tx") for q in scans] == [handle if aware else None, None]


def test_asyncio_sql_carries_the_tx_with_bit_18(fake):
    fake.hello_extra["features"] = [Feature.TX_AWARE_QUERIES]

    async def main() -> None:
        client = AioClient(broker=fake.endpoint)
        async with client.connect(), client.tx_start() as tx:
            async with client.sql("SELECT 2") as cursor:
                assert len([row async for row in cursor]) == 2
            await tx.rollback()

    asyncio.run(main())
    [query] = _query_args(fake, "sql")
    assert query["tx"] == _query_args(fake, "tx_end")[0]["tx"]

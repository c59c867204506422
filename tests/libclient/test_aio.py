"""AioClient against a fake broker: the same specs as the sync client, driven by asyncio, with
many tasks sharing one socket, per-call timeouts, async cursors and task-local transactions."""

from __future__ import annotations

import asyncio
import time

import pytest

from libclient import AioClient
from libclient import datatypes as dt
from libclient.aio_cache import AioCache
from libclient.exceptions import (
    BrokerTimeout,
    BrokerUnavailable,
    CacheCreationError,
    CacheError,
    NodeMismatchError,
    SQLError,
)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_connect_forms_and_errors(fake, endpoint):
    async def main():
        client = AioClient(broker=fake.endpoint)
        async with client.connect("127.0.0.1", 10800):
            assert client.protocol_context is not None
        await client.connect()
        await client.close()
        with pytest.raises(NodeMismatchError):
            await AioClient(broker=fake.endpoint).connect("10.0.0.1", 1)

    run(main())


def test_the_label_goes_in_hello(fake):
    async def main():
        client = AioClient(broker=fake.endpoint, label="uvicorn:api")
        await client.connect()
        await client.close()

    run(main())
    hellos = [args for _, name, args in fake.requests if name == "hello"]
    assert hellos[-1]["label"] == "uvicorn:api"


def test_no_broker(tmp_path):
    async def main():
        client = AioClient(broker=f"ipc://{tmp_path}/none.sock", handshake_timeout=0.3)
        started = time.monotonic()
        with pytest.raises(BrokerUnavailable) as exc:
            await client.connect()
        assert time.monotonic() - started < 15 and exc.value.maybe_applied is False

    run(main())


def test_many_tasks_share_one_socket(fake):
    async def main():
        async with AioClient(broker=fake.endpoint).connect() as conn:
            client = conn.client
            cache = await client.get_or_create_cache("aio")
            assert isinstance(cache, AioCache)
            await asyncio.gather(*[cache.put(f"k{i}", i) for i in range(300)])
            values = await asyncio.gather(*[cache.get(f"k{i}") for i in range(300)])
            assert values == list(range(300))
            assert len({peer for peer, _, _ in fake.requests}) == 1
            assert await cache.get_all(["k1", "k2", "zz"]) == {"k1": 1, "k2": 2}
            assert await cache.get_size() == 300
            assert await cache.get_and_put("k1", "one") == 1
            assert await cache.contains_keys(["k1", "k2"]) is True
            await cache.put(7, 7, key_hint=dt.IntObject)
            assert await cache.get(7, dt.IntObject) == 7
            assert await cache.get(7, dt.IntObject, 5) == 7  # pyignite's positional timeout
            await cache.remove_all()
            assert await cache.get_size() == 0

    run(main())


def test_cache_admin_and_errors(fake):
    async def main():
        client = AioClient(broker=fake.endpoint)
        await client.connect()
        cache = await client.create_cache("adm")
        with pytest.raises(CacheCreationError):
            await client.create_cache("adm")
        assert (await cache.settings())[0] == "adm"
        assert await client.get_cache_names() == ["adm"]
        same = await client.get_cache("adm")  # a coroutine, as in pyignite
        assert same.cache_id == cache.cache_id
        with pytest.raises(CacheError, match="does not exist"):
            await (await client.get_cache("missing")).get(1)
        node = await client.random_node()
        assert node.port == 10800
        cluster = client.get_cluster()
        assert await cluster.get_state() == 1
        await cache.destroy()
        await client.close()

    run(main())


def test_cursors(fake):
    async def main():
        client = AioClient(broker=fake.endpoint)
        await client.connect()
        cache = await client.get_or_create_cache("scan")
        await cache.put_all({i: str(i) for i in range(5)})
        async with cache.scan(page_size=2) as cursor:
            pairs = [pair async for pair in cursor]
        assert sorted(pairs) == [[i, str(i)] for i in range(5)]  # lists, as pyignite's
        cursor = client.sql("SELECT x 4", page_size=3, include_field_names=True)
        with pytest.raises(SQLError, match="uninitialized"):
            await cursor.__anext__()
        await cursor  # runs the query
        rows = [row async for row in cursor]
        assert rows == [["ID", "NAME"]] + [[i, f"row {i}"] for i in range(4)]
        half = await client.sql("SELECT x 9", page_size=2)
        assert await half.__anext__() == [0, "row 0"]
        await half.close()
        assert fake.requests[-1][1] == "cursor_close"
        with pytest.raises(SQLError):
            await client.sql("FAIL")
        await client.close()

    run(main())


def test_transactions_are_per_task(fake):
    async def main():
        client = AioClient(broker=fake.endpoint)
        await client.connect()
        cache = await client.get_or_create_cache("tx")
        await cache.put("k", 0)

        async def in_tx(n: int, commit: bool) -> None:
            async with client.tx_start(label=f"t{n}") as tx:
                await cache.put(f"t{n}", n)
                if commit:
                    await tx.commit()

        await asyncio.gather(*[in_tx(n, n % 2 == 0) for n in range(20)])
        puts = [a for _, op, a in fake.requests if op == "cache_put" and "tx" in a]
        assert len({a["tx"] for a in puts}) == 20  # each task its own transaction
        assert "tx" not in next(a for _, op, a in fake.requests if op == "cache_put")
        started = asyncio.Event()
        box: list = []

        async def commit_from_another_task() -> None:  # created before the tx: not in it
            await started.wait()
            await box[0].commit()

        other = asyncio.create_task(commit_from_another_task())
        box.append(await client.tx_start())
        started.set()
        with pytest.raises(CacheError, match="different thread or coroutine"):
            await other
        await client.close()

    run(main())


def test_per_call_timeout_is_a_timeout_error(fake):
    fake.silent_ops.add("cache_get")

    async def main():
        client = AioClient(broker=fake.endpoint)
        await client.connect()
        cache = await client.get_or_create_cache("slow")
        started = time.monotonic()
        with pytest.raises(asyncio.TimeoutError) as exc:
            await cache.get(1, timeout=0.2)
        assert isinstance(exc.value, BrokerTimeout)
        assert time.monotonic() - started < 30  # the call's own 0.2 s (the client sets none)
        fake.silent_ops.clear()
        assert await cache.get(1) is None
        await client.close()

    run(main())


def test_heartbeat_task_pings_while_a_cursor_is_held(fake):
    fake.hello_extra["worker_liveness_s"] = 0.3

    async def main():
        client = AioClient(broker=fake.endpoint)
        await client.connect()
        cursor = await client.sql("SELECT x 9", page_size=2)
        await asyncio.sleep(0.6)
        assert fake.ops().count("ping") >= 2
        await cursor.close()
        await asyncio.sleep(0.2)
        count = fake.ops().count("ping")
        await asyncio.sleep(0.4)
        assert fake.ops().count("ping") == count
        await client.close()

    run(main())


def test_events(fake):
    from libclient.monitoring import QueryEventListener

    seen: list = []

    class Listener(QueryEventListener):
        def on_query_success(self, event):
            seen.append(event.op_name)

    async def main():
        client = AioClient(broker=fake.endpoint, event_listeners=[Listener()])
        await client.connect()
        await (await client.get_or_create_cache("e")).put(1, 1)
        await client.close()

    run(main())
    assert seen == ["OP_CACHE_GET_OR_CREATE_WITH_NAME", "OP_CACHE_PUT"]


def test_reads_survive_a_broker_restart(fake_process, endpoint):
    first = fake_process().start()

    async def main():
        client = AioClient(broker=endpoint)
        await client.connect()
        first.kill()
        loop = asyncio.get_running_loop()
        loop.call_later(0.4, lambda: fake_process().start())
        names = await asyncio.gather(*[client.get_cache_names() for _ in range(10)])
        assert names == [[]] * 10
        await client.close()

    run(main())

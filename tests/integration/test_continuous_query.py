"""Continuous queries fanned out by one broker to many worker processes, over both transports,
on a real 2-node cluster: every subscriber sees every put of a writer, in order per key;
unsubscribing stops delivery; a killed subscriber does not disturb the others; losing the
node the query runs on is reported to subscribers as "events may have been missed"."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import queue
import signal
import time
import uuid
from typing import Any

import pytest

from broker.devcluster import DevCluster
from broker.devcluster.brokerproc import BrokerProcess
from libclient import AioClient, Client
from libclient.continuous import CacheEntryEvent, EventsMissed, EventType, JavaFilter, ScanQuery
from libclient.exceptions import CacheError

pytestmark = pytest.mark.integration

_BASE = int(os.environ.get("IGNITE_BROKER_TEST_BASE_PORT", "10800")) + 80
SUBSCRIBERS = 8
KEYS = 10
PUTS = 300
#: A liveness bound for waits (not a timing assertion): generous for a loaded 2-core machine.
PATIENCE = 120.0
TRANSPORTS = ["ipc", "unix"]


@pytest.fixture(scope="module")
def cluster():
    with DevCluster(nodes=2, base_port=_BASE) as c:
        yield c


@pytest.fixture(scope="module")
def broker(cluster, tmp_path_factory):
    proc = BrokerProcess(cluster.addresses, workdir=tmp_path_factory.mktemp("cq"))
    proc.start(wait_nodes=2)
    try:
        yield proc
    finally:
        assert proc.stop() == 0
        print(proc.log()[-4000:])


def _endpoint(broker: BrokerProcess, transport: str) -> str:
    return broker.endpoint if transport == "ipc" else broker.stream_endpoint


def _new_cache(broker: BrokerProcess, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with Client(broker=broker.endpoint) as client:
        client.connect()
        # PARTITIONED, backups=1, FULL_SYNC: an acknowledged write is on its backup too.
        client.get_or_create_cache({0: name, 1: 2, 3: 1, 4: 0})
    return name


def _record(item: Any) -> tuple[Any, ...]:
    if isinstance(item, EventsMissed):
        return ("missed", item.reason)
    return (item.key, item.old_value, item.value, int(item.event_type))


def _open_channels(client: Client) -> int:
    return sum(not chan.closed for chan in client._transport._channels)


def _subscriber(endpoint: str, cache_name: str, until_key: str, ready, out) -> None:
    """Subscribe, say so, then collect events until the ``until_key`` put arrives."""
    got: list[tuple[Any, ...]] = []
    with Client(broker=endpoint) as client:
        client.connect()
        with client.get_cache(cache_name).query_continuous() as events:
            ready.put((os.getpid(), events.node))
            while True:
                item = events.get(timeout=PATIENCE)
                if item is None:
                    break
                got.append(_record(item))
                if isinstance(item, CacheEntryEvent) and item.key == until_key:
                    break
    out.put((os.getpid(), got))


def _start_subscribers(endpoints: list[str], cache_name: str, until_key: str):
    ctx = multiprocessing.get_context("fork")
    ready, out = ctx.Queue(), ctx.Queue()
    procs = [ctx.Process(target=_subscriber, args=(e, cache_name, until_key, ready, out))
             for e in endpoints]
    for p in procs:
        p.start()
    nodes = [ready.get(timeout=PATIENCE) for _ in procs]
    return procs, out, nodes


def _collect(procs, out) -> dict[int, list[tuple[Any, ...]]]:
    results = dict(out.get(timeout=PATIENCE) for _ in procs)
    for p in procs:
        p.join(PATIENCE)
    return results


def _write(endpoint: str, cache_name: str, puts: int) -> list[tuple[Any, ...]]:
    """Put ``puts`` values over KEYS keys; the expected events, in order."""
    expected = []
    last: dict[str, int] = {}
    with Client(broker=endpoint) as client:
        client.connect()
        cache = client.get_cache(cache_name)
        for i in range(puts):
            key = f"k{i % KEYS}"
            cache.put(key, i)
            old = last.get(key)
            expected.append((key, old, i, EventType.CREATED if old is None else EventType.UPDATED))
            last[key] = i
    return expected


def _per_key(events: list[tuple[Any, ...]]) -> dict[Any, list[tuple[Any, ...]]]:
    keyed: dict[Any, list[tuple[Any, ...]]] = {}
    for event in events:
        keyed.setdefault(event[0], []).append(event)
    return keyed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_subscriber_sees_every_put_in_order_per_key(broker, transport):
    name = _new_cache(broker, f"cq-fan-{transport}")
    endpoint = _endpoint(broker, transport)
    procs, out, nodes = _start_subscribers([endpoint] * SUBSCRIBERS, name, "done")
    assert len({node for _, node in nodes}) == 1, f"one server query for all: {nodes}"
    started = time.monotonic()
    expected = [(k, o, v, int(t)) for k, o, v, t in _write(endpoint, name, PUTS)]
    with Client(broker=endpoint) as client:
        client.connect()
        client.get_cache(name).put("done", -1)
    results = _collect(procs, out)
    took = time.monotonic() - started  # a figure for the report, not an assertion
    assert len(results) == SUBSCRIBERS
    want = _per_key(expected)
    for pid, got in results.items():
        assert got[-1] == ("done", None, -1, int(EventType.CREATED)), pid
        assert not [g for g in got if g[0] == "missed"], pid
        assert _per_key(got[:-1]) == want, f"subscriber {pid}: events lost or out of order"
    print(f"{transport}: {SUBSCRIBERS} subscribers x {PUTS} puts = "
          f"{sum(len(g) - 1 for g in results.values())} events delivered in {took:.2f}s "
          "(puts one at a time, subscribers' exit included)")


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_unsubscribe_stops_delivery_and_others_go_on(broker, transport):
    name = _new_cache(broker, f"cq-unsub-{transport}")
    with Client(broker=_endpoint(broker, transport)) as client:
        client.connect()
        cache = client.get_cache(name)
        first, second = cache.query_continuous(), cache.query_continuous()
        cache.put("a", 1)
        for events in (first, second):
            assert _record(events.get(timeout=PATIENCE)) == ("a", None, 1, 0)
        first.close()
        cache.put("a", 2)
        assert _record(second.get(timeout=PATIENCE)) == ("a", 1, 2, 1)
        assert first.get(timeout=0.2) is None  # closed: nothing more
        second.close()
        # The last subscriber gone, a new subscription starts a new server query that works.
        with cache.query_continuous() as third:
            cache.put("a", 3)
            assert _record(third.get(timeout=PATIENCE)) == ("a", 2, 3, 1)


def test_listener_callback_gets_events(broker):
    name = _new_cache(broker, "cq-listener")
    seen: list[Any] = []
    with Client(broker=broker.stream_endpoint) as client:
        client.connect()
        cache = client.get_cache(name)
        with cache.query_continuous(listener=seen.append):
            for i in range(5):
                cache.put(i, i * 10)
            deadline = time.monotonic() + PATIENCE
            while len(seen) < 5 and time.monotonic() < deadline:
                time.sleep(0.05)
    # Keys of different primaries may come out of write order (docs/ipc.md).
    assert sorted((e.key, e.value) for e in seen) == [(i, i * 10) for i in range(5)]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_async_iterator(broker, transport):
    name = _new_cache(broker, f"cq-aio-{transport}")

    async def run() -> list[tuple[Any, ...]]:
        got = []
        client = AioClient(broker=_endpoint(broker, transport))
        async with client.connect():
            cache = await client.get_cache(name)
            async with await cache.query_continuous() as events:
                for i in range(3):
                    await cache.put("x", i)
                async for event in events:
                    got.append(_record(event))
                    if len(got) == 3:
                        break
        return got

    assert asyncio.run(run()) == [("x", None, 0, 0), ("x", 0, 1, 1), ("x", 1, 2, 1)]


def test_a_killed_subscriber_does_not_disturb_the_others(broker):
    name = _new_cache(broker, "cq-kill")
    endpoints = [broker.endpoint, broker.stream_endpoint] * 3
    procs, out, _ = _start_subscribers(endpoints, name, "done")
    victims = procs[:2]  # one of each transport
    for p in victims:
        os.kill(p.pid, signal.SIGKILL)
        p.join(PATIENCE)
    expected = [(k, o, v, int(t)) for k, o, v, t in _write(broker.endpoint, name, PUTS)]
    with Client(broker=broker.endpoint) as client:
        client.connect()
        client.get_cache(name).put("done", -1)
    survivors = procs[2:]
    results = _collect(survivors, out)
    assert len(results) == len(survivors)
    for pid, got in results.items():
        assert _per_key(got[:-1]) == _per_key(expected), pid


def test_node_loss_is_reported_and_the_query_comes_back(broker, cluster):
    name = _new_cache(broker, "cq-node-loss")
    endpoints = [broker.endpoint, broker.stream_endpoint] * 2
    procs, out, nodes = _start_subscribers(endpoints, name, "done")
    node = nodes[0][1]
    victim = [f"{h}:{p}" for h, p in cluster.addresses].index(node)
    written = 0
    try:
        with Client(broker=broker.endpoint) as client:
            client.connect()
            cache = client.get_cache(name)
            for i in range(100):
                cache.put(f"k{i % KEYS}", i)
            written = 100
            cluster.kill_node(victim, signal.SIGKILL)
            for i in range(100, 200):
                try:
                    cache.put(f"k{i % KEYS}", i)
                    written += 1
                except Exception:  # a write in flight on the killed node may fail
                    pass
            # The query runs again on the other node once the broker has seen the loss: put
            # "done" until every subscriber has had one.
            results: dict[int, list[tuple[Any, ...]]] = {}
            deadline = time.monotonic() + PATIENCE
            while len(results) < len(procs) and time.monotonic() < deadline:
                cache.put("done", -1)
                with contextlib.suppress(queue.Empty):
                    pid, got = out.get(timeout=0.2)
                    results[pid] = got
        for p in procs:
            p.join(PATIENCE)
    finally:
        cluster.start_node(victim)
    assert len(results) == len(procs)
    for pid, got in results.items():
        missed = [i for i, g in enumerate(got) if g[0] == "missed"]
        events = [g for g in got if g[0] != "missed"]
        print(f"subscriber {pid}: {len(events) - 1} of {written} events, missed at {missed}")
        assert missed, f"subscriber {pid} was not told that events may have been missed"
        assert got[-1][0] == "done"
        for key, seq in _per_key(events[:-1]).items():
            values = [g[2] for g in seq]
            assert values == sorted(values), f"key {key} out of order"


def test_losing_another_node_loses_no_event(broker, cluster):
    """backups=1: when a node other than the query's dies, Ignite's continuous-query failover
    (backup queues) delivers every acknowledged put, and the broker has nothing to restart."""
    name = _new_cache(broker, "cq-other-node")
    endpoints = [broker.endpoint, broker.stream_endpoint]
    procs, out, nodes = _start_subscribers(endpoints, name, "done")
    addresses = [f"{h}:{p}" for h, p in cluster.addresses]
    victim = 1 - addresses.index(nodes[0][1])
    acked: list[tuple[str, int]] = []
    try:
        with Client(broker=broker.endpoint) as client:
            client.connect()
            cache = client.get_cache(name)
            for i in range(200):
                if i == 100:
                    cluster.kill_node(victim, signal.SIGKILL)
                key = f"k{i % KEYS}"
                with contextlib.suppress(Exception):  # a put in flight on the killed node
                    cache.put(key, i)
                    acked.append((key, i))
            cache.put("done", -1)
            results = _collect(procs, out)
    finally:
        cluster.start_node(victim)
    assert len(results) == len(procs)
    for pid, got in results.items():
        events = [(g[0], g[2]) for g in got[:-1]]
        print(f"subscriber {pid}: {len(events)} events for {len(acked)} acknowledged puts, "
              f"missed notices: {sum(g[0] == 'missed' for g in got)}")
        assert not [g for g in got if g[0] == "missed"], pid
        assert set(acked) <= set(events), f"subscriber {pid}: acknowledged puts not delivered"
        for key, seq in _per_key(got[:-1]).items():
            values = [g[2] for g in seq]
            assert values == sorted(values), f"key {key} out of order"


# -- initial query and remote filter ------------------------------------------------------

#: A remote filter on every dev node's class path (broker/devcluster/IgniteDevNode.java).
PREFIX_FILTER = "IgniteDevNode$KeyPrefixFilter"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_initial_query_pages_through_the_cache_then_events_follow(broker, transport):
    name = _new_cache(broker, f"cq-initial-{transport}")
    with Client(broker=_endpoint(broker, transport)) as client:
        client.connect()
        cache = client.get_cache(name)
        cache.put_all({f"old{i}": i for i in range(10)})
        with cache.query_continuous(initial_query=ScanQuery(page_size=3)) as events:
            assert events.initial is not None
            first = next(events.initial)
            cache.put("new", 1)  # after the subscription runs: an event, not in the scan
            rest = list(events.initial)  # the later pages, fetched through the broker
            assert sorted(map(tuple, [first, *rest])) == sorted(
                (f"old{i}", i) for i in range(10))
            assert _record(events.get(timeout=PATIENCE)) == ("new", None, 1, 0)
        assert events.initial is not None
        with pytest.raises(StopIteration):  # closed with its subscription
            next(events.initial)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_async_initial_query(broker, transport):
    name = _new_cache(broker, f"cq-initial-aio-{transport}")

    async def run() -> tuple[list[tuple[Any, ...]], tuple[Any, ...]]:
        client = AioClient(broker=_endpoint(broker, transport))
        async with client.connect():
            cache = await client.get_cache(name)
            await cache.put_all({i: str(i) for i in range(7)})
            query = cache.query_continuous(initial_query=ScanQuery(page_size=2))
            async with await query as events:
                assert events.initial is not None
                pairs = [tuple(pair) async for pair in events.initial]
                await cache.put(100, "x")
                event = _record(await events.get(timeout=PATIENCE))
        return pairs, event

    pairs, event = asyncio.run(run())
    assert sorted(pairs) == [(i, str(i)) for i in range(7)]
    assert event == (100, None, "x", 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_remote_filter_runs_on_the_nodes(broker, transport):
    name = _new_cache(broker, f"cq-filter-{transport}")
    a_only = JavaFilter(PREFIX_FILTER, {"prefix": "a"})
    with Client(broker=_endpoint(broker, transport)) as client:
        client.connect()
        cache = client.get_cache(name)
        with cache.query_continuous(remote_filter=a_only) as filtered, \
                cache.query_continuous() as everything:
            for key in ("b1", "a1", "b2", "a2", "a-end", "b-end"):
                cache.put(key, key.upper())
            got = []
            while not got or got[-1][0] != "a-end":
                got.append(_record(filtered.get(timeout=PATIENCE)))
            assert got == [("a1", None, "A1", 0), ("a2", None, "A2", 0),
                           ("a-end", None, "A-END", 0)]
            seen = [_record(everything.get(timeout=PATIENCE))[0] for _ in range(6)]
            assert seen == ["b1", "a1", "b2", "a2", "a-end", "b-end"]  # its own server query


def test_async_remote_filter_and_a_filter_the_node_cannot_make(broker):
    name = _new_cache(broker, "cq-filter-aio")

    async def run() -> tuple[Any, ...]:
        client = AioClient(broker=broker.stream_endpoint)
        async with client.connect():
            cache = await client.get_cache(name)
            refused = cache.query_continuous(remote_filter=JavaFilter("org.example.NoSuchFilter"))
            with pytest.raises(CacheError, match="NoSuchFilter"):
                await refused
            assert refused._chan is None  # its connection closed with the refusal
            query = cache.query_continuous(remote_filter=JavaFilter(PREFIX_FILTER,
                                                                    {"prefix": "k"}))
            async with await query as events:
                await cache.put("z", 0)
                await cache.put("k", 1)
                return _record(await events.get(timeout=PATIENCE))

    assert asyncio.run(run()) == ("k", None, 1, 0)


def test_a_filter_the_node_cannot_make_fails_the_blocking_subscription(broker):
    name = _new_cache(broker, "cq-filter-bad")
    with Client(broker=broker.endpoint) as client:
        client.connect()
        cache = client.get_cache(name)
        before = _open_channels(client)
        with pytest.raises(CacheError, match="NoSuchFilter"):
            cache.query_continuous(remote_filter=JavaFilter("org.example.NoSuchFilter"))
        with pytest.raises(CacheError):  # a field the class does not have
            cache.query_continuous(remote_filter=JavaFilter(PREFIX_FILTER, {"nope": 1}))
        assert _open_channels(client) == before  # a refused subscription keeps no connection
        with cache.query_continuous() as events:  # the broker and its node go on
            cache.put("still", "fine")
            assert _record(events.get(timeout=PATIENCE)) == ("still", None, "fine", 0)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_closing_an_async_client_closes_its_subscriptions_connections(broker, transport):
    """Was: an AioClient closed with a subscription open left that subscription's connection
    open (the sync client closed it)."""
    name = _new_cache(broker, f"cq-aio-close-{transport}")

    async def run() -> tuple[bool, bool]:
        client = AioClient(broker=_endpoint(broker, transport))
        async with client.connect():
            cache = await client.get_cache(name)
            events = await cache.query_continuous()
            chan = events._chan
            assert chan is not None
            open_before = not chan.closed
        return open_before, chan.closed

    assert asyncio.run(run()) == (True, True)

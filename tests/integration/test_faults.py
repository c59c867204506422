"""Faults between the broker and the nodes (issue 11): a real broker reaches a real 3-node
cluster only through fault-injecting proxies (faultproxy.py); while workers on both transports
write unique keys with put_if_absent and read them back, node 0's proxy turns on one fault for a
few seconds and heals. Judged: no acknowledged write lost, none applied twice, no wrong read,
no failed request for the faults that break no connection (latency, slow reads), and node 0
back in routing after the heal. Reported, not judged: failed requests by kind, "may have been
applied" writes and how many landed, the time to route around the fault and to re-admit."""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import Client
from libclient.datatypes import cache_config as cc
from libclient.datatypes import prop_codes as p
from tests.integration.daemon import WAIT, wait_until
from tests.integration.faultproxy import FaultProxy
from tests.integration.soak import kind_of, maybe_applied

pytestmark = pytest.mark.integration

TRANSPORTS = ("unix", "ipc")
THREADS = 2  # per transport, each its own connection
FAULT_SECONDS = 3.0
SLOW = 1.0  # a request longer than this counts as not yet routed around

# Detect and re-admit a node in a few seconds, so the file stays cheap in CI.
SETTINGS = {"cluster.heartbeat_interval": 1.0, "cluster.heartbeat_timeout": 1.0,
            "cluster.connect_timeout": 2.0, "cluster.reconnect_max_backoff": 1.0,
            "cluster.node_warmup": 0.5}


@pytest.fixture(scope="module")
def proxies(ignite_cluster3) -> Iterator[list[FaultProxy]]:
    started = [FaultProxy(address).start() for address in ignite_cluster3.addresses]
    try:
        yield started
    finally:
        for proxy in started:
            proxy.close()


@pytest.fixture(scope="module")
def broker(proxies, tmp_path_factory) -> Iterator[BrokerProcess]:
    with running_broker([proxy.address for proxy in proxies], tmp_path_factory.mktemp("faults"),
                        SETTINGS, wait_nodes=3) as proc:
        yield proc


def _endpoint(broker: BrokerProcess, transport: str) -> str:
    return broker.stream_endpoint if transport == "unix" else broker.endpoint


class Load:
    """Threads on both transports: put_if_absent of a fresh key, then get it; every outcome
    kept with its times."""

    def __init__(self, broker: BrokerProcess, cache_name: str) -> None:
        self.broker, self.cache_name = broker, cache_name
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.acked: list[tuple[str, int]] = []
        self.ambiguous: list[tuple[str, int]] = []
        self.duplicates: list[str] = []
        self.wrong: list[str] = []
        self.failed: collections.Counter[str] = collections.Counter()
        self.requests: list[tuple[float, float, bool]] = []  # (start, end, ok)
        self.threads = [threading.Thread(target=self._run, args=(t, n), daemon=True)
                        for t in TRANSPORTS for n in range(THREADS)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(WAIT)

    def count(self) -> int:
        with self.lock:
            return len(self.requests)

    def _call(self, transport: str, what: str, fn: Callable[[], Any]) -> tuple[bool, Any]:
        started = time.monotonic()
        try:
            result = fn()
        except Exception as exc:
            with self.lock:
                self.requests.append((started, time.monotonic(), False))
                self.failed[f"{transport} {what}: {kind_of(exc)}"] += 1
            return False, exc
        with self.lock:
            self.requests.append((started, time.monotonic(), True))
        return True, result

    def _run(self, transport: str, n: int) -> None:
        client = Client(broker=_endpoint(self.broker, transport), timeout=30.0)
        client.connect()
        cache = client.get_cache(self.cache_name)
        i = 0
        while not self.stop.is_set():
            i += 1
            key = f"{transport}-{n}-{i}"
            ok, result = self._call(transport, "put_if_absent",
                                    lambda key=key, i=i: cache.put_if_absent(key, i))
            with self.lock:
                if not ok:
                    if maybe_applied(result):
                        self.ambiguous.append((key, i))
                    continue
                if result is not True:
                    self.duplicates.append(key)
                self.acked.append((key, i))
            ok, got = self._call(transport, "get", lambda key=key: cache.get(key))
            if ok and got != i:
                with self.lock:
                    self.wrong.append(f"{key}: {got!r}")
        client.close()


def _node0_ready(broker: BrokerProcess, proxy: FaultProxy) -> bool:
    address = f"{proxy.address[0]}:{proxy.address[1]}"
    rows = broker.admin("show nodes")
    assert isinstance(rows, list)
    return any(r["address"] == address and r["state"] == "ready" for r in rows)


def _inject(proxy: FaultProxy, fault: str) -> None:
    if fault == "latency":
        proxy.set_latency(0.2, jitter=0.1)
    elif fault == "slow_reads":
        proxy.set_slow_reads(2048)
    elif fault == "reset":
        proxy.reset()
    elif fault == "refuse":
        proxy.reset(refuse=True)
    elif fault == "half_open":
        proxy.half_open()
    elif fault == "black_hole":
        proxy.black_hole()
    elif fault == "silent_handshake":
        proxy.silent_handshake()
        proxy.reset()  # the broker reconnects, to a node that never answers the handshake
    else:
        raise AssertionError(fault)


FAULTS = ["latency", "slow_reads", "reset", "refuse", "half_open", "black_hole",
          "silent_handshake"]
HARMLESS = {"latency", "slow_reads"}  # no connection breaks: no request may fail


@pytest.mark.parametrize("fault", FAULTS)
def test_fault_on_one_node(broker, proxies, fault):
    proxy = proxies[0]
    name = f"faults-{fault}"
    with Client(broker=broker.stream_endpoint, timeout=60.0) as client:
        client.connect()
        cache = client.get_or_create_cache({
            p.PROP_NAME: name, p.PROP_CACHE_MODE: cc.CacheMode.PARTITIONED,
            p.PROP_BACKUPS_NUMBER: 1,
            p.PROP_WRITE_SYNCHRONIZATION_MODE: cc.WriteSynchronizationMode.FULL_SYNC})
        wait_until(lambda: _node0_ready(broker, proxy), "node 0 in routing before the fault")
        with Load(broker, name) as load:
            wait_until(lambda: load.count() >= 200, "requests before the fault")
            faulted = time.monotonic()
            _inject(proxy, fault)
            time.sleep(FAULT_SECONDS)  # the fault's length, not a speed claim
            proxy.heal()
            healed = time.monotonic()
            wait_until(lambda: _node0_ready(broker, proxy), "node 0 back in routing")
            readmitted = time.monotonic() - healed
            done = load.count()
            wait_until(lambda: load.count() >= done + 200, "requests after the heal")
        keys = [k for k, _ in load.acked + load.ambiguous]
        stored = {}
        for at in range(0, len(keys), 1000):
            stored.update(cache.get_all(keys[at:at + 1000]))
        size = cache.get_size()
    lost = [k for k, v in load.acked if stored.get(k) != v]
    landed = sum(stored.get(k) == v for k, v in load.ambiguous)
    slow = [end for start, end, ok in load.requests
            if start < healed and end > faulted and (not ok or end - start > SLOW)]
    route_around = (max(slow) - faulted) if slow else 0.0
    print(f"\nFAULT {fault}: requests {len(load.requests)}, acked writes {len(load.acked)}, "
          f"failed {sum(load.failed.values())} {dict(load.failed)}, may have been applied "
          f"{len(load.ambiguous)} (landed {landed}), lost {len(lost)}, duplicated "
          f"{len(load.duplicates)}, wrong reads {len(load.wrong)}, cache size {size}, "
          f"routed around after {route_around:.2f}s, re-admitted {readmitted:.2f}s after the "
          f"heal")
    assert lost == []
    assert load.duplicates == [] and load.wrong == []
    assert size == len(load.acked) + landed
    if fault in HARMLESS:
        assert not load.failed

"""The main job of the README: a local Ignite dev cluster, one broker, and several worker
processes sharing it through libclient; prints what each did, then tears everything down."""

from __future__ import annotations

import multiprocessing
import os
import time
from typing import Any

from .devcluster import DevCluster
from .devcluster.brokerproc import BrokerProcess
from .devcluster.netstat import established_connections

_KEYS_PER_WORKER = 300
_DEMO_BASE_PORT = 10900
_CACHE = "demo"


def _worker(index: int, endpoint: str, workers: int, barrier: Any, results: Any) -> None:
    from libclient import Client
    from libclient.datatypes import IntObject

    started = time.perf_counter()
    wrong = 0
    with Client(broker=endpoint) as client:
        client.connect()
        cache = client.get_or_create_cache(_CACHE)
        for j in range(_KEYS_PER_WORKER):
            cache.put(f"w{index}-k{j}", {0: f"value {j} from worker {index}", 1: j * 1.5,
                                         2: bytes([index, j % 256])}[j % 3])
        cache.put(index, index * 1000, key_hint=IntObject)
        barrier.wait(timeout=120)  # every worker has written: now read a neighbour's key
        for j in range(_KEYS_PER_WORKER):
            expected = {0: f"value {j} from worker {index}", 1: j * 1.5,
                        2: bytes([index, j % 256])}[j % 3]
            wrong += cache.get(f"w{index}-k{j}") != expected
        neighbour = (index + 1) % workers
        seen = cache.get(neighbour, key_hint=IntObject)
    elapsed = time.perf_counter() - started
    results.put((index, os.getpid(), 2 * _KEYS_PER_WORKER + 2, wrong, seen, elapsed,
                 endpoint.split(":", 1)[0]))


def main(workers: int = 4, nodes: int = 2) -> int:
    print(f"== starting a {nodes}-node Ignite dev cluster (first run downloads the jars)")
    with DevCluster(nodes=nodes, base_port=_DEMO_BASE_PORT, notify=print) as cluster:
        cluster.start()
        print(f"   Ignite {cluster.ignite_version} up in {cluster.start_seconds:.1f}s at "
              + ", ".join(f"{h}:{p}" for h, p in cluster.addresses))
        with BrokerProcess(cluster.addresses) as broker:
            broker.start(wait_nodes=nodes)
            assert broker.proc is not None
            print(f"== broker pid {broker.proc.pid} serving {broker.stream_endpoint} and "
                  f"{broker.endpoint}; even workers use the first, odd ones the second")
            _run_workers(workers, [broker.stream_endpoint, broker.endpoint])
            ports = {p for _, p in cluster.addresses}
            held = established_connections(broker.proc.pid, ports)
            print(f"== cluster connections held by the broker: {held} "
                  f"(pyignite, one partition-aware client per worker: {workers * nodes})")
        print("== broker stopped (SIGTERM, drained)")
    print("== dev cluster stopped")
    return 0


def _run_workers(workers: int, endpoints: list[str]) -> None:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    barrier = ctx.Barrier(workers)
    procs = [ctx.Process(target=_worker,
                         args=(i, endpoints[i % len(endpoints)], workers, barrier, results))
             for i in range(workers)]
    for proc in procs:
        proc.start()
    rows = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join()
    for index, pid, ops, wrong, seen, elapsed, transport in sorted(rows):
        print(f"   worker {index} (pid {pid}, {transport}://): {ops} ops in "
              f"{elapsed * 1000:.0f} ms, "
              f"{wrong} wrong values, read neighbour's key -> {seen}")

"""A cluster hang without the broker: pyignite alone against a real 2-node Ignite 2.17 dev
cluster (not a test; run by hand). One client destroys and re-creates a cache in a loop while
three others put into it and remove_all/clear it. Within a few hundred destroy/create rounds
the partition map exchange on one node waits forever for a partition release
(GridDhtPartitionsExchangeFuture.waitPartitionRelease) while an atomic put on the other waits
for its update future: every later cache start, and every operation behind it, hangs.

    .venv/bin/ignite-broker dev-cluster start --nodes 2 --base-port 12700
    .venv/bin/python -m tests.integration.ignite_hang_repro --ports 12700,12701 --seconds 120
    jstack <node pid>      # exchange-worker in waitPartitionRelease; a client-connector in put0
    .venv/bin/ignite-broker dev-cluster stop --base-port 12700

Prints the progress every 2 s and "HANG" once nothing has completed for 40 s (exit code 1).
With ``--broker ENDPOINT`` the same clients are libclient workers of a running broker (whose
cache-change pacing should be lifted to churn as fast: limits.cache_changes_per_second,
limits.cache_changes_burst and limits.cache_changes_duty), to
check that the broker keeps each start or stop alone on its cache.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any

from pyignite import Client

CACHE = "fuzz-0"


def _client(ports: list[int], broker: str | None) -> Any:
    if broker:
        from libclient import Client as BrokerClient

        client = BrokerClient(broker=broker, timeout=30)
        client.connect()
        return client
    client = Client(timeout=30)
    client.connect([("127.0.0.1", port) for port in ports])
    return client


def _worker(kind: str, ports: list[int], broker: str | None, stop: float,
            counts: dict[str, int], last: list[float]) -> None:
    client = _client(ports, broker)
    while time.monotonic() < stop:
        try:
            if kind == "churn":
                client.get_or_create_cache(CACHE).destroy()
                client.get_or_create_cache(CACHE)
                counts["churn"] += 1
            else:
                cache = client.get_or_create_cache(CACHE)
                for i in range(20):
                    cache.put(i, "x" * 100)
                cache.clear() if kind == "clear" else cache.remove_all()
                counts["ops"] += 1
            last[0] = time.monotonic()
        except Exception:  # the cache is gone under it: expected, counted
            counts["errors"] += 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ports", default="12700,12701")
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--broker", default=None, help="a broker endpoint: go through it")
    opts = p.parse_args()
    ports = [int(port) for port in opts.ports.split(",")]
    stop = time.monotonic() + opts.seconds
    counts = {"churn": 0, "ops": 0, "errors": 0}
    last = [time.monotonic()]
    for kind in ("churn", "remove_all", "remove_all", "clear"):
        threading.Thread(target=_worker, args=(kind, ports, opts.broker, stop, counts, last),
                         daemon=True).start()
    while time.monotonic() < stop:
        time.sleep(2)
        idle = time.monotonic() - last[0]
        print(f"{counts} nothing completed for {idle:.1f} s", flush=True)
        if idle > 40:
            print("HANG")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

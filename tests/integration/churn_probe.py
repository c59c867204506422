"""How much one worker that starts and stops caches in a loop costs its neighbours (not a test:
a probe for docs/reliability.md, run by hand on a quiet machine).

A real 2-node cluster and a real broker; a well-behaved worker times sequential gets (idle, then
while a churning worker creates and destroys caches as fast as the broker lets it), once with
the broker's default cache-change pacing and once with it lifted. Prints the p50/p99 of each
and the p99 ratios.

    .venv/bin/python -m tests.integration.churn_probe --base-port 12900 --seconds 20
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import threading
import time
from typing import Any

from broker.devcluster import DevCluster
from broker.devcluster.brokerproc import running_broker
from libclient import Client
from libclient.exceptions import BrokerOverloaded

_LIFTED = {"limits.cache_changes_per_second": 1e6, "limits.cache_changes_burst": 1_000_000,
           "limits.cache_changes_duty": 1.0}


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return (ordered[len(ordered) // 2] * 1000, ordered[int(len(ordered) * 0.99)] * 1000)


def _time_gets(endpoint: str, seconds: float) -> list[float]:
    samples = []
    with Client(broker=endpoint) as client:
        client.connect()
        cache = client.get_or_create_cache("churn-probe")
        cache.put(1, "v")
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            start = time.perf_counter()
            assert cache.get(1) == "v"
            samples.append(time.perf_counter() - start)
    return samples


def _churn(endpoint: str, stop: threading.Event, counts: dict[str, int]) -> None:
    with Client(broker=endpoint) as client:
        client.connect()
        i = 0
        while not stop.is_set():
            name = f"churn-{i % 8}"
            i += 1
            try:
                client.create_cache(name)
                client.get_cache(name).destroy()
                counts["changes"] += 2
            except BrokerOverloaded:
                counts["refused"] += 1
                time.sleep(0.05)
            except Exception:  # e.g. the cache exists after a refused destroy
                counts["errors"] += 1
                with contextlib.suppress(Exception):
                    client.get_cache(name).destroy()


def _measure(cluster: DevCluster, settings: dict[str, Any], seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as workdir, \
            running_broker(cluster.addresses, workdir, settings, wait_nodes=2) as broker:
        idle = _time_gets(broker.stream_endpoint, seconds / 2)
        stop = threading.Event()
        counts = {"changes": 0, "refused": 0, "errors": 0}
        churner = threading.Thread(target=_churn, args=(broker.endpoint, stop, counts))
        churner.start()
        try:
            busy = _time_gets(broker.stream_endpoint, seconds)
        finally:
            stop.set()
            churner.join()
    (idle50, idle99), (busy50, busy99) = _percentiles(idle), _percentiles(busy)
    return {"idle_ms": (round(idle50, 3), round(idle99, 3)),
            "churn_ms": (round(busy50, 3), round(busy99, 3)),
            "p99_ratio": round(busy99 / idle99, 2),
            "changes_per_s": round(counts["changes"] / seconds, 1), **counts}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base-port", type=int, default=12900)
    p.add_argument("--seconds", type=float, default=20.0)
    opts = p.parse_args()
    with DevCluster(2, opts.base_port) as cluster:
        for label, settings in (("paced (defaults)", {}), ("lifted", _LIFTED)):
            print(label, _measure(cluster, settings, opts.seconds), flush=True)


if __name__ == "__main__":
    main()

"""What the metrics cost a request: the broker's dispatcher, node pool and node connections
over fake nodes on the in-memory network (tests/broker/fakenode.py: no JVM, no sockets), run
with the real instruments and with do-nothing ones, interleaved; CPU microseconds per request.

    .venv/bin/python bench/metrics_cost.py [--requests 20000] [--rounds 7]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from broker.metrics import Metrics
from broker.workers import Peer
from tests.broker.fakenode import Harness

_GET = {"cache": "ops-kv", "key": 1}
_BATCH = 200


class NoMetrics(Metrics):
    """Instruments that count nothing: the broker as it was before metrics."""

    def answered(self, op: str, status: int, seconds: float, account: Any) -> None:
        pass

    def node_answered(self, op: Any, seconds: float) -> None:
        pass

    def waited(self, queue: str, seconds: float) -> None:
        pass


async def _cpu_per_request(metrics: Metrics, requests: int) -> float:
    h = Harness(1)
    metrics.known_ops = h.dispatcher.metrics.known_ops
    h.dispatcher.metrics = metrics
    h.pool.metrics = metrics
    await h.start()
    h.workers.peer_seen(b"w1", Peer("unix", 1, 1000))
    for conn in h.pool.ready:
        conn.metrics = metrics
    await h.call("cache_get", _GET)  # warm: the partition map, the label children
    started = time.process_time()
    for _ in range(requests // _BATCH):
        first = h._next_id + 1
        for _ in range(_BATCH):
            h.send("cache_get", _GET)
        last = first + _BATCH - 1
        await h.until(lambda last=last: last in h.replies, timeout=60)
        h.replies.clear()
    spent = time.process_time() - started
    await h.close()
    return spent / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    with_m, without = [], []
    for _ in range(args.rounds):
        without.append(asyncio.run(_cpu_per_request(NoMetrics(), args.requests)))
        with_m.append(asyncio.run(_cpu_per_request(Metrics(), args.requests)))
    a, b = statistics.median(without), statistics.median(with_m)
    print(f"without metrics: {a:.1f} us/request (median of {args.rounds})")
    print(f"with metrics:    {b:.1f} us/request")
    print(f"cost:            {b - a:+.2f} us/request ({(b - a) / a:+.1%})")


if __name__ == "__main__":
    main()

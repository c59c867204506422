"""How often a new continuous query misses the first write made after its subscribe reply
(CI saw it): a real 2-node cluster and broker; each round creates a cache, subscribes, puts
one key and waits for its event, then destroys the cache (not a test; run by hand).

    .venv/bin/python -m tests.integration.cq_first_event_probe --base-port 13400 --rounds 250

Ignite 2.17 drops a new query's events until a listener the request's thread attaches after
handing the answer to its I/O thread runs (docs/ipc.md, "Continuous queries"); the broker
waits for a probe's answer and then broker.continuous.NOTIFICATIONS_GRACE before replying.
A miss is followed by a second put, to tell a late start (its event comes) from a dead
subscription (it does not).
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

from broker.devcluster import DevCluster
from broker.devcluster.brokerproc import BrokerProcess
from libclient import Client

WAIT = 10.0  # seconds an event is waited for


def _round(broker: BrokerProcess, endpoint: str) -> str | None:
    """One round; a description of the miss, or None when the first event came."""
    name = f"cq-probe-{uuid.uuid4().hex[:8]}"
    with Client(broker=broker.endpoint) as admin:
        admin.connect()
        admin.get_or_create_cache({0: name, 1: 2, 3: 1, 4: 0})
    try:
        with Client(broker=endpoint) as client:
            client.connect()
            cache = client.get_cache(name)
            with cache.query_continuous() as events:
                cache.put("first", 1)
                if events.get(timeout=WAIT) is not None:
                    return None
                cache.put("second", 2)
                late = events.get(timeout=WAIT)
                return (f"node {events.node}: first event missed; the second "
                        f"{'came' if late is not None else 'did not come either'}")
    finally:
        with Client(broker=broker.endpoint) as admin:
            admin.connect()
            admin.get_cache(name).destroy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-port", type=int, default=13400)
    parser.add_argument("--rounds", type=int, default=250)
    parser.add_argument("--transport", choices=("ipc", "unix"), default="ipc")
    opts = parser.parse_args()
    misses = 0
    with DevCluster(nodes=2, base_port=opts.base_port) as cluster:
        broker = BrokerProcess(cluster.addresses, workdir=Path(tempfile.mkdtemp()))
        broker.start(wait_nodes=2)
        endpoint = broker.endpoint if opts.transport == "ipc" else broker.stream_endpoint
        try:
            for i in range(opts.rounds):
                miss = _round(broker, endpoint)
                if miss is not None:
                    misses += 1
                    print(f"round {i}: {miss}", flush=True)
                elif i % 25 == 0:
                    print(f"round {i}: {misses} missed so far", flush=True)
        finally:
            broker.stop()
    print(f"{misses} of {opts.rounds} first events missed")


if __name__ == "__main__":
    main()

"""A node halt without the broker (fuzz finding 12): pyignite alone against a real Ignite 2.17
dev cluster (not a test; run by hand; it halts the cluster's nodes). A put of an empty byte
array under a key whose data row does not fit one page, then a second put of that key: the
node fails with a CorruptedTreeException (a NullPointerException in
GridCacheAtomicVersionComparator) and its failure handler halts the JVM; with a backup, the
backup's too.

    .venv/bin/ignite-broker dev-cluster start --nodes 2 --base-port 12700
    .venv/bin/python -m tests.integration.ignite_halt_repro --port 12700 --key-chars 4000
    .venv/bin/ignite-broker dev-cluster status --base-port 12700   # both nodes DEAD
    .venv/bin/ignite-broker dev-cluster stop --base-port 12700

Measured at the default 4 KiB page: a key of 4,000 ASCII characters (4,005 encoded bytes)
halts, 3,950 does not; an empty string or a 1-byte value does not; expiry policies play no
part. With ``--broker ENDPOINT`` the same puts go through a running broker (libclient), which
refuses the first one (BAD_REQUEST) and the nodes stay up.
"""

from __future__ import annotations

import argparse
import uuid
from typing import Any

from pyignite import Client
from pyignite.datatypes import prop_codes as p


def _cache(args: argparse.Namespace) -> Any:
    config = {p.PROP_NAME: f"halt-{uuid.uuid4().hex[:8]}", p.PROP_CACHE_MODE: 2,
              p.PROP_BACKUPS_NUMBER: 1}
    if args.broker:
        from libclient import Client as BrokerClient

        broker_client = BrokerClient(broker=args.broker, timeout=20)
        broker_client.connect()
        return broker_client.get_or_create_cache(config)
    client = Client(partition_aware=False, timeout=20)
    client.connect("127.0.0.1", args.port)
    return client.get_or_create_cache(config)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=12700, help="a node's thin-client port")
    parser.add_argument("--key-chars", type=int, default=4000)
    parser.add_argument("--broker", help="send through this broker endpoint instead")
    args = parser.parse_args()
    cache = _cache(args)
    key = "a" * args.key_chars
    try:
        cache.put(key, b"")
        print("first put (empty byte array): stored")
        cache.put(key, b"second")
        print("second put: stored")
    except Exception as exc:  # what the client says is the finding: print it, whatever it is
        print(f"{type(exc).__name__}: {str(exc)[:300]}")
    print("now check the nodes: ignite-broker dev-cluster status --base-port N")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Issue 11's measured restart target, the part the soak (soak.py) found open: SIGTERM and a new
broker on the same endpoints should fail no request. A call that *opens* a cursor (sql) or a
transaction (tx_start) and reaches the stopping broker is answered NOT_PROCESSED and goes to
the next broker like any other unprocessed request (its hold moves with it); a transaction
open on the old broker finishes there, commit included, before the broker lets its worker go
(tests/integration/test_tx_across_restart.py tests that in detail)."""

from __future__ import annotations

import collections
import threading

import pytest

from libclient import Client
from libclient.datatypes import cache_config as cc
from libclient.datatypes import prop_codes as p
from tests.integration.daemon import WAIT, Daemon, wait_until
from tests.integration.soak import kind_of

pytestmark = pytest.mark.integration

THREADS = 3  # per transport and kind of call


def test_opening_calls_survive_a_graceful_restart(ignite_node, tmp_path):
    daemon = Daemon(tmp_path, ignite_node.addresses)
    daemon.start()
    stop = threading.Event()
    lock = threading.Lock()
    ok: collections.Counter[str] = collections.Counter()
    failed: collections.Counter[str] = collections.Counter()
    inherent: collections.Counter[str] = collections.Counter()

    def run(endpoint: str, what: str) -> None:
        client = Client(broker=endpoint, timeout=30.0, connect_timeout=20.0)
        client.connect()
        cache = client.get_or_create_cache({
            p.PROP_NAME: "restart-target",
            p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL})
        while not stop.is_set():
            try:
                if what == "sql":
                    list(client.sql("SELECT 1"))
                else:
                    with client.tx_start() as tx:
                        tx.commit()
            except Exception as exc:
                # Counted apart: the opening calls (sql, tx_start), and the rest (tx_end).
                opening = any(f"did not process {op}:" in str(exc) for op in ("sql", "tx_start"))
                with lock:
                    (failed if opening else inherent)[f"{what}: {kind_of(exc)}"] += 1
                continue
            with lock:
                ok[what] += 1
        client.close()
        del cache

    threads = [threading.Thread(target=run, args=(endpoint, what), daemon=True)
               for endpoint in daemon.endpoints.values() for what in ("sql", "tx")
               for _ in range(THREADS)]
    try:
        wait_until(lambda: "ready" in daemon.log(), "the broker to be ready")
        for thread in threads:
            thread.start()
        wait_until(lambda: sum(ok.values()) >= 200, "calls before the restart")
        daemon.stop()
        daemon.start()
        done = sum(ok.values())
        wait_until(lambda: sum(ok.values()) >= done + 200, "calls after the restart")
    finally:
        stop.set()
        for thread in threads:
            thread.join(WAIT)
        daemon.stop(daemon.serving_pid())
        daemon.stop()
    print(f"ok {dict(ok)}, opening calls failed {dict(failed)}, others {dict(inherent)}")
    assert not failed
    assert not inherent  # a transaction open across the stop commits on the draining broker

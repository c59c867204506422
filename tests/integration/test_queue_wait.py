"""While no node is reachable, requests wait (up to limits.queue_wait) instead of failing, and
go through as soon as a node comes up; past the wait they fail clearly."""

from __future__ import annotations

import os
import threading
import time

import pytest

from broker.devcluster import DevCluster
from broker.devcluster.brokerproc import BrokerProcess
from libclient import Client
from libclient.exceptions import ClusterUnavailable

pytestmark = pytest.mark.integration

_BASE = int(os.environ.get("IGNITE_BROKER_TEST_BASE_PORT", "10800")) + 70


def test_requests_wait_for_a_node_then_go_through(tmp_path):
    cluster = DevCluster(nodes=1, base_port=_BASE)
    settings = {"limits.queue_wait": 60.0, "cluster.connect_timeout": 1.0,
                "cluster.reconnect_max_backoff": 0.5}
    with BrokerProcess(cluster.addresses, workdir=tmp_path, settings=settings) as broker:
        broker.start(wait_nodes=0)
        results: list[object] = []

        def worker() -> None:
            with Client(broker=broker.endpoint, timeout=90) as client:
                client.connect()
                cache = client.get_or_create_cache("waited")
                cache.put("k", "arrived")
                results.append(cache.get("k"))

        thread = threading.Thread(target=worker)
        thread.start()
        time.sleep(1.0)
        assert thread.is_alive(), "the request should be waiting for a node"
        with cluster:
            thread.join(90)
            assert results == ["arrived"]


def test_requests_fail_clearly_after_the_queue_wait(tmp_path):
    settings = {"limits.queue_wait": 0.5, "cluster.connect_timeout": 0.5}
    with BrokerProcess([("127.0.0.1", _BASE + 5)], workdir=tmp_path,
                       settings=settings) as broker:
        broker.start(wait_nodes=0)
        with Client(broker=broker.endpoint) as client:
            client.connect()
            started = time.monotonic()
            with pytest.raises(ClusterUnavailable, match=r"became reachable within 0\.5s") as err:
                client.get_cache_names()
            assert time.monotonic() - started < 5
            assert err.value.maybe_applied is False

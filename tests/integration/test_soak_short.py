"""The soak of issue 11, short enough for CI (~2 minutes, soak.py runs the long one by hand):
8 worker processes of mixed load on both transports, broker restarts (SIGTERM + start,
in-place upgrade, kill -9 + start) and one node killed and restarted, the broker's RSS and fds
sampled. Judged: no acknowledged write lost, no wrong read, every kind of request served,
the broker's fds bounded. Reported: failures by kind per restart, the slopes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from broker.devcluster import DevCluster
from tests.integration.soak import Plan, Soak

pytestmark = pytest.mark.integration

# Shares its layout with test_cluster_failover.py (module-scoped: never both at once).
_BASE = int(os.environ.get("IGNITE_BROKER_TEST_BASE_PORT", "10800")) + 60
MAX_FDS = 256  # 8 workers, 2 nodes x up to 4 connections, sockets and logs: far below


@pytest.fixture(scope="module")
def cluster() -> Iterator[DevCluster]:
    with DevCluster(nodes=2, base_port=_BASE) as c:
        yield c


@pytest.mark.timeout(900)  # 2 minutes of load; node starts and the read-back on a loaded machine
def test_short_soak(cluster, tmp_path):
    plan = Plan(minutes=2.0, workers=8, node_every=60.0, broker_every=30.0, sample_every=1.0)
    report = Soak(cluster, tmp_path, plan).run()
    shown = {k: v for k, v in report.items() if k != "samples"}
    print(json.dumps(shown, indent=1))
    assert report["acked_writes"] > 0
    assert report["acked_writes_lost"] == 0
    assert report["wrong_reads"] == []
    assert set(report["requests_ok"]) == {"put", "get", "put_all", "get_all", "tx", "sql"}
    assert [e["what"] for e in report["events"]] == [
        "broker term", "broker upgrade", "node 0 kill -9", "broker kill", "broker term"]
    assert report["rss_fd"]["fds_min_max"][1] < MAX_FDS

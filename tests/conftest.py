"""Shared pytest fixtures; each section below is owned by the package named in its header."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from broker.devcluster import DevCluster
from broker.devcluster.state import STATE_FILE

# Hypothesis: no per-example deadline. Its default (200 ms) is a timed assertion, which a
# loaded 2-core CI machine fails at random; the examples' count still bounds a test's length.
settings.register_profile("ignite-broker", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ignite-broker")

# =============================================================================================
# Dev-cluster fixtures (owner: broker/devcluster)
#
# Session-scoped real Ignite server nodes (one JVM each) on 127.0.0.1. Each fixture yields a
# started broker.devcluster.DevCluster: `.addresses` [(host, port)], `.ssl_files`,
# `.credentials`, `.client_ssl_context()`, `.handshake(idx)`, `.kill_node(idx)`,
# `.start_node(idx)`. Base ports (thin client = base + idx) are 10800/10810/10820/10830/10840
# and 10874 (tx-aware queries), shifted by $IGNITE_BROKER_TEST_BASE_PORT - 10800 when set.
# Teardown always runs (try/finally); an atexit hook is the safety net for odd exits.
# =============================================================================================

_TEST_BASE_PORT = int(os.environ.get("IGNITE_BROKER_TEST_BASE_PORT", "10800"))
_RUNNING_DEV_CLUSTERS: list[DevCluster] = []


def _stop_leftover_dev_clusters() -> None:
    for cluster in list(_RUNNING_DEV_CLUSTERS):
        with contextlib.suppress(Exception):
            cluster.stop()


atexit.register(_stop_leftover_dev_clusters)


@contextlib.contextmanager
def _dev_cluster(nodes: int, port_offset: int, **options: bool) -> Iterator[DevCluster]:
    cluster = DevCluster(nodes, _TEST_BASE_PORT + port_offset, **options)
    _RUNNING_DEV_CLUSTERS.append(cluster)
    try:
        cluster.start()
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            _RUNNING_DEV_CLUSTERS.remove(cluster)


@pytest.fixture(scope="session")
def ignite_node() -> Iterator[DevCluster]:
    """One plain Ignite node (thin client on base 10800)."""
    with _dev_cluster(1, 0) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ignite_cluster3() -> Iterator[DevCluster]:
    """Three nodes forming one cluster (thin client on 10810-10812)."""
    with _dev_cluster(3, 10) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ignite_ssl() -> Iterator[DevCluster]:
    """One node whose thin-client port needs TLS with a client certificate (10820)."""
    with _dev_cluster(1, 20, ssl=True) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ignite_auth() -> Iterator[DevCluster]:
    """One node with authentication on (user ignite / password ignite) (10830)."""
    with _dev_cluster(1, 30, auth=True) as cluster:
        yield cluster


_EXPENDABLE_OFFSET = 40


@pytest.fixture(scope="module")
def ignite_expendable() -> Iterator[DevCluster]:
    """One plain node of its own for a test module that tries to halt it (10840)."""
    with _dev_cluster(1, _EXPENDABLE_OFFSET) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ignite_tx_sql() -> Iterator[DevCluster]:
    """One node with tx-aware queries (thin-client feature bit 18, the Calcite SQL engine):
    SQL and scans inside a transaction join it (10874; 10870 is test_queue_wait's)."""
    with _dev_cluster(1, 74, tx_aware_queries=True) as cluster:
        yield cluster


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    """Name the test after which a running dev cluster lost a node or its record, and keep its
    node logs: a node that dies mid-suite otherwise fails some later, innocent test, and its
    logs go with the cluster's teardown. The check is a few /proc reads per cluster."""
    for cluster in list(_RUNNING_DEV_CLUSTERS):
        if cluster.base_port == _TEST_BASE_PORT + _EXPENDABLE_OFFSET or cluster in _REPORTED_DEAD:
            continue  # the expendable node is killed on purpose
        if cluster._record is None:
            continue
        problem = _cluster_problem(cluster)
        if problem:
            _REPORTED_DEAD.append(cluster)
            kept = _keep_node_logs(cluster)
            pytest.fail(f"dev cluster {cluster.base_port} {problem} after this test "
                        f"(node logs kept in {kept})", pytrace=False)


_REPORTED_DEAD: list[DevCluster] = []
_KEPT_LOGS = Path(os.environ.get("IGNITE_BROKER_KEPT_LOGS", "/tmp/ignite-broker-kept-logs"))


def _cluster_problem(cluster: DevCluster) -> str:
    if not (cluster.directory / STATE_FILE).exists():
        return "lost its record"
    dead = [node.idx for node in cluster.record.nodes
            if node.pid is not None and not node.alive()]
    return f"lost node(s) {dead}" if dead else ""


def _keep_node_logs(cluster: DevCluster) -> Path:
    target = _KEPT_LOGS / f"{cluster.base_port}-{int(time.time())}"
    target.mkdir(parents=True, exist_ok=True)
    for node in cluster.record.nodes:
        with contextlib.suppress(OSError):
            shutil.copy(node.log, target / node.log.name)
    return target


# ============================ end of dev-cluster fixtures ===================================

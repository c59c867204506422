"""Shared pytest fixtures; each section below is owned by the package named in its header."""

from __future__ import annotations

import atexit
import contextlib
import os
from collections.abc import Iterator

import pytest

from broker.devcluster import DevCluster

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


@pytest.fixture(scope="module")
def ignite_expendable() -> Iterator[DevCluster]:
    """One plain node of its own for a test module that tries to halt it (10840)."""
    with _dev_cluster(1, 40) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def ignite_tx_sql() -> Iterator[DevCluster]:
    """One node with tx-aware queries (thin-client feature bit 18, the Calcite SQL engine):
    SQL and scans inside a transaction join it (10874; 10870 is test_queue_wait's)."""
    with _dev_cluster(1, 74, tx_aware_queries=True) as cluster:
        yield cluster


# ============================ end of dev-cluster fixtures ===================================

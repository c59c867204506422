"""The metrics endpoint of a real broker serving a real node: scraped over HTTP (TCP and a Unix
socket) during real traffic from worker processes on both transports (unix:// and ZeroMQ
ipc://); the counters and histograms move as the traffic says: requests by op and status,
latencies in the broker and on the node, the node up, workers by transport, and requests and
workers aggregated by uid and label."""

from __future__ import annotations

import http.client
import os
import socket
import time
import uuid
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families

from broker import native
from broker.devcluster.brokerproc import running_broker
from libclient import Client
from libclient.exceptions import CacheError
from tests.integration.workers import run_workers

pytestmark = pytest.mark.integration

PUTS = 30
GETS = 20
WORKERS = 2
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("metrics")
    port = _free_port()
    with running_broker(ignite_node.addresses, workdir,
                        {"metrics.listen": f"127.0.0.1:{port}",
                         "cluster.heartbeat_interval": 0.5}) as proc:
        proc.metrics_port = port
        yield proc


@pytest.fixture(params=["unix", "ipc"])
def endpoint(request, broker):
    return broker.stream_endpoint if request.param == "unix" else broker.endpoint


def scrape(broker, accept: str = "") -> tuple[str, str]:
    """(content type, body) of GET /metrics."""
    conn = http.client.HTTPConnection("127.0.0.1", broker.metrics_port, timeout=30)
    try:
        conn.request("GET", "/metrics", headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        assert response.status == 200
        return response.getheader("Content-Type") or "", response.read().decode()
    finally:
        conn.close()


def samples(broker) -> Samples:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(scrape(broker)[1])
            for s in family.samples}


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def until(broker, condition: Callable[[Samples], bool], timeout: float = 60.0) -> Samples:
    """Scrape until ``condition`` holds (a render is reused for a second after it is made)."""
    deadline = time.monotonic() + timeout
    while True:
        found = samples(broker)
        if condition(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def _worker(endpoint: str, cache_name: str, index: int, out) -> None:
    with Client(broker=endpoint) as client:  # the label comes from $IGNITE_BROKER_LABEL
        client.connect()
        cache = client.get_or_create_cache(cache_name)
        for j in range(PUTS):
            cache.put(f"{index}:{j}", j)
        wrong = [j for j in range(GETS) if cache.get(f"{index}:{j}") != j]
    out.put((index, wrong))


def test_requests_latencies_and_workers_move_with_the_traffic(broker, endpoint, monkeypatch):
    transport = endpoint.split(":", 1)[0]
    label = f"itest:{transport}-{uuid.uuid4().hex[:6]}"
    cache_name = f"metrics-{uuid.uuid4().hex[:8]}"
    before = samples(broker)
    monkeypatch.setenv("IGNITE_BROKER_LABEL", label)
    results = run_workers(_worker, (endpoint, cache_name), WORKERS)  # spawned: they read the label
    assert results == {i: [] for i in range(WORKERS)}

    uid = str(os.getuid())
    # per worker: hello, get_or_create_cache, the puts and the gets
    per_worker = 2 + PUTS + GETS

    def moved(found: Samples) -> bool:
        return value(found, "ignite_broker_client_requests_total", uid=uid,
                     label=label) >= WORKERS * per_worker

    after = until(broker, moved)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert value(after, "ignite_broker_client_requests_total", uid=uid,
                 label=label) == WORKERS * per_worker
    assert delta("ignite_broker_requests_total", op="cache_put", status="OK") == WORKERS * PUTS
    assert delta("ignite_broker_requests_total", op="cache_get", status="OK") == WORKERS * GETS
    assert delta("ignite_broker_request_duration_seconds_count",
                 op="cache_put") == WORKERS * PUTS
    assert delta("ignite_broker_request_duration_seconds_bucket", op="cache_put",
                 le="+Inf") == WORKERS * PUTS
    # every put reached a node: alone, or inside an automatic put_all batch
    assert delta("ignite_broker_node_request_duration_seconds_count", op="CACHE_PUT") + delta(
        "ignite_broker_batched_requests_total", op="CACHE_PUT") >= WORKERS * PUTS
    host, port = broker.settings["cluster.nodes"][0].rsplit(":", 1)
    assert value(after, "ignite_broker_node_up", node=f"{host}:{port}") == 1
    assert value(after, "ignite_broker_node_connections", node=f"{host}:{port}") >= 1


def test_a_connected_worker_is_counted_by_transport_uid_and_label(broker, endpoint):
    transport = endpoint.split(":", 1)[0]
    label = f"live:{transport}"
    uid = str(os.getuid())
    with Client(broker=endpoint, label=label) as client:
        client.connect()
        client.get_cache_names()

        def connected(found: Samples) -> bool:
            # >= 1: this process's other sockets (the fixture's readiness probe) take the
            # label its hello says too
            return (value(found, "ignite_broker_client_workers", uid=uid, label=label) >= 1
                    and value(found, "ignite_broker_workers", transport=transport) >= 1)

        found = until(broker, connected)
        assert connected(found), {k: v for k, v in found.items() if "workers" in k[0]}
        assert value(found, "ignite_broker_client_requests_total", uid=uid,
                     label=label) >= 2  # hello, cache_names


def test_errors_are_counted_by_status_and_on_the_node(broker, endpoint):
    before = samples(broker)
    missing = f"no-such-cache-{uuid.uuid4().hex[:8]}"
    with Client(broker=endpoint) as client:
        client.connect()
        with pytest.raises(CacheError):
            client.get_cache(missing).get(1)
    host, port = broker.settings["cluster.nodes"][0].rsplit(":", 1)
    node = f"{host}:{port}"

    def counted(found: Samples) -> bool:
        return (value(found, "ignite_broker_requests_total", op="cache_get",
                      status="SERVER_ERROR")
                > value(before, "ignite_broker_requests_total", op="cache_get",
                        status="SERVER_ERROR"))

    after = until(broker, counted)
    assert counted(after)
    assert (value(after, "ignite_broker_node_errors_total", node=node, kind="server_error")
            > value(before, "ignite_broker_node_errors_total", node=node, kind="server_error"))


def test_an_idle_node_connection_shows_heartbeat_round_trips(broker):
    host, port = broker.settings["cluster.nodes"][0].rsplit(":", 1)
    node = f"{host}:{port}"
    found = until(broker, lambda found: value(
        found, "ignite_broker_node_heartbeat_seconds_count", node=node) >= 2)
    assert value(found, "ignite_broker_node_heartbeat_seconds_count", node=node) >= 2
    assert value(found, "ignite_broker_node_request_duration_seconds_count",
                 op="HEARTBEAT") >= 2


def test_openmetrics_is_served_when_asked_and_the_state_families_are_there(broker):
    content_type, body = scrape(broker, "application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    for name in ("ignite_broker_node_up", "ignite_broker_topology_version",
                 "ignite_broker_partition_map_refreshes", "ignite_broker_binary_types",
                 "ignite_broker_in_flight", "ignite_broker_requests_waiting",
                 "ignite_broker_workers", "ignite_broker_released",
                 "ignite_broker_coalesced_reads", "ignite_broker_peers_refused",
                 "ignite_broker_held_request_bytes", "ignite_broker_compiled_modules"):
        assert f"# TYPE {name} " in body, name
    compiled = len(native.HOT_MODULES) if native.is_built() else 0  # ./dev built it, or no cc
    assert f"\nignite_broker_compiled_modules {float(compiled)}\n" in body

"""The metrics module: instruments counted on the request path (through the dispatcher over
fake nodes), the state read on the event loop at scrape time, worker attribution by uid and
label (bounded), and the HTTP listener over TCP and a Unix socket."""

from __future__ import annotations

import asyncio
import http.client
import socket
import threading

import pytest

from broker.config import load
from broker.errors import ConfigError
from broker.limits import Limits
from broker.metrics import (
    OTHER_LABEL,
    OTHER_UID,
    LoopCollector,
    Metrics,
    MetricsServer,
    parse_listen,
    watch_broker,
)
from broker.workers import Peer
from protocol import OpCode
from protocol.ipc import Status
from tests.broker.fakenode import Harness, run

_GET = {"cache": "ops-kv", "key": 1}


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_answers_are_counted_by_op_and_status_and_unknown_ops_share_one_label():
    m = Metrics(known_ops={"cache_get"})
    m.answered("cache_get", Status.OK, 0.0003, None)
    m.answered("cache_get", Status.OK, 0.2, None)
    m.answered("cache_get", Status.OVERLOADED, 0.0, None)
    for i in range(50):
        m.answered(f"made-up-{i}", Status.UNKNOWN_OP, 0.0, None)
    assert sample(m, "ignite_broker_requests_total", op="cache_get", status="OK") == 2
    assert sample(m, "ignite_broker_requests_total", op="cache_get", status="OVERLOADED") == 1
    assert sample(m, "ignite_broker_requests_total", op="unknown", status="UNKNOWN_OP") == 50
    assert sample(m, "ignite_broker_request_duration_seconds_count", op="cache_get") == 3
    assert sample(m, "ignite_broker_request_duration_seconds_bucket", op="cache_get",
                  le="0.0005") == 2
    ops = {s.labels["op"] for f in m.registry.collect() for s in f.samples if "op" in s.labels}
    assert ops == {"cache_get", "unknown"}


def test_workers_are_counted_by_uid_and_label_up_to_max_clients_then_as_other():
    m = Metrics(max_clients=2)
    m.account(1000, "web").inc()
    m.account(1000, None).inc()
    m.account(1001, "celery").inc(3)  # a third pair: counted as other
    m.account(1002, "x").inc()
    m.account(1000, "web").inc()  # a known pair stays itself
    assert sample(m, "ignite_broker_client_requests_total", uid="1000", label="web") == 2
    assert sample(m, "ignite_broker_client_requests_total", uid="1000", label="") == 1
    assert sample(m, "ignite_broker_client_requests_total", uid=OTHER_UID,
                  label=OTHER_LABEL) == 4
    assert m.client_key(None, None) == (OTHER_UID, OTHER_LABEL)


@run
async def test_the_dispatcher_counts_requests_node_round_trips_and_refusals():
    h = await Harness(1).start()
    h.workers.peer_seen(b"w1", Peer("unix", 4242, 1000, "gunicorn"))
    for _ in range(3):
        assert (await h.call("cache_get", _GET))[0] == Status.OK
    assert (await h.call("no_such_op"))[0] == Status.UNKNOWN_OP
    m, node = h.dispatcher.metrics, h.pool.metrics
    assert sample(m, "ignite_broker_requests_total", op="cache_get", status="OK") == 3
    assert sample(m, "ignite_broker_requests_total", op="unknown", status="UNKNOWN_OP") == 1
    assert sample(m, "ignite_broker_request_duration_seconds_count", op="cache_get") == 3
    assert sample(m, "ignite_broker_client_requests_total", uid="1000", label="") == 4
    assert sample(node, "ignite_broker_node_request_duration_seconds_count",
                  op="CACHE_GET") == 3
    await h.close()


@run
async def test_overload_and_an_expired_wait_for_a_node_are_refusals():
    h = await Harness(1, limits=Limits(max_in_flight_per_worker=1)).start()
    h.nodes[0].hold.add(OpCode.CACHE_GET)
    first, second = h.send("cache_get", _GET), h.send("cache_get", _GET)
    assert h.replies[second][0] == Status.OVERLOADED and first not in h.replies
    m = h.dispatcher.metrics
    assert sample(m, "ignite_broker_refusals_total", reason="in_flight_per_worker") == 1
    assert sample(m, "ignite_broker_requests_total", op="cache_get", status="OVERLOADED") == 1
    await h.settle()
    h.nodes[0].release()
    await h.until(lambda: first in h.replies)
    await h.close()

    h = Harness(1, limits=Limits(queue_wait=0.0))
    h.nodes[0].network.unlisten("127.0.0.1", 10800)
    await h.pool.start(wait=0.01)
    rid = h.send("cache_get", _GET)
    h.janitor.sweep(h.dispatcher._parking._parked[0][0] + 1)
    assert h.replies[rid][0] == Status.CLUSTER_UNAVAILABLE
    m = h.dispatcher.metrics
    assert sample(m, "ignite_broker_refusals_total", reason="queue_wait") == 1
    assert sample(m, "ignite_broker_queue_wait_seconds_count", queue="no_node") == 1
    assert sample(m, "ignite_broker_requests_total", op="cache_get",
                  status="CLUSTER_UNAVAILABLE") == 1
    await h.close()


@run
async def test_a_label_from_hello_covers_the_other_workers_of_its_process():
    h = await Harness(1).start()
    h.dispatcher.broker_info = lambda: {"nodes": []}
    h.workers.peer_seen(b"t1", Peer("unix", 77, 1000, "celery"))
    h.workers.peer_seen(b"t2", Peer("unix", 77, 1000, "celery"))
    h.workers.peer_seen(b"o1", Peer("unix", 78, 1000, "other"))
    await h.call("ping", worker=b"t2")  # a thread's connection, known before the hello
    assert (await h.call("hello", {"nodes": [], "label": "celery:send_email"},
                         worker=b"t1"))[0] == Status.OK
    h.workers.peer_seen(b"t3", Peer("unix", 77, 1000, "celery"))  # a connection opened later
    for worker in (b"t2", b"t3", b"o1"):
        await h.call("ping", worker=worker)
    labels = {w.identity: w.label for w in h.workers}
    assert labels == {b"t1": "celery:send_email", b"t2": "celery:send_email",
                      b"t3": "celery:send_email", b"o1": None}
    m = h.dispatcher.metrics
    assert sample(m, "ignite_broker_client_requests_total", uid="1000",
                  label="celery:send_email") == 3  # hello and the pings of t2 and t3
    status, payload = await h.call("hello", {"nodes": [], "label": "no spaces"})
    assert status == Status.BAD_REQUEST and "label" in payload["message"]
    await h.close()


@run
async def test_state_is_read_on_the_loop_at_scrape_time():
    h = await Harness(2).start()
    m = h.dispatcher.metrics
    watch_broker(m, asyncio.get_running_loop(), pool=h.pool, dispatcher=h.dispatcher,
                 workers=h.workers, janitor=h.janitor)
    h.workers.peer_seen(b"s", Peer("unix", 1, 1000))
    h.workers.peer_seen(b"z", Peer("ipc", 2, 1000))
    await h.call("ping", worker=b"s")
    await h.call("ping", worker=b"z")
    await h.call("ping", worker=b"anonymous")
    text = (await asyncio.to_thread(_render, m)).decode()
    for node in h.nodes:
        assert f'ignite_broker_node_up{{node="{node.host}:{node.port}"}} 1.0' in text
    assert 'ignite_broker_workers{transport="unix"} 1.0' in text
    assert 'ignite_broker_workers{transport="ipc"} 1.0' in text
    assert 'ignite_broker_workers{transport="unknown"} 1.0' in text
    assert 'ignite_broker_client_workers{label="",uid="1000"} 2.0' in text
    assert "ignite_broker_in_flight 0.0" in text
    h.nodes[0].stop()
    await h.until(lambda: len(h.pool.ready) == 1)
    text = (await asyncio.to_thread(_render, m)).decode()
    down = h.nodes[0]
    assert f'ignite_broker_node_up{{node="{down.host}:{down.port}"}} 0.0' in text
    assert sample(h.pool.metrics, "ignite_broker_node_errors_total",
                  node=f"{down.host}:{down.port}", kind="connection_lost") == 1
    await h.close()


def _render(metrics: Metrics) -> bytes:
    from prometheus_client import generate_latest

    return generate_latest(metrics.registry)


def test_a_blocked_loop_gets_the_last_state_read_not_a_hung_scrape():
    loop = asyncio.new_event_loop()
    reads = []
    collector = LoopCollector(loop, lambda: reads.append(1) or [], timeout=0.05)
    assert list(collector.collect()) == []  # the loop does not run: nothing new, no hang
    loop.close()
    assert list(collector.collect()) == [] and reads == []  # a closed loop: the same


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_the_listener_serves_metrics_and_renders_at_most_once_per_interval(kind, tmp_path):
    m = Metrics(known_ops={"ping"})
    m.answered("ping", Status.OK, 0.001, None)
    listen = "127.0.0.1:0" if kind == "tcp" else str(tmp_path / "metrics.sock")
    server = MetricsServer(listen, m.registry, render_interval=3600)
    server.start()
    try:
        status, first = _get(server, listen, "/metrics")
        assert status == 200
        assert b'ignite_broker_requests_total{op="ping",status="OK"} 1.0' in first
        m.answered("ping", Status.OK, 0.001, None)
        assert _get(server, listen, "/metrics") == (200, first)  # the same render
        assert _get(server, listen, "/other")[0] == 404
        om_status, om = _get(server, listen, "/metrics",
                             accept="application/openmetrics-text; version=1.0.0")
        assert om_status == 200 and om.rstrip().endswith(b"# EOF")
    finally:
        server.close()


def _get(server: MetricsServer, listen: str, path: str,
         accept: str = "") -> tuple[int, bytes]:
    if listen.startswith("/"):
        conn: http.client.HTTPConnection = _UnixHTTPConnection(listen)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request("GET", path, headers={"Accept": accept} if accept else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self._path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(self._path)


def test_a_client_that_sends_nothing_does_not_stop_the_listener_for_ever(tmp_path):
    """One request at a time, but each connection has a socket timeout: an idle connection
    is dropped and the next scrape is served."""
    m = Metrics()
    server = MetricsServer("127.0.0.1:0", m.registry)
    server.start()
    idle = socket.create_connection(("127.0.0.1", server.port))
    try:
        done = threading.Event()
        result: list[int] = []

        def scrape() -> None:
            result.append(_get(server, "127.0.0.1:0", "/metrics")[0])
            done.set()

        threading.Thread(target=scrape, daemon=True).start()
        assert done.wait(30) and result == [200]
    finally:
        idle.close()
        server.close()


def test_listen_addresses_and_the_config_rows():
    assert parse_listen("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_listen("[::1]:9464") == ("::1", 9464)
    assert parse_listen("/run/ignite-broker/metrics.sock") == "/run/ignite-broker/metrics.sock"
    for bad in ("9464", "localhost", "host:65536", "relative/path.sock"):
        with pytest.raises(ConfigError, match=r"metrics\.listen"):
            parse_listen(bad)
    with pytest.raises(ConfigError, match=r"metrics\.listen"):
        load(None, {"metrics.listen": "nowhere"})
    with pytest.raises(ConfigError, match=r"metrics\.max_clients"):
        load(None, {"metrics.max_clients": 0})
    cfg = load(None, {"metrics.listen": "127.0.0.1:9464"})
    assert cfg.metrics_listen == "127.0.0.1:9464" and cfg.metrics_max_clients == 100


@run
async def test_every_metric_the_dashboard_and_the_docs_name_is_exported():
    import json
    import re
    from pathlib import Path

    h = await Harness(1).start()
    m = h.dispatcher.metrics
    watch_broker(m, asyncio.get_running_loop(), pool=h.pool, dispatcher=h.dispatcher,
                 workers=h.workers, janitor=h.janitor)
    exported = {f.name for f in await asyncio.to_thread(lambda: list(m.registry.collect()))}
    await h.close()
    docs = Path(__file__).resolve().parents[2] / "docs"
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", ()))
    used = {re.sub(r"_(total|bucket|count|sum)$", "", n)
            for n in re.findall(r"ignite_broker_\w+", exprs)}
    assert used and used <= exported, used - exported
    documented = set(re.findall(r"`(ignite_broker_\w+)`", (docs / "metrics.md").read_text()))
    documented = {re.sub(r"_(total|bucket|count|sum)$", "", n) for n in documented}
    assert exported <= documented, exported - documented
    front_end_only = {"ignite_broker_held_request_bytes", "ignite_broker_replies_dropped",
                      "ignite_broker_peers_refused"}
    assert documented - exported == front_end_only  # the harness has no front end

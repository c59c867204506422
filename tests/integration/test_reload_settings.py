"""Each reloadable setting changes what the running broker *does* after ``ignite-broker admin
reload`` (not just what ``show config`` says): one test per setting, against the real daemon
and a real Ignite node.  The broker starts with values far from the reloaded ones, so the
behaviour seen can only come from the reload.

``broker.curve_client_keys_file`` is proven in test_access.py (a revoked key is refused after
SIGHUP); ``limits.node_bytes_in_flight``, ``cluster.heartbeat_timeout`` and
``cluster.node_warmup`` in test_reload_nodes.py (they need a node that hangs, restarts or holds
a request)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq

from broker.devcluster.brokerproc import BrokerProcess, render_toml, running_broker
from protocol import ipc
from protocol.ipcstream import frame
from tests.integration.rawipc import Raw, read_stream_reply

pytestmark = pytest.mark.integration

_FAR = {"limits.worker_liveness": 600.0, "limits.stalled_request_timeout": 600.0,
        "limits.request_timeout": 600.0}


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory) -> Iterator[BrokerProcess]:
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("reload"),
                        settings=_FAR) as proc:
        yield proc


def _admin(broker: BrokerProcess, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", "admin", "--admin-endpoint",
                           broker.admin_endpoint, *words], capture_output=True, text=True,
                          timeout=60)


@contextlib.contextmanager
def reloaded(broker: BrokerProcess, **changes: Any) -> Iterator[None]:
    """``changes`` (limits__x=... for limits.x) in the file and reloaded; the file as it was
    and reloaded again afterwards."""
    settings = {**broker.settings, **{k.replace("__", "."): v for k, v in changes.items()}}
    broker.config_path.write_text(render_toml(settings))
    done = _admin(broker, "reload", "--json")
    try:
        assert done.returncode == 0, done.stderr
        applied = json.loads(done.stdout)["applied"]
        assert sorted(applied) == sorted(k.replace("__", ".") for k in changes)
        yield
    finally:
        broker.config_path.write_text(render_toml(broker.settings))
        assert _admin(broker, "reload").returncode == 0


def _until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _stats(broker: BrokerProcess) -> dict:
    return broker.admin("show stats")  # type: ignore[return-value]


class Dealer:
    """A ZeroMQ worker that sends without waiting (Raw waits for each answer)."""

    def __init__(self, endpoint: str) -> None:
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, request_id: int, op: str, **args: Any) -> None:
        self.sock.send(ipc.pack_request(request_id, op, args))

    def recv(self) -> ipc.Reply:
        assert self.sock.poll(30_000), "no reply"
        return ipc.unpack_reply(self.sock.recv())

    def close(self) -> None:
        self.sock.close()


def test_limits_request_timeout(broker):
    """A request with no deadline of its own, held by pause, fails after the reloaded
    default deadline (the broker started with 600 s)."""
    raw = Raw(broker.endpoint)
    try:
        raw.call("ping")
        with reloaded(broker, limits__request_timeout=0.5):
            assert _admin(broker, "pause").returncode == 0
            try:
                with pytest.raises(RuntimeError, match=r"DEADLINE_EXCEEDED.*paused"):
                    raw.call("cache_names")
            finally:
                _admin(broker, "resume")
    finally:
        raw.close()


def test_limits_worker_liveness(broker):
    """A ZeroMQ worker that opens a transaction and goes silent loses it after the reloaded
    liveness bound (600 s at start)."""
    before = _stats(broker)["released_transactions"]
    with reloaded(broker, limits__worker_liveness=0.5):
        raw = Raw(broker.endpoint)
        try:
            raw.call("tx_start")
            _until(lambda: _stats(broker)["released_transactions"] == before + 1,
                   "the silent worker's transaction is rolled back")
        finally:
            raw.close()


def _stream_connect(broker: BrokerProcess) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(broker.stream_endpoint[len("unix://"):])
    sock.settimeout(30)
    return sock


def test_limits_stalled_request_timeout(broker):
    """Half a request, then silence: the connection is closed after the reloaded bound."""
    before = _stats(broker)["stalled_connections_closed"]
    with reloaded(broker, limits__stalled_request_timeout=0.5):
        sock = _stream_connect(broker)
        try:
            sock.sendall(struct.pack(">I", 100) + b"\x95" + b"\x00" * 9)
            assert sock.recv(1) == b""  # closed by the broker
        finally:
            sock.close()
        assert _stats(broker)["stalled_connections_closed"] == before + 1


def test_limits_max_request_bytes(broker):
    dealer = Dealer(broker.endpoint)
    try:
        with reloaded(broker, limits__max_request_bytes=10_000):
            dealer.send(1, "ping", pad="x" * 20_000)
            assert dealer.recv().status == ipc.Status.TOO_LARGE
        dealer.send(2, "ping", pad="x" * 20_000)
        assert dealer.recv().status == ipc.Status.OK
    finally:
        dealer.close()


def _big_request(dealer: Dealer, request_id: int) -> None:
    """150 kB that the broker holds while paused (ping is answered even then)."""
    dealer.send(request_id, "cache_names", pad="x" * 150_000)


def test_limits_worker_memory(broker):
    """While paused, a worker's held requests may not exceed its reloaded share."""
    dealer = Dealer(broker.endpoint)
    try:
        with reloaded(broker, limits__max_request_bytes=160_000, limits__worker_memory=200_000):
            _admin(broker, "pause")
            try:
                _big_request(dealer, 1)  # held: 150 kB of this worker's 200 kB
                _until(lambda: _stats(broker)["parked"] == 1, "the first is held")
                _big_request(dealer, 2)
                refused = dealer.recv()
                assert refused.status == ipc.Status.OVERLOADED
                assert "limits.worker_memory" in refused.payload["message"]
            finally:
                _admin(broker, "resume")
            assert dealer.recv().request_id == 1
    finally:
        dealer.close()


def test_limits_memory_budget(broker):
    """While paused, all workers' held requests may not exceed the reloaded budget."""
    first, second = Dealer(broker.endpoint), Dealer(broker.endpoint)
    try:
        with reloaded(broker, limits__max_request_bytes=160_000, limits__worker_memory=200_000,
                      limits__memory_budget=250_000):
            _admin(broker, "pause")
            try:
                _big_request(first, 1)
                _until(lambda: _stats(broker)["parked"] == 1, "the first is held")
                _big_request(second, 1)  # another worker: within its share, beyond the budget
                refused = second.recv()
                assert refused.status == ipc.Status.OVERLOADED
                assert "limits.memory_budget" in refused.payload["message"]
            finally:
                _admin(broker, "resume")
            assert first.recv().status == ipc.Status.OK
    finally:
        first.close()
        second.close()


def test_limits_max_workers(broker):
    """A new worker beyond the reloaded count is refused; one already served is not."""
    known = Raw(broker.endpoint)
    try:
        known.call("ping")
        with reloaded(broker, limits__max_workers=1):
            newcomer = Raw(broker.endpoint)
            try:
                with pytest.raises(RuntimeError, match=r"OVERLOADED.*limits\.max_workers"):
                    newcomer.call("ping")
            finally:
                newcomer.close()
            sock = _stream_connect(broker)
            try:
                sock.sendall(frame(ipc.pack_request(1, "ping", {})))
                reply = read_stream_reply(sock)
                assert reply.status == ipc.Status.OVERLOADED
            finally:
                sock.close()
            assert known.call("ping") is None
    finally:
        known.close()


def test_log_level(broker):
    """debug lines appear once log.level is reloaded to debug (node errors are debug)."""
    raw = Raw(broker.endpoint)
    try:
        with reloaded(broker, log__level="debug"):
            with pytest.raises(RuntimeError):
                raw.call("cache_get", cache="reload-no-such-cache", key=1)
            _until(lambda: "node_error" in broker.log(), "a debug line")
    finally:
        raw.close()


def test_log_format(broker):
    with reloaded(broker, log__format="json"):
        raw = Raw(broker.endpoint)
        try:
            raw.call("ping")
        finally:
            raw.close()
        _admin(broker, "pause")
        _admin(broker, "resume")
        lines = [line for line in broker.log().splitlines() if '"event": "resumed"' in line
                 or '"event":"resumed"' in line]
        assert lines and json.loads(lines[-1])["event"] == "resumed"


# -- the node pool: a node that never answers, one that refuses ---------------------------------


@pytest.fixture
def unreachable_nodes() -> Iterator[tuple[str, str]]:
    """A port that accepts connections and never answers (a hung node) and one that refuses."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused_port = closed.getsockname()[1]
    closed.close()
    try:
        yield f"127.0.0.1:{silent.getsockname()[1]}", f"127.0.0.1:{refused_port}"
    finally:
        silent.close()


def test_cluster_connect_timeout_and_reconnect_max_backoff(ignite_node, tmp_path,
                                                           unreachable_nodes):
    hung, refusing = unreachable_nodes
    nodes = [f"{h}:{p}" for h, p in ignite_node.addresses] + [hung, refusing]
    with running_broker(ignite_node.addresses, tmp_path, settings={
            "cluster.nodes": nodes, "cluster.connect_timeout": 3.0,
            "cluster.reconnect_max_backoff": 1.0}) as broker:
        _until(lambda: f"{hung}: no handshake within 3.0s" in broker.log(), "a slow timeout")
        with reloaded(broker, cluster__connect_timeout=0.25,
                      cluster__reconnect_max_backoff=0.15):
            _until(lambda: f"{hung}: no handshake within 0.25s" in broker.log(),
                   "the reloaded connect timeout")
            _until(lambda: re.search(rf"node={re.escape(refusing)} .*retry_in_s=0\.15",
                                     broker.log()), "the reloaded backoff")


def test_broker_curve_client_keys(ignite_node, tmp_path):
    """A worker's public key added to broker.curve_client_keys is served after a reload."""
    from tests.integration.test_access import _free_port, _roundtrip

    public, secret = zmq.curve_keypair()
    server_public, server_secret = zmq.curve_keypair()
    (tmp_path / "server.secret").write_text(server_secret.decode() + "\n")
    (tmp_path / "server.secret").chmod(0o600)
    other_public, _ = zmq.curve_keypair()
    endpoint = f"tcp://127.0.0.1:{_free_port()}"
    settings = {"broker.curve_secret_key_file": str(tmp_path / "server.secret"),
                "broker.curve_client_keys": [other_public.decode()]}
    proc = BrokerProcess(ignite_node.addresses, workdir=tmp_path, settings=settings)
    proc.settings["broker.endpoints"].append(endpoint)
    proc.config_path.write_text(render_toml(proc.settings))
    keys = {"curve_serverkey": server_public.decode(), "curve_publickey": public.decode(),
            "curve_secretkey": secret.decode()}
    with proc:
        proc.start()
        with pytest.raises(Exception, match="no broker reachable"):
            _roundtrip(endpoint, **keys)
        with reloaded(proc, broker__curve_client_keys=[other_public.decode(),
                                                       public.decode()]):
            assert _roundtrip(endpoint, **keys) == "ok"


def test_every_reloadable_setting_has_a_place_it_is_applied():
    from broker.config import SETTINGS
    from broker.lifecycle import _APPLY

    reloadable = {s.name for s in SETTINGS if s.reloadable}
    assert set(_APPLY) == reloadable
    assert all(s.applied for s in SETTINGS if s.reloadable)
    assert not [s.name for s in SETTINGS if s.applied and not s.reloadable]


def test_environment_overrides_reach_the_daemon_and_survive_a_reload(ignite_node, tmp_path,
                                                                     monkeypatch):
    """IGNITE_BROKER__LIMITS__MAX_REQUEST_BYTES beats the file, at start and on reload."""
    monkeypatch.setenv("IGNITE_BROKER__LIMITS__MAX_REQUEST_BYTES", "10000")
    with running_broker(ignite_node.addresses, tmp_path, settings={
            "limits.max_request_bytes": 500_000}) as broker:
        dealer = Dealer(broker.endpoint)
        try:
            dealer.send(1, "ping", pad="x" * 20_000)
            assert dealer.recv().status == ipc.Status.TOO_LARGE
            assert _admin(broker, "reload").returncode == 0
            dealer.send(2, "ping", pad="x" * 20_000)
            assert dealer.recv().status == ipc.Status.TOO_LARGE
            dealer.send(3, "ping", pad="x" * 5_000)
            assert dealer.recv().status == ipc.Status.OK
        finally:
            dealer.close()

"""The reloadable settings whose effect needs a node that hangs, restarts or holds a request:
``cluster.heartbeat_timeout`` (a frozen JVM is dropped), ``cluster.node_warmup`` (a restarted
node is re-admitted), ``limits.node_bytes_in_flight`` (requests wait in the broker behind a
blocked one); and the password and TLS files, read again for new node connections.  Each
broker starts with a value that would not show the behaviour within the test, and
``ignite-broker admin reload`` changes it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import Client
from libclient.datatypes import cache_config as cc
from libclient.datatypes import prop_codes as p
from tests.integration.rawipc import Raw
from tests.integration.test_reload_settings import reloaded

pytestmark = pytest.mark.integration


def _until(predicate, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _ready(broker: BrokerProcess) -> bool:
    return any(n["state"] == "ready" for n in broker.admin("show nodes"))


@pytest.fixture
def frozen(ignite_expendable) -> Iterator[list[bool]]:
    """SIGSTOP the expendable node on demand; SIGCONT it afterwards whatever happened."""
    state = [False]
    yield state
    if state[0]:
        ignite_expendable.kill_node(0, signal.SIGCONT, wait=False)


def test_cluster_heartbeat_timeout(ignite_expendable, tmp_path, frozen):
    with running_broker(ignite_expendable.addresses, tmp_path, settings={
            "cluster.heartbeat_interval": 0.3, "cluster.heartbeat_timeout": 600.0,
            "cluster.reconnect_max_backoff": 0.5}) as broker:
        lost = broker.admin("show stats")["node_connections_lost"]
        with reloaded(broker, cluster__heartbeat_timeout=1.0):
            ignite_expendable.kill_node(0, signal.SIGSTOP, wait=False)
            frozen[0] = True
            try:
                _until(lambda: broker.admin("show stats")["node_connections_lost"] == lost + 1,
                       "the frozen node's connection is dropped")
                assert not _ready(broker)
            finally:
                ignite_expendable.kill_node(0, signal.SIGCONT, wait=False)
                frozen[0] = False
            _until(lambda: _ready(broker), "the node is back")


def test_cluster_node_warmup(ignite_expendable, tmp_path):
    settings = {"cluster.node_warmup": 600.0, "cluster.reconnect_max_backoff": 0.5}
    with running_broker(ignite_expendable.addresses, tmp_path, settings=settings) as broker, \
            reloaded(broker, cluster__node_warmup=0.2):
        ignite_expendable.kill_node(0)
        _until(lambda: not _ready(broker), "the node is gone")
        ignite_expendable.start_node(0)
        _until(lambda: "node_warming_up" in broker.log(), "the node answers again")
        _until(lambda: _ready(broker), "re-admitted after the reloaded warm-up")
        assert "seconds=0.2" in broker.log()


def test_limits_node_bytes_in_flight(ignite_node, tmp_path):
    """Behind a put blocked on a lock, a get waits in the broker (show nodes: queued) once
    the budget is reloaded down to 1 byte; with the starting 32 MiB it would go at once."""
    with running_broker(ignite_node.addresses, tmp_path) as broker:
        holder, blocked, reader = (Client(broker=broker.stream_endpoint) for _ in range(3))
        threads: list[threading.Thread] = []
        try:
            for client in (holder, blocked, reader):
                client.connect()
            cache = holder.get_or_create_cache({
                p.PROP_NAME: "reload-bytes", p.PROP_CACHE_ATOMICITY_MODE:
                cc.CacheAtomicityMode.TRANSACTIONAL})
            cache.put("locked", 0)
            cache.put("free", "read me")
            with reloaded(broker, limits__node_bytes_in_flight=1):
                tx = holder.tx_start(timeout=3000)  # the node rolls it back after 3 s
                cache.put("locked", 1)  # holds the key's lock
                results: list[object] = []
                threads = [
                    threading.Thread(target=lambda: blocked.get_cache("reload-bytes")
                                     .put("locked", 2)),
                ]
                threads[0].start()
                _until(lambda: broker.admin("show nodes")[0]["in_flight"] >= 1,
                       "the put waits for the lock on the node")
                threads.append(threading.Thread(target=lambda: results.append(
                    reader.get_cache("reload-bytes").get("free"))))
                threads[1].start()
                _until(lambda: broker.admin("show nodes")[0]["queued"] == 1,
                       "the get waits in the broker behind it")
                for thread in threads:
                    thread.join(60)
                assert results == ["read me"]  # sent once the lock was released
                del tx
        finally:
            for client in (holder, blocked, reader):
                client.close()


def test_the_password_file_is_read_again_for_new_node_connections(ignite_auth, tmp_path):
    """The second transaction needs a second node connection (one per connection here): it is
    opened with whatever password the file held at the last reload."""
    password = tmp_path / "password"
    password.write_text("ignite\n")
    password.chmod(0o600)
    settings = {"cluster.username": "ignite", "cluster.password_file": str(password),
                "limits.node_max_active_tx_per_connection": 1,
                "cluster.max_connections_per_node": 2, "cluster.reconnect_max_backoff": 0.3}
    with running_broker(ignite_auth.addresses, tmp_path, settings=settings) as broker:
        first, second = Raw(broker.endpoint), Raw(broker.endpoint)
        try:
            first.call("tx_start")
            password.write_text("not-the-password\n")
            assert _admin_reload(broker)["reread"] == ["cluster.password_file"]
            with pytest.raises(RuntimeError, match="another connection to each node"):
                second.call("tx_start")
            _until(lambda: "authentication failed" in broker.log(), "the new file is used")
            assert "not-the-password" not in broker.log()

            password.write_text("ignite\n")
            _admin_reload(broker)
            _until(lambda: "slot=1" in broker.log(), "the second connection, right password")
            assert isinstance(second.call("tx_start"), int)
        finally:
            first.close()
            second.close()


def _admin_reload(broker: BrokerProcess) -> dict:
    return broker.admin("reload")  # type: ignore[return-value]


def test_tls_files_are_read_again_for_new_node_connections(ignite_ssl, tmp_path):
    """The CA file is replaced: a broken one fails the reload (nothing changes), another CA
    makes the next node connection fail verification, the right one lets it connect."""
    files = ignite_ssl.ssl_files
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(files.ca).read_bytes())
    other_ca = tmp_path / "other-ca.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(tmp_path / "other-ca.key"), "-out", str(other_ca), "-subj", "/CN=other"],
        check=True, capture_output=True)
    settings = {"tls.enabled": True, "tls.ca_file": str(ca),
                "tls.cert_file": str(files.client_cert), "tls.key_file": str(files.client_key),
                "limits.node_max_active_tx_per_connection": 1,
                "cluster.max_connections_per_node": 2, "cluster.reconnect_max_backoff": 0.3}
    with running_broker(ignite_ssl.addresses, tmp_path, settings=settings) as broker:
        first, second = Raw(broker.endpoint), Raw(broker.endpoint)
        try:
            first.call("tx_start")
            ca.write_text("not a certificate\n")
            failed = _admin_cli(broker, "reload")
            assert failed.returncode == 1 and "cannot load TLS material" in failed.stderr

            ca.write_bytes(other_ca.read_bytes())
            assert "tls.ca_file" in _admin_reload(broker)["reread"]
            with pytest.raises(RuntimeError, match="another connection to each node"):
                second.call("tx_start")
            _until(lambda: re.search("(?i)certificate.verify.failed", broker.log()),
                   "the new CA is used")

            ca.write_bytes(Path(files.ca).read_bytes())
            _admin_reload(broker)
            _until(lambda: "slot=1" in broker.log(), "the second connection, right CA")
            assert isinstance(second.call("tx_start"), int)
        finally:
            first.close()
            second.close()


def _admin_cli(broker: BrokerProcess, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", "admin", "--admin-endpoint",
                           broker.admin_endpoint, *words], capture_output=True, text=True,
                          timeout=60)

"""Tests of broker.devcluster against real Ignite server JVMs (no mocks)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
from pathlib import Path

import pytest
from pyignite import Client

from broker.devcluster import (
    IGNITE_VERSIONS,
    DevCluster,
    HandshakeFailed,
    PortInUseError,
    client_ssl_context,
    handshake,
    list_records,
)
from broker.devcluster.cli import main as devcluster_main
from broker.devcluster.state import launcher_alive

pytestmark = pytest.mark.integration

_BASE = int(os.environ.get("IGNITE_BROKER_TEST_BASE_PORT", "10800"))


def _sql_scalar(client: Client, query: str) -> object:
    with client.sql(query) as cursor:
        return next(iter(cursor))[0]


def _connect(host: str, port: int) -> Client:
    client = Client(partition_aware=False)
    client.connect(host, port)
    return client


def _assert_all_running(cluster: DevCluster) -> None:
    for node in cluster.record.nodes:
        assert node.pid is not None
        assert launcher_alive(node.pid, node.ports.client), f"node-{node.idx} is not running"


def test_single_node_accepts_handshake(ignite_node: DevCluster) -> None:
    assert ignite_node.ignite_version in IGNITE_VERSIONS
    assert ignite_node.addresses == [("127.0.0.1", _BASE)]
    _assert_all_running(ignite_node)
    assert handshake(*ignite_node.addresses[0]).accepted


def test_three_nodes_accept_handshakes(ignite_cluster3: DevCluster) -> None:
    assert [port for _, port in ignite_cluster3.addresses] == [_BASE + 10, _BASE + 11, _BASE + 12]
    _assert_all_running(ignite_cluster3)
    for host, port in ignite_cluster3.addresses:
        assert handshake(host, port).accepted


def test_three_nodes_form_one_cluster(ignite_cluster3: DevCluster) -> None:
    clients = [_connect(host, port) for host, port in ignite_cluster3.addresses]
    try:
        writer = clients[0].get_or_create_cache("devcluster_one_cluster")
        writer.put_all({key: f"value-{key}" for key in range(64)})
        for reader_client in clients[1:]:
            reader = reader_client.get_cache("devcluster_one_cluster")
            assert reader.get_all(list(range(64))) == {k: f"value-{k}" for k in range(64)}
            assert _sql_scalar(reader_client, "SELECT COUNT(*) FROM SYS.NODES") == 3
        writer.destroy()
    finally:
        for client in clients:
            client.close()


def test_status_lists_running_nodes(
    ignite_node: DevCluster, ignite_cluster3: DevCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert devcluster_main(["status"]) == 0
    text = capsys.readouterr().out
    for cluster in (ignite_node, ignite_cluster3):
        assert f"base port {cluster.base_port}:" in text
        for node, (_, port) in zip(cluster.record.nodes, cluster.addresses, strict=True):
            assert f"pid {node.pid}  running  client 127.0.0.1:{port}" in text
    assert devcluster_main(["status", "--json", "--base-port", str(ignite_cluster3.base_port)]) == 0
    [record] = json.loads(capsys.readouterr().out)
    assert [n["alive"] for n in record["nodes"]] == [True, True, True]
    assert [n["pid"] for n in record["nodes"]] == ignite_cluster3.pids


def test_ssl_node_needs_tls_and_client_cert(ignite_ssl: DevCluster) -> None:
    files = ignite_ssl.ssl_files
    assert files is not None
    host, port = ignite_ssl.addresses[0]
    with pytest.raises(HandshakeFailed):
        handshake(host, port)
    tls = client_ssl_context(str(files.ca), str(files.client_cert), str(files.client_key))
    assert handshake(host, port, ssl_context=tls).accepted
    encrypted_key = client_ssl_context(
        str(files.ca), str(files.client_cert), str(files.client_key_encrypted),
        files.client_key_password,
    )
    assert handshake(host, port, ssl_context=encrypted_key).accepted
    no_client_cert = ssl.create_default_context(cafile=str(files.ca))
    with pytest.raises(HandshakeFailed):
        handshake(host, port, ssl_context=no_client_cert)


def test_auth_node_checks_password(ignite_auth: DevCluster) -> None:
    host, port = ignite_auth.addresses[0]
    assert ignite_auth.credentials == ("ignite", "ignite")
    assert handshake(host, port, username="ignite", password="ignite").accepted
    wrong = handshake(host, port, username="ignite", password="wrong")
    assert not wrong.accepted
    assert wrong.message and "password" in wrong.message
    assert not handshake(host, port).accepted


def test_start_refuses_busy_port(tmp_path: Path) -> None:
    base = _BASE + 50
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", base + 10_000 + 1))  # node-1 discovery port
        squatter.listen()
        with pytest.raises(PortInUseError, match=str(base + 10_001)):
            DevCluster(2, base, root=tmp_path).start()
    assert list(tmp_path.iterdir()) == []


def test_cli_cluster_survives_node_restart_and_stop_cleans_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = _BASE + 40
    assert devcluster_main(["start", "--nodes", "2", "--base-port", str(base)]) == 0
    assert f"127.0.0.1:{base} 127.0.0.1:{base + 1}" in capsys.readouterr().out
    cluster = DevCluster.attach(base)
    try:
        cluster.kill_node(1, signal.SIGKILL)
        assert not cluster.record.nodes[1].alive()
        assert devcluster_main(["status", "--base-port", str(base)]) == 0
        assert "1/2 node(s) running" in capsys.readouterr().out
        cluster.start_node(1)
        _assert_all_running(cluster)
        assert all(cluster.handshake(idx).accepted for idx in range(2))
    finally:
        pids = [pid for pid in cluster.pids if pid is not None]
        work_dirs = [node.work_dir for node in cluster.record.nodes]
        assert devcluster_main(["stop", "--base-port", str(base)]) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in pids)
    assert not any(work_dir.exists() for work_dir in work_dirs)
    assert not cluster.directory.exists()
    assert all(record.base_port != base for record in list_records())

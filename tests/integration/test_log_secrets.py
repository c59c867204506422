"""No secret leaves the broker: a real broker logs in to a real node with authentication, with
a password of its own in the TOML file, then in a password file, and a wrong one; traffic on
both transports, bad requests, error replies, reloads (admin and SIGHUP), every admin verb, a
debug log level and a metrics scrape all happen, and none of what they print carries it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import zmq

from broker.devcluster.brokerproc import BrokerProcess, render_toml
from libclient import Client
from libclient.exceptions import ClusterUnavailable, LibclientError
from protocol.ipc import unpack_reply
from protocol.ipcstream import frame, stream_path

pytestmark = pytest.mark.integration

WAIT = 60.0  # an upper bound on a loaded machine, never a speed claim
ADMIN_VERBS = (["status"], *(["show", what] for what in (
    "nodes", "clients", "stats", "topology", "config", "registry", "version")))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _admin(broker: BrokerProcess, *words: str) -> str:
    """What ``ignite-broker admin`` prints, as a person and as JSON (stdout and stderr)."""
    printed = []
    for extra in ([], ["--json"]):
        done = subprocess.run([sys.executable, "-m", "broker", "admin", "--admin-endpoint",
                               broker.admin_endpoint, *extra, *words],
                              capture_output=True, text=True, timeout=WAIT)
        assert done.returncode == 0, done.stderr
        printed += [done.stdout, done.stderr]
    return "\n".join(printed)


def _errors(endpoint: str) -> list[str]:
    """Work through the stub, and the messages of the errors a worker gets."""
    said = []
    with Client(broker=endpoint, label="secrets") as client:
        client.connect()
        cache = client.get_or_create_cache(f"secrets-{uuid.uuid4().hex[:6]}")
        cache.put("k", "v")
        assert cache.get("k") == "v"
        for fails in (lambda: list(client.sql("SELEKT nonsense")),
                      lambda: list(client.sql("SELECT * FROM no_such_table")),
                      lambda: client.get_cache("no-such-cache").get(1)):
            with pytest.raises(LibclientError) as err:
                fails()
            said.append(f"{type(err.value).__name__}: {err.value}")
    return said


def _raw_replies(broker: BrokerProcess) -> list[str]:
    """Malformed requests on both transports; the error replies, whole."""
    replies = []
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
    try:
        sock.connect(broker.endpoint)
        for message in (b"\xc1", b"\x95\x01\x02\xa3get\x00\x80", b"x" * 70000):
            sock.send(message)
            replies.append(repr(unpack_reply(sock.recv())))
    finally:
        sock.close()
    with socket.socket(socket.AF_UNIX) as stream:
        stream.settimeout(WAIT)
        stream.connect(stream_path(broker.stream_endpoint))
        stream.sendall(frame(b"\xc1"))
        size = int.from_bytes(stream.recv(4, socket.MSG_WAITALL), "big")
        replies.append(repr(unpack_reply(stream.recv(size, socket.MSG_WAITALL))))
    return replies


def _scrape(port: int) -> str:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT)
    try:
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        assert response.status == 200
        return response.read().decode()
    finally:
        conn.close()


def _until_logged(broker: BrokerProcess, text: str, count: int) -> None:
    deadline = time.monotonic() + WAIT
    while broker.log_path.read_text().count(text) < count:
        assert time.monotonic() < deadline, f"{text!r} not logged {count} times:\n{broker.log()}"
        time.sleep(0.05)


def _create_user(ignite_auth, workdir: Path, user: str, password: str) -> None:
    """The superuser (ignite/ignite) makes a user whose password nothing else here contains."""
    settings = {"cluster.username": "ignite", "cluster.password": "ignite"}
    workdir.mkdir()
    with BrokerProcess(ignite_auth.addresses, workdir=workdir, settings=settings) as setup:
        setup.start()
        with Client(broker=setup.endpoint) as client:
            client.connect()
            client.sql(f"CREATE USER \"{user}\" WITH PASSWORD '{password}'")


def test_no_password_in_logs_admin_output_metrics_or_error_replies(ignite_auth, tmp_path):
    secret = f"Pw-{uuid.uuid4().hex}"
    wrong = f"Wrong-{uuid.uuid4().hex}"
    user = f"logs{uuid.uuid4().hex[:8]}"
    _create_user(ignite_auth, tmp_path / "setup", user, secret)
    port = _free_port()
    base = {"cluster.username": user, "log.format": "json", "log.level": "debug",
            "metrics.listen": f"127.0.0.1:{port}", "limits.max_request_bytes": 65536}
    printed: list[str] = []
    for name in ("broker", "refused"):
        (tmp_path / name).mkdir()
    broker = BrokerProcess(ignite_auth.addresses, workdir=tmp_path / "broker",
                           settings={**base, "cluster.password": secret})
    with broker:
        broker.start()
        for endpoint in (broker.endpoint, broker.stream_endpoint):
            printed += _errors(endpoint)
        printed += _raw_replies(broker)
        printed += [_admin(broker, *verb) for verb in ADMIN_VERBS]
        printed.append(_admin(broker, "log-level", "debug"))
        # the same password from a file, applied by admin reload, then by SIGHUP
        password_file = tmp_path / "password"
        password_file.write_text(secret + "\n")
        password_file.chmod(0o600)
        settings = {k: v for k, v in broker.settings.items() if k != "cluster.password"}
        settings["cluster.password_file"] = str(password_file)
        broker.config_path.write_text(render_toml(settings))
        printed.append(_admin(broker, "reload"))
        os.kill(broker.proc.pid, signal.SIGHUP)  # type: ignore[union-attr]
        _until_logged(broker, '"event": "reloaded"', 2)
        for endpoint in (broker.endpoint, broker.stream_endpoint):
            printed += _errors(endpoint)
        printed += [_admin(broker, *verb) for verb in ADMIN_VERBS]
        metrics = _scrape(port)
        assert "ignite_broker_requests_total" in metrics
        printed.append(metrics)
    # a wrong password: the node refuses the login, the worker is told, nothing shows it
    (tmp_path / "wrong").write_text(wrong)
    refused = BrokerProcess(ignite_auth.addresses, workdir=tmp_path / "refused", settings={
        **base, "metrics.listen": f"127.0.0.1:{_free_port()}", "cluster.password": wrong,
        "cluster.connect_timeout": 2.0, "limits.queue_wait": 1.0})
    with refused:
        refused.start(wait_nodes=0)
        with Client(broker=refused.endpoint) as client:
            client.connect()
            with pytest.raises(ClusterUnavailable) as err:
                client.get_cache("any").get(1)
        printed.append(str(err.value))
        printed.append(_admin(refused, "show", "config"))
    assert "authentication failed" in str(err.value)

    logs = [broker.log_path.read_text(), refused.log_path.read_text()]
    for text in logs:
        for line in text.splitlines():
            json.loads(line)  # one JSON value per line, or this fails
    everything = "\n".join([*logs, *printed])
    # what was driven really happened, or the absence below would prove nothing
    for event in ("worker_connected", "worker_disconnected", "request_refused", "reloaded",
                  "node_connected", "node_connect_failed", "log_level_changed"):
        assert f'"event": "{event}"' in everything, event
    assert "cluster.password" in everything and "***" in everything  # show config masks it
    assert secret not in everything
    assert wrong not in everything

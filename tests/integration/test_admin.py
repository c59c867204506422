"""``ignite-broker admin`` against the real daemon and a real Ignite node, with workers on both
transports: every verb as a person reads it and as JSON, pause holding a request until resume,
kill-client releasing what a worker holds, drain, and a clear one-line error with no broker."""

from __future__ import annotations

import grp
import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import Client
from libclient.datatypes import cache_config as cc
from libclient.datatypes import prop_codes as p
from libclient.exceptions import BrokerTimeout, CacheError

pytestmark = pytest.mark.integration

TRANSPORTS = ["ipc", "unix"]


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory) -> Iterator[BrokerProcess]:
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("admin")) as proc:
        yield proc


def _endpoint(broker: BrokerProcess, transport: str) -> str:
    return broker.endpoint if transport == "ipc" else broker.stream_endpoint


def admin_cli(broker: BrokerProcess | None, *words: str,
              endpoint: str | None = None) -> subprocess.CompletedProcess[str]:
    endpoint = endpoint or broker.admin_endpoint  # type: ignore[union-attr]
    return subprocess.run([sys.executable, "-m", "broker", "admin", "--admin-endpoint",
                           endpoint, *words], capture_output=True, text=True, timeout=60)


def _until(predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


def _mine(broker: BrokerProcess, transport: str) -> list[dict]:
    return [c for c in broker.admin("show clients")
            if c["pid"] == os.getpid() and c["transport"] == transport]


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_every_show_table_and_status_describe_the_broker(broker, transport):
    with Client(broker=_endpoint(broker, transport)) as client:
        client.connect()
        cache = client.get_or_create_cache("admin-show")
        cache.put(1, "one")
        with pytest.raises(CacheError):
            client.get_cache("admin-no-such-cache").get(1)  # an error, counted
        [me] = _mine(broker, transport)
        assert me["process"] and me["uid"] == os.getuid()
        assert me["requests"] >= 4 and me["errors"] >= 1
        assert me["in_flight"] == 0 and me["transactions"] == 0 and me["cursors"] == 0

        shown = json.loads(admin_cli(broker, "show", "clients", "--json").stdout)
        assert any(c["id"] == me["id"] and c["pid"] == os.getpid() for c in shown)
        human = admin_cli(broker, "show", "clients")
        assert human.returncode == 0
        assert human.stdout.splitlines()[0].split()[:4] == ["ID", "PID", "UID", "PROCESS"]
        assert me["id"] in human.stdout

    admin_socket = broker.admin_endpoint[len("ipc://"):]
    assert stat.S_IMODE(os.stat(admin_socket).st_mode) == 0o600  # the default
    nodes = broker.admin("show nodes")
    assert nodes[0]["state"] == "ready" and nodes[0]["connections"] >= 1
    assert broker.admin("show stats")["requests"] >= 4
    assert broker.admin("show config")["cluster.nodes"] == broker.settings["cluster.nodes"]
    assert broker.admin("show version")["pid"] == broker.proc.pid
    assert broker.admin("show topology")["refreshes"] >= 0
    assert broker.admin("show registry")["types"] >= 0

    status = json.loads(admin_cli(broker, "--json", "status").stdout)
    assert status["pid"] == broker.proc.pid and status["nodes_ready"] == 1
    assert status["config_file"] == str(broker.config_path) and status["config_age_s"] >= 0
    assert status["p99_ms"] > 0 and status["errors"] >= 1
    human = admin_cli(broker, "status").stdout
    for word in ("broker", "config", "nodes", "workers", "requests", "p99", "errors",
                 str(broker.config_path), "ADDRESS"):
        assert word in human


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_pause_holds_requests_until_resume_then_serves_them(broker, transport):
    with Client(broker=_endpoint(broker, transport), timeout=120) as client:
        client.connect()
        cache = client.get_or_create_cache("admin-pause")
        cache.put("k", "before")
        assert "paused" in admin_cli(broker, "pause").stdout
        results: list[object] = []
        thread = threading.Thread(target=lambda: results.append(cache.get("k")))
        thread.start()
        try:
            _until(lambda: broker.admin("show stats")["parked"] == 1, "the get is held")
            assert broker.admin("show stats")["paused"] is True
            assert thread.is_alive() and results == []
            assert admin_cli(broker, "--json", "status").returncode == 0  # admin still answers
        finally:
            resumed = admin_cli(broker, "resume")
        thread.join(60)
        assert results == ["before"]
        assert "1 held requests released" in resumed.stdout
        assert broker.admin("show stats")["parked"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_paused_request_fails_at_its_own_deadline_saying_why(broker, transport):
    with Client(broker=_endpoint(broker, transport), timeout=1.0) as client:
        client.connect()
        cache = client.get_or_create_cache("admin-pause")
        admin_cli(broker, "pause")
        try:
            with pytest.raises(BrokerTimeout, match="paused"):
                cache.get("k")
        finally:
            admin_cli(broker, "resume")
        cache.put("k", "after")  # served again once resumed
        assert cache.get("k") == "after"
        assert broker.admin("show stats")["parked"] == 0


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_kill_client_releases_the_workers_transaction(broker, transport):
    before = broker.admin("show stats")["released_transactions"]
    client = Client(broker=_endpoint(broker, transport))
    client.connect()
    try:
        cache = client.get_or_create_cache({
            p.PROP_NAME: "admin-kill-tx",
            p.PROP_CACHE_ATOMICITY_MODE: cc.CacheAtomicityMode.TRANSACTIONAL})
        cache.put("k", "outside")  # the new cache is started before the transaction uses it
        tx = client.tx_start()
        cache.put("k", "in tx")
        [me] = [c for c in _mine(broker, transport) if c["transactions"] == 1]
        done = admin_cli(broker, "kill-client", me["id"])
        assert done.returncode == 0 and me["id"] in done.stdout
        assert me["id"] not in [c["id"] for c in broker.admin("show clients")]
        assert broker.admin("show stats")["released_transactions"] == before + 1
        del tx
    finally:
        client.close()
    missing = admin_cli(broker, "kill-client", me["id"])
    assert missing.returncode == 1 and "no such client" in missing.stderr


def test_kill_client_by_pid_takes_every_worker_of_the_process(broker):
    clients = [Client(broker=_endpoint(broker, t)) for t in TRANSPORTS]
    try:
        for client in clients:
            client.connect()
            client.get_or_create_cache("admin-kill").put("p", 1)
        assert len([c for c in broker.admin("show clients") if c["pid"] == os.getpid()]) >= 2
        out = json.loads(admin_cli(broker, "kill-client", "--pid", str(os.getpid()),
                                   "--json").stdout)
        assert len(out["killed"]) >= 2
        assert not [c for c in broker.admin("show clients") if c["pid"] == os.getpid()]
    finally:
        for client in clients:
            client.close()


def test_reload_verb_reports_applied_and_restart_needed(broker):
    settings = dict(broker.settings)
    settings["limits.worker_liveness"] = 6.5
    settings["cluster.connections_per_node"] = 2
    broker.config_path.write_text(_toml(settings))
    try:
        done = admin_cli(broker, "reload")
        assert done.returncode == 0, done.stderr
        assert "reloaded: limits.worker_liveness" in done.stdout
        assert "need a restart (kept): cluster.connections_per_node" in done.stdout
        broker.config_path.write_text("[cluster\n")
        failed = admin_cli(broker, "reload")
        assert failed.returncode == 1 and "not valid TOML" in failed.stderr
        assert len(failed.stderr.strip().splitlines()) == 1
    finally:
        broker.config_path.write_text(_toml(broker.settings))
        assert admin_cli(broker, "reload").returncode == 0


def _toml(settings: dict) -> str:
    from broker.devcluster.brokerproc import render_toml

    return render_toml(settings)


def test_unknown_verb_and_bad_arguments_are_refused_clearly(broker):
    done = admin_cli(broker, "show", "everything")
    assert done.returncode == 2 and "invalid choice" in done.stderr
    done = admin_cli(broker, "kill-client", "zz")
    assert done.returncode == 1 and "not a client id" in done.stderr


def test_with_no_broker_admin_says_so_in_one_line(tmp_path):
    for words in (["status"], ["show", "nodes"], ["pause"], ["reload", "--json"]):
        done = admin_cli(None, *words, endpoint=f"ipc://{tmp_path}/admin.sock")
        assert done.returncode == 1
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert "no broker running" in done.stderr and str(tmp_path) in done.stderr
    config = tmp_path / "b.toml"
    config.write_text(f'[broker]\nendpoints = ["unix://{tmp_path}/run/b.stream"]\n')
    done = subprocess.run([sys.executable, "-m", "broker", "admin", "--config", str(config),
                           "status"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and f"{tmp_path}/run/admin.sock" in done.stderr


def test_admin_socket_with_only_a_stream_endpoint_its_group_and_drain(
        ignite_node, tmp_path):
    stream = f"unix://{tmp_path}/only/broker.stream"
    proc = BrokerProcess(ignite_node.addresses, workdir=tmp_path, settings={
        "broker.endpoints": [stream], "broker.admin_group": "daemon",
        "broker.admin_socket_mode": 0o660})
    proc.endpoint = stream  # readiness through the only endpoint there is
    proc.admin_endpoint = f"ipc://{tmp_path}/only/admin.sock"
    with proc:
        proc.start()
        path = proc.admin_endpoint[len("ipc://"):]
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert os.stat(path).st_gid == grp.getgrnam("daemon").gr_gid
        assert proc.admin("show version")["pid"] == proc.proc.pid
        with Client(broker=stream) as client:
            client.connect()
            client.get_or_create_cache("admin-drain").put(1, 1)
        done = admin_cli(proc, "drain")
        assert done.returncode == 0 and "draining" in done.stdout
        assert proc.proc.wait(60) == 0
        assert not os.path.exists(path)

"""In-place upgrade without systemd: ``ignite-broker upgrade`` (SIGUSR2) re-executes the broker,
handing its listening sockets (and its lock) to the new process, which serves before the old
one drains and exits (the graceful stop: what it did not process, the stubs send again).
Under light load from both transports no request fails, none is refused or "may have been
applied"."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import uuid

import pytest
import zmq

from broker.upgrade import alive
from libclient import Client
from tests.integration.daemon import WAIT, Daemon, wait_until

pytestmark = pytest.mark.integration

THREADS_PER_TRANSPORT = 2
UPGRADES = 2


class Load:
    """Worker threads doing put-then-get of their own key, counting outcomes by kind."""

    def __init__(self, endpoints: dict[str, str]) -> None:
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok: collections.Counter[str] = collections.Counter()
        self.failed: collections.Counter[str] = collections.Counter()
        self.wrong = 0
        self.threads = [threading.Thread(target=self._run, args=(transport, endpoint), daemon=True)
                        for transport, endpoint in endpoints.items()
                        for _ in range(THREADS_PER_TRANSPORT)]

    def _run(self, transport: str, endpoint: str) -> None:
        client = Client(broker=endpoint, timeout=30.0, handshake_timeout=WAIT)
        client.connect()
        cache = client.get_or_create_cache("upgrade")
        key = f"{transport}-{uuid.uuid4().hex}"
        i = 0
        while not self.stop.is_set():
            i += 1
            try:
                cache.put(key, i)
                value = cache.get(key)
            except Exception as exc:
                with self.lock:
                    self.failed[f"{transport}: {_kind(exc)}"] += 1
                continue
            with self.lock:
                self.ok[transport] += 2
                self.wrong += value != i
            self.stop.wait(0.005)  # light load
        client.close()

    def total(self) -> int:
        with self.lock:
            return sum(self.ok.values())


def _kind(exc: Exception) -> str:
    text = str(exc).lower()
    for kind in ("refused", "nobody there", "may have been applied", "shutting down",
                 "went away", "no reply"):
        if kind in text:
            return f"{type(exc).__name__} ({kind})"
    return f"{type(exc).__name__}: {text[:80]}"


def _upgrade(daemon: Daemon) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "broker", "upgrade", "--config", str(daemon.config_path)],
        capture_output=True, text=True, timeout=WAIT + 30, check=False)
    assert result.returncode == 0, (result.stdout, result.stderr, daemon.log())
    return result.stdout


def test_upgrade_under_load_from_both_transports(ignite_node, tmp_path):
    daemon = Daemon(tmp_path, ignite_node.addresses)
    daemon.start()
    load = Load(daemon.endpoints)
    try:
        wait_until(lambda: daemon.serving_pid() == daemon.pid and "ready" in daemon.log(),
                   "the broker to be ready")
        for thread in load.threads:
            thread.start()
        pids = [daemon.pid]
        for _ in range(UPGRADES):
            done = load.total()
            wait_until(lambda done=done: load.total() >= done + 100, "requests before upgrading")
            printed = _upgrade(daemon)
            new = daemon.serving_pid()
            assert new not in pids and printed == f"upgraded: pid {pids[-1]} -> {new}\n"
            assert not alive(pids[-1])
            pids.append(new)
        done = load.total()
        wait_until(lambda: load.total() >= done + 100, "requests after the upgrades")
        load.stop.set()
        for thread in load.threads:
            thread.join(WAIT)
        print(f"upgrades {UPGRADES}: ok {dict(load.ok)}, failed {dict(load.failed)}")
        assert load.wrong == 0
        assert not load.failed
        assert os.path.exists(daemon.stream_path) and os.path.exists(daemon.ipc_path)
        assert daemon.stop(pids[-1]) is None  # not our child: it exited, nothing more to know
        assert not os.path.exists(daemon.stream_path) and not os.path.exists(daemon.ipc_path)
    finally:
        load.stop.set()
        pid = daemon.serving_pid()
        if pid is not None and alive(pid):
            daemon.stop(pid)
        daemon.stop()  # our own child, if it never handed over
        print(daemon.log())


def test_a_successor_that_cannot_start_leaves_the_old_broker_serving(ignite_node, tmp_path):
    daemon = Daemon(tmp_path, ignite_node.addresses)
    daemon.start()
    try:
        wait_until(lambda: "ready" in daemon.log(), "the broker to be ready")
        daemon.config_path.write_text("[cluster\nbroken = ")  # the new process refuses it
        result = subprocess.run(
            [sys.executable, "-m", "broker", "upgrade", "--config", str(daemon.config_path)],
            capture_output=True, text=True, timeout=WAIT, check=False)
        assert result.returncode == 2 and "config" in result.stderr.lower()
        os.kill(daemon.pid, signal.SIGUSR2)  # as `upgrade` would
        wait_until(lambda: "upgrade_failed" in daemon.log(), "the failed upgrade")
        assert daemon.serving_pid() == daemon.pid
        client = Client(broker=daemon.endpoints["unix"], timeout=30.0, handshake_timeout=WAIT)
        client.connect()
        assert client.get_or_create_cache("upgrade").get("nothing-here") is None
        client.close()
        assert daemon.stop() == 0
    finally:
        daemon.stop()
        print(daemon.log())


def test_upgrade_hands_over_tcp_with_curve(ignite_node, tmp_path):
    """tcp:// (CURVE) is handed over too: the port is never closed, and a keyed client
    connected before the upgrade keeps working."""
    server_public, server_secret = zmq.curve_keypair()
    secret_file = tmp_path / "server.secret"
    secret_file.write_text(server_secret.decode() + "\n")
    secret_file.chmod(0o600)
    public, secret = zmq.curve_keypair()
    keys_file = tmp_path / "clients.keys"
    keys_file.write_text(f"{public.decode()} worker\n")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    daemon = Daemon(tmp_path, ignite_node.addresses, tcp=f"tcp://127.0.0.1:{port}",
                    broker__curve_secret_key_file=str(secret_file),
                    broker__curve_client_keys_file=str(keys_file))
    keys = {"curve_serverkey": server_public.decode(), "curve_publickey": public.decode(),
            "curve_secretkey": secret.decode()}
    daemon.start()
    try:
        before = Client(broker=daemon.endpoints["tcp"], timeout=30.0, handshake_timeout=WAIT,
                        **keys)
        before.connect()
        cache = before.get_or_create_cache("upgrade")
        cache.put("tcp", 1)
        old = daemon.pid
        _upgrade(daemon)
        assert daemon.serving_pid() != old and "inherited_as=tcp" in daemon.log()
        cache.put("tcp", 2)
        assert cache.get("tcp") == 2
        before.close()
        with Client(broker=daemon.endpoints["tcp"], timeout=30.0, handshake_timeout=WAIT,
                    **keys) as after:
            after.connect()
            assert after.get_or_create_cache("upgrade").get("tcp") == 2
    finally:
        pid = daemon.serving_pid()
        if pid is not None and alive(pid):
            daemon.stop(pid)
        daemon.stop()  # our own child, if it never handed over
        print(daemon.log())

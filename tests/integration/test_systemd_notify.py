"""The real daemon under a service manager's NOTIFY_SOCKET (a datagram socket this test binds):
READY=1 after the first node handshake with a STATUS= saying how many nodes are up, live
STATUS= updates, WATCHDOG=1 only when WATCHDOG_USEC is set, RELOADING=1 (with
MONOTONIC_USEC=) then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM.  With no node
reachable yet, the sockets serve at once, requests wait for the first node within their
deadline, and READY=1 comes with the first handshake (or, saying 0 nodes, after
cluster.connect_timeout)."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from libclient import Client
from libclient.transport import Transport
from tests.integration.daemon import WAIT, Daemon

pytestmark = pytest.mark.integration


class NotifySocket:
    """What the broker sends to $NOTIFY_SOCKET, one datagram per message, as {key: value}."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages: list[dict[str, str]] = []

    def next(self, timeout: float = WAIT) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.splitlines() if "=" in line)
        self.messages.append(message)
        return message

    def wait_for(self, key: str, timeout: float = WAIT) -> dict[str, str]:
        """The next message carrying ``key`` (the ones before it are kept in ``messages``)."""
        deadline = time.monotonic() + timeout
        while True:
            message = self.next(max(deadline - time.monotonic(), 0.001))
            if key in message:
                return message

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


def _hello(endpoint: str) -> dict:
    transport = Transport(endpoint, timeout=30.0, retries=0)
    try:
        return transport.call("hello", {})
    finally:
        transport.close()


def test_ready_status_watchdog_reload_stopping(ignite_node, tmp_path, notify_socket):
    daemon = Daemon(tmp_path, ignite_node.addresses)
    daemon.start({"NOTIFY_SOCKET": notify_socket.path, "WATCHDOG_USEC": "400000"})
    try:
        ready = notify_socket.wait_for("READY")
        assert ready["READY"] == "1"
        assert ready["STATUS"].startswith("1/1 nodes up"), ready
        # the loop feeds the watchdog (every 0.2 s here) and refreshes STATUS
        watchdogs = 0
        while watchdogs < 3:
            watchdogs += "WATCHDOG" in notify_socket.next()
        live = [m["STATUS"] for m in notify_socket.messages if "WATCHDOG" in m and "STATUS" in m]
        assert live and all(re.fullmatch(r"1/1 nodes up, \d+ workers, \d+ req/s", s)
                            for s in live), live

        os.kill(daemon.pid, signal.SIGHUP)
        reloading = notify_socket.wait_for("RELOADING")
        assert reloading["RELOADING"] == "1"
        assert int(reloading["MONOTONIC_USEC"]) > 0
        assert notify_socket.wait_for("READY")["READY"] == "1"

        for endpoint in daemon.endpoints.values():
            assert _hello(endpoint)["nodes_ready"] >= 1
        os.kill(daemon.pid, signal.SIGTERM)
        assert notify_socket.wait_for("STOPPING")["STOPPING"] == "1"
        assert daemon.wait_exit(daemon.pid) == 0
    finally:
        daemon.stop()
        print(daemon.log())


def test_no_watchdog_unless_asked(ignite_node, tmp_path, notify_socket):
    daemon = Daemon(tmp_path, ignite_node.addresses)
    daemon.start({"NOTIFY_SOCKET": notify_socket.path})
    try:
        notify_socket.wait_for("READY")
        os.kill(daemon.pid, signal.SIGTERM)
        notify_socket.wait_for("STOPPING")
        assert daemon.wait_exit(daemon.pid) == 0
        assert not any("WATCHDOG" in m for m in notify_socket.messages)
    finally:
        daemon.stop()


class Relay:
    """A TCP port that forwards to the real node once ``start`` is called (before, nothing
    listens there: the broker's connects are refused)."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.server: socket.socket | None = None

    def start(self) -> None:
        self.server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            node = socket.create_connection(self.target)
            for a, b in ((client, node), (node, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def test_sockets_serve_before_any_node_is_reachable(ignite_node, tmp_path, notify_socket):
    """No node reachable yet: both sockets answer hello at once and take requests, which
    wait for a node; READY=1 comes once the first node handshake succeeds."""
    relay = Relay(ignite_node.addresses[0])
    daemon = Daemon(tmp_path, [("127.0.0.1", relay.port)], cluster__connect_timeout=600.0,
                    cluster__reconnect_max_backoff=0.5, limits__queue_wait=120.0)
    daemon.start({"NOTIFY_SOCKET": notify_socket.path})
    results: dict[str, object] = {}

    def worker(transport: str) -> None:
        try:
            client = Client(broker=daemon.endpoints[transport], timeout=WAIT,
                            handshake_timeout=WAIT)
            client.connect()
            cache = client.get_or_create_cache("start-without-nodes")
            cache.put(transport, transport)
            results[transport] = cache.get(transport)
            client.close()
        except Exception as exc:  # reported by the assertion below
            results[transport] = exc

    try:
        for endpoint in daemon.endpoints.values():
            assert _hello(endpoint)["nodes_ready"] == 0
        threads = [threading.Thread(target=worker, args=(t,), daemon=True)
                   for t in daemon.endpoints]
        for thread in threads:
            thread.start()
        notify_socket.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            notify_socket.sock.recv(4096)  # no READY while the first handshake is awaited
        relay.start()
        for thread in threads:
            thread.join(WAIT)
        assert results == {"ipc": "ipc", "unix": "unix"}
        assert notify_socket.wait_for("READY")["STATUS"].startswith("1/1 nodes up")
    finally:
        daemon.stop()
        relay.close()
        print(daemon.log())


def test_ready_after_connect_timeout_says_no_node_is_up(tmp_path, notify_socket):
    daemon = Daemon(tmp_path, [("127.0.0.1", 1)], cluster__connect_timeout=0.5)
    daemon.start({"NOTIFY_SOCKET": notify_socket.path})
    try:
        ready = notify_socket.wait_for("READY")
        assert ready["STATUS"].startswith("0/1 nodes up"), ready
    finally:
        daemon.stop()

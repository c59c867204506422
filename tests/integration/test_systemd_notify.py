"""The real daemon under a service manager's NOTIFY_SOCKET (a datagram socket this test binds):
READY=1 after the first node handshake with a STATUS= saying how many nodes are up, live
STATUS= updates, WATCHDOG=1 only when WATCHDOG_USEC is set, RELOADING=1 (with
MONOTONIC_USEC=) then READY=1 around a SIGHUP reload, STOPPING=1 on SIGTERM.  With no node
reachable, the sockets serve at once and READY=1 comes after cluster.connect_timeout."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

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


def test_sockets_serve_before_any_node_is_reachable(tmp_path, notify_socket):
    """Nothing listens on the node's port: both sockets answer hello at once, READY=1 says 0
    nodes are up only once cluster.connect_timeout has passed."""
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    closed_port = probe.getsockname()[1]
    probe.close()
    daemon = Daemon(tmp_path, [("127.0.0.1", closed_port)], cluster__connect_timeout=600.0)
    daemon.start({"NOTIFY_SOCKET": notify_socket.path})
    try:
        for endpoint in daemon.endpoints.values():
            assert _hello(endpoint)["nodes_ready"] == 0
        notify_socket.sock.setblocking(False)
        with pytest.raises(BlockingIOError):
            notify_socket.sock.recv(4096)  # no READY while the first handshake is awaited
    finally:
        daemon.stop()


def test_ready_after_connect_timeout_says_no_node_is_up(tmp_path, notify_socket):
    daemon = Daemon(tmp_path, [("127.0.0.1", 1)], cluster__connect_timeout=0.5)
    daemon.start({"NOTIFY_SOCKET": notify_socket.path})
    try:
        ready = notify_socket.wait_for("READY")
        assert ready["STATUS"].startswith("0/1 nodes up"), ready
    finally:
        daemon.stop()

"""Socket activation: the test holds the listening sockets as systemd's socket units do and
passes them to each broker process (LISTEN_FDS, LISTEN_FDNAMES=unix:ipc, LISTEN_PID).  For
unix:// and ipc://, a worker connected before a restart keeps working, and a worker that
connects while no broker process runs waits in the backlog and succeeds once one starts.
The sockets' files outlive every broker process (they are systemd's, not the broker's)."""

from __future__ import annotations

import os
import select
import threading
import uuid
from pathlib import Path

import pytest

from libclient import Client
from tests.integration.daemon import WAIT, Daemon, listening_socket

pytestmark = pytest.mark.integration


@pytest.fixture
def activated(ignite_node, tmp_path: Path):
    daemon = Daemon(tmp_path, ignite_node.addresses)
    sockets = [("unix", listening_socket(daemon.stream_path)),
               ("ipc", listening_socket(daemon.ipc_path))]
    yield daemon, sockets
    try:
        daemon.stop()
    finally:
        print(daemon.log())
        for _, sock in sockets:
            sock.close()


def _client(endpoint: str) -> Client:
    client = Client(broker=endpoint, timeout=WAIT, handshake_timeout=WAIT)
    client.connect()
    return client


@pytest.mark.parametrize("transport", ["unix", "ipc"])
def test_restart_with_inherited_sockets(activated, transport):
    daemon, sockets = activated
    listener = dict(sockets)[transport]
    endpoint = daemon.endpoints[transport]
    key = f"activation-{transport}-{uuid.uuid4().hex}"

    daemon.start(sockets=sockets)
    before = _client(endpoint)
    cache = before.get_or_create_cache("socket-activation")
    cache.put(key, 1)
    assert "inherited_as=unix" in daemon.log() and "inherited_as=ipc" in daemon.log()

    assert daemon.stop() == 0
    assert os.path.exists(daemon.stream_path) and os.path.exists(daemon.ipc_path)

    # No broker process runs: a new worker connects into the backlog and waits.
    result: dict[str, object] = {}

    def newcomer() -> None:
        try:
            client = _client(endpoint)
            result["value"] = client.get_or_create_cache("socket-activation").get(key)
            client.close()
        except Exception as exc:  # reported by the assertion below
            result["error"] = exc

    thread = threading.Thread(target=newcomer, daemon=True)
    thread.start()
    readable, _, _ = select.select([listener], [], [], WAIT)
    assert readable, "the new worker never connected"
    assert thread.is_alive()  # it waits: nobody accepted its connection yet

    daemon.start(sockets=sockets)
    thread.join(WAIT)
    assert result == {"value": 1}
    # the worker connected before the restart keeps working
    cache.put(key, 2)
    assert cache.get(key) == 2
    before.close()

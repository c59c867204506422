"""The log of a real broker serving a real node, in JSON: every line parses (the standard
library's too), one line per worker connect and disconnect on both transports with pid,
transport, label and reason, one per refused request class, and a level changed at runtime."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator

import msgpack
import pytest
import zmq

from broker.devcluster.brokerproc import BrokerProcess, running_broker
from libclient import Client
from protocol.ipc import unpack_reply
from protocol.ipcstream import frame, stream_path
from tests.integration.rawipc import read_stream_reply

pytestmark = pytest.mark.integration

TRANSPORTS = ("unix", "ipc")
WAIT = 60.0  # an upper bound on a loaded machine, never a speed claim


@pytest.fixture(scope="module")
def broker(ignite_node, tmp_path_factory) -> Iterator[BrokerProcess]:
    # asyncio's own loop: it logs "Using selector" through the standard library at start
    settings = {"log.format": "json", "log.level": "debug", "broker.event_loop": "asyncio",
                "limits.max_request_bytes": 65536}
    with running_broker(ignite_node.addresses, tmp_path_factory.mktemp("logs"),
                        settings) as proc:
        yield proc


def lines(broker: BrokerProcess) -> list[dict]:
    """Every line of the broker's log, each parsed as JSON (a line that is not fails here)."""
    return [json.loads(line) for line in broker.log_path.read_text().splitlines()]


def admin_cli(broker: BrokerProcess, *words: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "broker", "admin", "--admin-endpoint",
                           broker.admin_endpoint, *words], capture_output=True, text=True,
                          timeout=WAIT)


def wait_for(broker: BrokerProcess, match: Callable[[dict], bool], what: str,
             since: int = 0) -> dict:
    """The first line from line number ``since`` on that ``match``es, once the broker wrote it."""
    deadline = time.monotonic() + WAIT
    while True:
        found = [line for line in lines(broker)[since:] if match(line)]
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no log line for {what}:\n{broker.log()}"
        time.sleep(0.05)


def _endpoint(broker: BrokerProcess, transport: str) -> str:
    return broker.endpoint if transport == "ipc" else broker.stream_endpoint


def test_every_line_is_json_and_the_standard_librarys_lines_are_among_them(broker):
    every = lines(broker)
    selector = [line for line in every if line["event"].startswith("Using selector")]
    assert selector and selector[0]["component"] == "asyncio"
    assert selector[0]["level"] == "debug"
    assert any(line["event"] == "node_connected" for line in every)
    assert all({"event", "level", "timestamp"} <= line.keys() for line in every)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_a_worker_gets_a_connect_and_a_disconnect_line_with_pid_label_and_reason(
        broker, transport):
    label = f"logs-{transport}-{uuid.uuid4().hex[:6]}"
    with Client(broker=_endpoint(broker, transport), label=label) as client:
        client.connect()
        client.get_or_create_cache("logs").put(1, "one")
    if transport == "ipc":  # ZeroMQ never says a peer left: forgotten by the janitor or admin
        ids = [row["id"] for row in broker.admin("show clients") if row["label"] == label]
        assert ids and admin_cli(broker, "kill-client", ids[0]).returncode == 0
    gone = wait_for(broker, lambda line: line["event"] == "worker_disconnected"
                    and line["label"] == label and line["transport"] == transport,
                    f"{label} disconnecting")
    came = wait_for(broker, lambda line: line["event"] == "worker_connected"
                    and line["worker"] == gone["worker"], f"{label} connecting")
    assert gone["transport"] == came["transport"] == transport
    assert gone["pid"] == os.getpid() and gone["uid"] == os.getuid()
    assert gone["reason"].startswith("closed by the worker" if transport == "unix"
                                     else "killed by admin (forgotten")
    if transport == "unix":  # the kernel's, at accept
        assert (came["pid"], came["uid"]) == (os.getpid(), os.getuid())


def _raw_exchange(broker: BrokerProcess, transport: str, message: bytes) -> dict:
    """Send one message as it is; the reply's error map."""
    if transport == "ipc":
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVTIMEO, int(WAIT * 1000))
        try:
            sock.connect(broker.endpoint)
            sock.send(message)
            return unpack_reply(sock.recv()).payload
        finally:
            sock.close()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(WAIT)
        sock.connect(stream_path(broker.stream_endpoint))
        sock.sendall(frame(message))
        return read_stream_reply(sock).payload


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("message", "kind"), [
    (b"\xc1", "bad_request"),
    (msgpack.packb([1, 7, "cache_get", 0, {"key": 1}]), "bad_request"),  # no cache
    (msgpack.packb([1, 8, "no_such_op", 0, {}]), "unknown_op"),
    (b"\x90" + b"x" * 70000, "too_large"),
])
def test_each_refused_request_class_gets_a_line_naming_the_worker(
        broker, transport, message, kind):
    before = len(lines(broker))
    error = _raw_exchange(broker, transport, message)
    assert error["message"]
    line = wait_for(broker, lambda line: line["event"] == "request_refused"
                    and line["kind"] == kind, f"a {kind} refusal", since=before)
    assert line["component"] == "requests" and line["reason"]


def test_admin_log_level_changes_the_level_of_the_running_broker(broker):
    done = admin_cli(broker, "log-level", "warning")
    assert done.returncode == 0, done.stderr
    assert "warning" in done.stdout
    wait_for(broker, lambda line: line["event"] == "log_level_changed", "the change")
    quiet_from = len(lines(broker))
    label = f"quiet-{uuid.uuid4().hex[:6]}"
    with Client(broker=broker.stream_endpoint, label=label) as client:
        client.connect()
    assert admin_cli(broker, "log-level", "debug").returncode == 0
    wait_for(broker, lambda line: line["event"] == "log_level_changed"
             and line["to"] == "debug", "the second change")
    assert not [line for line in lines(broker)[quiet_from:] if line["level"] == "info"]
    refused = admin_cli(broker, "log-level", "loud")
    assert refused.returncode != 0 and "invalid choice" in refused.stderr

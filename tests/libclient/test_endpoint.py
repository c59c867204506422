"""The stub's default endpoint is the host's broker, the same for every process: systemd's
/run/ignite-broker when its socket (or directory) is there, else this user's runtime
directory; $IGNITE_BROKER wins; with nobody there, the error names every path looked at."""

from __future__ import annotations

import socket

import pytest

import protocol.ipcstream
from libclient import Client
from libclient.access import default_endpoint
from libclient.exceptions import BrokerUnavailable


@pytest.fixture
def dirs(tmp_path, monkeypatch):
    """(the system broker's directory, this user's, the environment naming this user's)."""
    system = tmp_path / "system"
    monkeypatch.setattr(protocol.ipcstream, "SYSTEM_RUNTIME_DIR", str(system))
    return system, tmp_path / "ignite-broker", {"XDG_RUNTIME_DIR": str(tmp_path)}


def _listen(path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    return sock


def test_the_system_brokers_directory_is_found_without_any_setting(dirs):
    system, _own, env = dirs
    system.mkdir(mode=0o750)
    assert default_endpoint(env, 1000) == f"unix://{system}/broker.stream"


def test_without_it_the_users_own_runtime_directory(dirs):
    _system, own, env = dirs
    assert default_endpoint(env, 1000) == f"unix://{own}/broker.stream"


def test_a_socket_that_is_there_wins_over_an_empty_directory(dirs):
    system, own, env = dirs
    system.mkdir(mode=0o750)
    own.mkdir(mode=0o700)
    sock = _listen(own / "broker.stream")
    try:
        assert default_endpoint(env, 1000) == f"unix://{own}/broker.stream"
    finally:
        sock.close()


def test_ignite_broker_chooses(dirs):
    system, _own, env = dirs
    system.mkdir(mode=0o750)
    assert default_endpoint({**env, "IGNITE_BROKER": "ipc:///x/y.sock"}, 1000) == \
        "ipc:///x/y.sock"


def test_with_nobody_there_the_error_names_every_path_tried(dirs, monkeypatch):
    system, own, env = dirs
    monkeypatch.delenv("IGNITE_BROKER", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", env["XDG_RUNTIME_DIR"])
    monkeypatch.setattr("os.getuid", lambda: 1000)  # a worker's user (root's is /run's)
    own.mkdir(mode=0o700)
    client = Client(connect_timeout=0.2)
    with pytest.raises(BrokerUnavailable) as err:
        client.connect()
    message = str(err.value)
    assert f"no broker at unix://{own}/broker.stream" in message
    assert f"{system}/broker.stream" in message and f"{own}/broker.stream" in message
    assert "IGNITE_BROKER" in message
